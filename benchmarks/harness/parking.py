"""Parked trainings: unfinished training checkpoints kept with the results, so that a new checkout resumes them.

``runs/`` is git-ignored, so a training that outlives the machine it started on (Guiroy et al.'s ~10 CPU-h Omniglot
runs, the cross-head matrix's 2-3 h ones, on machines that may be replaced between sessions) is lost with it.
``metarepro park`` copies every unfinished training of a parked scale (:data:`PARKED_SCALES`) to
``results/parked/<benchmark>/<scale>/<run>/``, to be committed: the ``*.pt`` files of its run folder (``checkpoint.pt``
with weights, optimizer and the training's segments; early stopping's ``best.pt``, ``best-<criterion>.pt`` and ``top-<i>.pt``; snell2017-table1's
``train.pt`` / ``trainval.pt``) and the score journals of its cells' evaluations (``evaluation-<cell>.json``, e.g.
vinyals2016-table1's ~2 h fine-tuning cells, :mod:`metarepro.journal`), copied as one consistent set (copied again if a
file changed meanwhile). Guiroy's per-epoch probe snapshots (``probes/``, ~45 MB a run) are not parked: a run resumed
from a parked copy trains and probes on, but a later change of its probe settings cannot be re-taken from snapshots and
needs ``--restart``. A training counts as unfinished while a cell it serves, of any benchmark, has no current record,
pinned or local (the cells of the main protocol, and a variant's cell once that cell has a record at the scale; a
training that only unrun variant cells serve is one of them under way), unless every cell still waiting on it restores
the finished training from the weights a current record pinned (``restores_pinned_trainings``:
``unraveling-omniglot``'s claims measure the cross-head matrix's models that way). A parked copy no longer unfinished,
or that no current configuration trains in, is removed by the next ``park``.

Which copy wins: a training is identified by when and where its first segment started. ``park`` never replaces a
parked copy that is further on, or that is another training (a machine still holding checkpoints from before a
``--restart``); ``unpark`` restores only a copy of the same training that is further on, or where ``runs/`` has none,
and says so where the two are different trainings (the local one is kept: ``--restart`` discards both).

``reproduce`` restores a parked checkpoint (:func:`unpark`) before it trains, where ``runs/`` has none or one of fewer
iterations, and the training resumes from it; the checkpoint's segments carry the history, so the record names every
machine that trained it. ``reproduce --restart`` deletes the parked copies of its cells with their run folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.harness.base import MAIN, Cell
from benchmarks.harness.paths import runs_dir
from benchmarks.harness.runner import is_current, served_folders
from metarepro import results as R
from metarepro.atomic import atomic_path
from metarepro.data.store import file_digest

#: scales whose unfinished trainings are parked (smoke runs take seconds)
PARKED_SCALES = ("quick", "paper")


def parked_root() -> Path:
    """``results/parked`` of the committed results (never a user's local results: parking is for the checkout)."""
    return R.results_dir() / "parked"


def _run_files(folder: Path) -> list[Path]:
    """The ``*.pt`` files of a run folder (not its subfolders), ``checkpoint.pt`` first, and its score journals
    (``evaluation-<cell>.json``, :mod:`metarepro.journal`): a long evaluation stopped part-way resumes from them too."""
    files = [*folder.glob("*.pt"), *folder.glob("evaluation-*.json")]
    return sorted(files, key=lambda p: (p.name != "checkpoint.pt", p.name))


def _training_files(folder: Path) -> list[Path]:
    """The files that hold training progress: the ``*.pt`` files but early stopping's ``*best.pt``, ``best-<criterion>.pt``
    and ``top-<i>.pt``."""
    from metarepro.trainer import is_snapshot

    return [p for p in _run_files(folder) if p.suffix == ".pt" and not is_snapshot(p)]


def progress(folder: Path) -> tuple[str | None, int]:
    """``(identity, iterations)`` of the training in a run folder: where and when its first segment started (None if
    unknown), and the iterations its training files reached (summed: snell2017-table1 trains two in turn)."""
    from metarepro.trainer import CheckpointError, load_checkpoint

    identity, iterations = None, 0
    for path in _training_files(folder):
        try:
            state = load_checkpoint(path)["state"]
        except (CheckpointError, KeyError, TypeError, OSError):
            continue
        iterations += int(state.get("iteration", 0))
        first = next(iter(state.get("segments") or []), {})
        if identity is None and "started_utc" in first:
            identity = f"{first['started_utc']} on {first.get('host', '?')}"
    return identity, iterations


def _signature(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in _run_files(folder)}


def _mirror(source: Path, target: Path, attempts: int = 5) -> bool:
    """Make ``target``'s ``*.pt`` files those of ``source`` (a training may be writing it: copied again until no file
    changed while copying); returns whether anything changed. Raises FileNotFoundError if ``source`` vanished."""
    for _ in range(attempts):
        before, changed = _signature(source), False
        for f in _run_files(source):
            if not ((target / f.name).is_file() and file_digest(target / f.name) == file_digest(f)):
                with atomic_path(target / f.name) as tmp:
                    shutil.copyfile(f, tmp)
                changed = True
        for stale in set(p.name for p in _run_files(target)) - set(before):  # e.g. a top-<i>.pt that fell out of the best
            (target / stale).unlink()
            changed = True
        if _signature(source) == before:
            return changed
    raise RuntimeError(f"{source} kept changing while being copied ({attempts} attempts); park again")


def _recorded_cells() -> set[tuple[str, Cell, str]]:
    """``(benchmark, cell, scale)`` of every record, pinned or local."""
    from benchmarks import BENCHMARKS

    return {(b.id, Cell.of(r), r["scale"]) for b in BENCHMARKS.values() for root in (None, R.local_results_dir())
            for r in R.load_records(b.id, root)}


def park(scales: tuple[str, ...] = PARKED_SCALES) -> list[dict]:
    """Park every unfinished training under the runs root (module docstring); prune parked copies no longer needed.
    One row per run: ``{"run", "action", "iteration", "MB"}``."""
    served = served_folders()
    recorded = _recorded_cells()
    rows = []

    def finished(folder: str) -> bool:
        """No cell needs this training's checkpoint: every cell it serves is recorded, or the rest restore the finished
        training from the weights a current record pinned (``restores_pinned_trainings``), so parking it adds nothing."""
        from benchmarks.harness.checkpoints import pinned_training

        scale = folder.split("/")[1]
        wanted = [(b, c) for b, c in served[folder] if c.variant == MAIN or (b.id, c, scale) in recorded]
        pending = [(b, c) for b, c in wanted if not (is_current(b, c, scale) or is_current(b, c, scale, R.local_results_dir()))]
        if not wanted:
            return False
        return not pending or (all(b.restores_pinned_trainings for b, _ in pending)
                               and pinned_training(folder.rsplit("/", 1)[1], scale) is not None)

    for folder in sorted(f for f in served if f.split("/")[1] in scales and _training_files(runs_dir() / f)):
        if finished(folder):
            continue
        source, target = runs_dir() / folder, parked_root() / folder
        try:
            (mine, done), (theirs, parked_done) = progress(source), progress(target)
            if _run_files(target) and theirs is not None and mine != theirs:
                action = f"kept: the parked copy is another training (started {theirs}; this one {mine})"
            elif _run_files(target) and parked_done > done:
                action = f"kept: the parked copy is further on ({parked_done} iterations, here {done})"
            else:
                action = "parked" if _mirror(source, target) else "unchanged"
        except FileNotFoundError:  # removed meanwhile (a `reproduce --restart`)
            continue
        size = sum(f.stat().st_size for f in _run_files(target)) / 2**20
        rows.append({"run": folder, "action": action, "iteration": progress(target)[1], "MB": round(size, 2)})
    for folder in sorted({p.parent.relative_to(parked_root()).as_posix() for p in parked_root().glob("*/*/*/*.pt")}):
        if folder not in served or finished(folder):
            shutil.rmtree(parked_root() / folder)
            why = "removed (its cells' records are current)" if folder in served else "removed (no current configuration trains in it)"
            rows.append({"run": folder, "action": why, "iteration": None, "MB": 0.0})
    return rows


def unpark(folders: list[str], log=print) -> list[str]:
    """Restore the parked copies of these run folders (``<benchmark>/<scale>/<run>``) where the runs root has none, or
    has the same training less far on; returns the folders restored."""
    restored = []
    for folder in folders:
        parked, here = parked_root() / folder, runs_dir() / folder
        if not _training_files(parked):
            continue
        (theirs, parked_done), (mine, done) = progress(parked), progress(here)
        if _training_files(here):
            if mine != theirs:
                log(f"  runs/{folder} is another training (started {mine}) than its parked copy (started {theirs}): keeping "
                    "the one here; `reproduce --restart` discards both")
                continue
            if done >= parked_done:
                continue
        _mirror(parked, here)
        restored.append(folder)
    return restored


def discard_parked(folders: list[str]) -> None:
    """Delete the parked copies of these run folders (``reproduce --restart``)."""
    for folder in folders:
        shutil.rmtree(parked_root() / folder, ignore_errors=True)
