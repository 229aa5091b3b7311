"""Parked trainings: unfinished training checkpoints kept with the results, so that a new checkout resumes them.

``runs/`` is git-ignored, so a training that outlives the machine it started on (Guiroy et al.'s ~10 CPU-h Omniglot runs,
the cross-head matrix's 2-3 h ones, on machines that may be replaced between sessions) is lost with it. ``metarepro
park`` copies every unfinished training of a parked scale (:data:`PARKED_SCALES`) to
``results/parked/<benchmark>/<scale>/<run>/``, to be committed: its ``checkpoint.pt`` (weights, optimizer, the
training's segments) and any early-stopping ``*best.pt``; Guiroy's per-epoch probe snapshots are not parked (~45 MB a
run), so a run resumed from a parked copy can re-take only the probes of the epochs it trains after. A training counts
as unfinished while a cell it serves, of any benchmark, has no current record (cells of the main protocol, and of a
variant once that variant has records at the scale): ``unraveling-omniglot``'s claims, say, keep the cross-head
matrix's models parked until they have measured them. A parked copy no longer unfinished, or that no current
configuration trains in, is removed by the next ``park``.

``reproduce`` restores a parked checkpoint (:func:`unpark`) before it trains, where ``runs/`` has none or one of fewer
iterations, and the training resumes from it; the checkpoint's segments carry the history, so the record names every
machine that trained it. ``reproduce --restart`` deletes the parked copies of its cells with their run folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.harness.base import MAIN
from benchmarks.harness.paths import runs_dir
from benchmarks.harness.runner import _checkpoint_iteration, is_current, served_folders
from metarepro import results as R
from metarepro.atomic import atomic_path
from metarepro.data.store import file_digest

#: scales whose unfinished trainings are parked (smoke runs take seconds)
PARKED_SCALES = ("quick", "paper")


def parked_root() -> Path:
    """``results/parked`` of the committed results (never a user's local results: parking is for the checkout)."""
    return R.results_dir() / "parked"


def _run_files(folder: Path) -> list[Path]:
    """What is parked of a run folder: its ``checkpoint.pt`` and early-stopping ``*best.pt`` files."""
    return sorted(p for p in folder.glob("*.pt") if p.name == "checkpoint.pt" or p.name.endswith("best.pt"))


def _copy_if_changed(source: Path, target: Path) -> bool:
    if target.is_file() and file_digest(target) == file_digest(source):
        return False
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return True


def park(scales: tuple[str, ...] = PARKED_SCALES) -> list[dict]:
    """Park every unfinished training under the runs root (module docstring); prune parked copies no longer needed.
    One row per run: ``{"run", "action", "iteration", "MB"}``."""
    served = served_folders()
    rows = []
    variants_run = {(r["benchmark"], r["variant"], r["scale"]) for b in {b for cells in served.values() for b, _ in cells}
                    for r in R.load_records(b.id)}

    def finished(folder: str) -> bool:
        """Every cell wanted of this training has a current record: the main protocol's, and a variant's once that
        variant has been run at this scale (an unrun variant sharing the model, e.g. a test-time one, keeps nothing);
        a training only variants without records want is one of them under way."""
        scale = folder.split("/")[1]
        wanted = [(b, c) for b, c in served[folder] if c.variant == MAIN or (b.id, c.variant, scale) in variants_run]
        return bool(wanted) and all(is_current(b, c, scale) for b, c in wanted)

    for checkpoint in sorted(runs_dir().glob("*/*/*/checkpoint.pt")):
        folder = checkpoint.parent.relative_to(runs_dir()).as_posix()
        if folder.split("/")[1] not in scales or folder not in served or finished(folder):
            continue
        target = parked_root() / folder
        changed = [_copy_if_changed(f, target / f.name) for f in _run_files(checkpoint.parent)]
        size = sum(f.stat().st_size for f in _run_files(target)) / 2**20
        rows.append({"run": folder, "action": "parked" if any(changed) else "unchanged",
                     "iteration": _checkpoint_iteration(target / "checkpoint.pt"), "MB": round(size, 2)})
    for checkpoint in sorted(parked_root().glob("*/*/*/checkpoint.pt")):
        folder = checkpoint.parent.relative_to(parked_root()).as_posix()
        if folder not in served or finished(folder):
            shutil.rmtree(checkpoint.parent)
            why = "removed (its cells' records are current)" if folder in served else "removed (no current configuration trains in it)"
            rows.append({"run": folder, "action": why, "iteration": None, "MB": 0.0})
    return rows


def unpark(folders: list[str]) -> list[str]:
    """Restore the parked copies of these run folders (``<benchmark>/<scale>/<run>``) where the runs root has no
    checkpoint or one of fewer iterations; returns the folders restored."""
    restored = []
    for folder in folders:
        parked = parked_root() / folder / "checkpoint.pt"
        if not parked.is_file():
            continue
        here = runs_dir() / folder / "checkpoint.pt"
        if here.is_file() and (_checkpoint_iteration(here) or 0) >= (_checkpoint_iteration(parked) or 0):
            continue
        for f in _run_files(parked.parent):
            _copy_if_changed(f, runs_dir() / folder / f.name)
        restored.append(folder)
    return restored


def discard_parked(folders: list[str]) -> None:
    """Delete the parked copies of these run folders (``reproduce --restart``)."""
    for folder in folders:
        shutil.rmtree(parked_root() / folder, ignore_errors=True)
