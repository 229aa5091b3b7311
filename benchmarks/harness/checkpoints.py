"""Pinned checkpoints: the weights behind a paper-scale record, kept with the results (issue #15).

When a cell's record is written at a pinned scale (:data:`PINNED_SCALES`), the runner copies the model weights the cell
was scored with (:meth:`~benchmarks.harness.base.Benchmark.scored_checkpoint`, or the one model of several its run chose:
:meth:`~benchmarks.harness.base.Benchmark.chosen_training`; optimizer state and RNG dropped) to
``results/checkpoints/<benchmark>/<scale>/<training key>.pt``, re-scores that copy through
:meth:`~benchmarks.harness.base.Benchmark.evaluate_checkpoint`, and only if the re-scored per-episode scores equal the
record's names it in the record: ``checkpoint = {"path", "sha256", "bytes"}`` (path relative to the results root). A
copy that does not re-score identically is deleted and the record says why (``checkpoint = {"pinned": false, "why"}``).
Cells that share one trained model share the file.

``metarepro evaluate ID --cell C --scale paper`` (no ``--checkpoint``) checks the digest and re-scores the pinned file.
Identical on the machine and torch build that wrote it (CPU float32, fixed episodes); on another CPU or a GPU the
reductions' order may differ, so accuracy can move by one query image in rare episodes and MSE in its last digits.
Small files (a Conv-4 is ~0.45 MB) are DVC outputs kept in git; files above :data:`GIT_LIMIT_BYTES` are DVC-cached
outputs that go to the DVC remote the user configures (``dvc remote add``, ``dvc push``: README).

A pinned file also stands in for a finished training whose run folder is gone (``runs/`` is not committed; a new machine
has none): :func:`pinned_training` finds the weights a current record pinned for a training key, with that record's
segments, so a benchmark that needs the trained model again (``unraveling-omniglot`` measuring the cross-head matrix's
extractors) loads them instead of training it anew.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.base import Benchmark, Cell
from metarepro import results as R
from metarepro.atomic import atomic_path
from metarepro.data.store import file_digest
from metarepro.trainer import TrainState, load_checkpoint
from methods.backbones import conv4_layout

#: scales whose records pin their checkpoint (quick and smoke runs are cheap to repeat)
PINNED_SCALES = ("paper",)
#: pinned files up to this size travel in git; larger ones through the DVC cache and remote
GIT_LIMIT_BYTES = 5 * 2**20


def pinned_path(benchmark: Benchmark, cell: Cell, scale: str, root: Path | None = None, key: str | None = None) -> Path:
    """Where the cell's weights are pinned: under its training key, or ``key`` (the one model its run chose of several)."""
    return (root or R.results_dir()) / "checkpoints" / benchmark.id / scale / f"{key or benchmark.training_key(cell, scale)}.pt"


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _under_runs(path: Path) -> str:
    """``path`` as ``runs/...`` where it lies under the runs root (what a committed record may name), else as it is."""
    from benchmarks.harness.paths import runs_dir

    try:
        return (Path("runs") / Path(path).resolve().relative_to(runs_dir().resolve())).as_posix()
    except ValueError:
        return str(path)


def pin_checkpoint(benchmark: Benchmark, cell: Cell, scale: str, scores: np.ndarray, device: str = "cpu",
                   root: Path | None = None, extra: dict | None = None) -> dict:
    """Copy the weights that gave ``scores`` next to the records (under ``root``, default the pinned results) and check
    they re-score to ``scores`` (module docstring; ``extra``, the run's record fields, for
    :meth:`~benchmarks.harness.base.Benchmark.rescore_for_pinning`); the record's ``checkpoint`` entry."""
    chosen = benchmark.chosen_training(cell, scale, extra or {})
    source = benchmark.scored_checkpoint(cell, scale) if chosen is None else chosen[0]
    if source is None:
        return {"pinned": False, "why": "no single trained model gave the cell's scores (several runs, a grid, or no training)"}
    if not source.is_file():
        return {"pinned": False, "why": f"no checkpoint at {_under_runs(source)}"}
    payload = load_checkpoint(source)
    weights = {"format": payload["format"], "config_hash": payload.get("config_hash"), "model": payload["model"]}
    target = pinned_path(benchmark, cell, scale, root, None if chosen is None else chosen[1])
    # a group's second cell finds the file its first cell pinned: keep it (same bytes, same digest in both records)
    wrote = not (target.is_file() and _same_weights(load_checkpoint(target)["model"], weights["model"]))
    if wrote:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            torch.save(weights, tmp)
    rescored = np.asarray(benchmark.rescore_for_pinning(target, cell, scale, extra or {}, device=device), dtype=np.float64)
    if rescored.shape != np.shape(scores) or not np.array_equal(rescored, np.asarray(scores, dtype=np.float64)):
        if wrote:  # a file another record pins (the same weights, already there) stays
            target.unlink(missing_ok=True)
        gap = float(np.max(np.abs(rescored - scores))) if rescored.shape == np.shape(scores) else float("nan")
        return {"pinned": False, "why": f"re-scoring the copied weights of {source.name} did not give the record's scores "
                                        f"(largest per-episode difference {gap:.3g}); not pinned"}
    return {"path": target.relative_to(root or R.results_dir()).as_posix(), "sha256": file_digest(target), "bytes": target.stat().st_size}


def rescore_pinned(benchmark: Benchmark, record: dict, device: str = "cpu", root: Path | None = None) -> tuple[np.ndarray, str]:
    """Re-score a record's pinned checkpoint (``root``: the results root the record lives in): ``(scores, path)``; raises
    ValueError when the record pins none or the file's digest is not the record's."""
    entry = record.get("checkpoint") or {}
    if "path" not in entry:
        why = entry.get("why", "it was made before checkpoints were pinned, or at a scale that does not pin them")
        raise ValueError(f"{benchmark.id} {Cell.of(record).label} [{record['scale']}] pins no checkpoint: {why}")
    path = (root or R.results_dir()) / entry["path"]
    if not path.is_file():
        raise ValueError(f"{path} is missing (a large pinned checkpoint comes from the DVC remote: `dvc pull`)")
    found = file_digest(path)
    if found != entry["sha256"]:
        raise ValueError(f"{path}: sha256 {found}, but the record pins {entry['sha256']}")
    with conv4_layout(record["provenance"].get("conv4_cpu_layout", "nchw")):  # the arithmetic that made the record
        return np.asarray(benchmark.evaluate_checkpoint(path, Cell.of(record), record["scale"], device=device)), str(path)


@dataclass(frozen=True)
class PinnedTraining:
    """A finished training known by the weights a current record pinned (:func:`pinned_training`)."""

    path: Path  # the pinned weights file, under the results root
    record: dict  # the record that pinned them
    #: where the record's scores came from one of its several trainings (a tuned cell's chosen model): that one's entry
    training: dict | None = None

    def weights(self) -> dict:
        return load_checkpoint(self.path)["model"]

    def state(self) -> TrainState:
        """The training's progress as its record gives it: iterations, seconds, loss curve, the selected iteration and the
        segments that trained it (weights, optimizer and RNG states are not pinned: it cannot be trained further). Of one
        training among several, from its own segments (the record's timing and curve cover them all)."""
        if self.training is not None:
            segments = self.training.get("segments", [])
            return TrainState(iteration=int(segments[-1]["iterations"][1]) if segments else 0,
                              elapsed_s=float(sum(s.get("wall_time_s", 0.0) for s in segments)), segments=segments)
        selection = self.record.get("selection") or {}
        trainings = self.record.get("trainings") or [{}]
        return TrainState(iteration=int(self.record["timing"]["iterations_timed"]),
                          elapsed_s=float(self.record["provenance"].get("train_wall_time_s", 0.0)),
                          loss_curve=self.record.get("loss_curve", []), best_value=selection.get("validation_error"),
                          best_iteration=selection.get("selected_iteration"), segments=trainings[0].get("segments", []))

    def trainings(self) -> list[dict]:
        """The record's ``trainings`` (or the one it chose among them), each naming the pinned file the weights now come from."""
        source = self.path.relative_to(R.results_dir()).as_posix()
        chosen = [self.training] if self.training is not None else self.record.get("trainings", [])
        return [{**t, "weights_from": source} for t in chosen]


def pinned_training(key: str, scale: str) -> PinnedTraining | None:
    """The pinned weights of the training ``key`` at ``scale``: a file ``checkpoints/<benchmark>/<scale>/<key>.pt`` that a
    current record of that benchmark pins, with the record's sha256, and the record (module docstring); None if none."""
    from benchmarks import BENCHMARKS
    from benchmarks.harness.runner import record_is_current

    for path in sorted(R.results_dir().glob(f"checkpoints/*/{scale}/{key}.pt")):
        benchmark = BENCHMARKS.get(path.parent.parent.name)
        if benchmark is None:
            continue
        relative, digest = path.relative_to(R.results_dir()).as_posix(), file_digest(path)
        for record in R.load_records(benchmark.id):
            entry = record.get("checkpoint") or {}
            if (record["scale"] == scale and record.get("checkpoint_key") == key and entry.get("path") == relative
                    and entry.get("sha256") == digest and record.get("trainings") and record_is_current(benchmark, record)):
                if len(record["trainings"]) == 1:
                    return PinnedTraining(path, record)
                # several trainings (a tuned cell's, one per coefficient): the one in the key's run folder, if named
                own = [t for t in record["trainings"] if Path(t.get("checkpoint", "")).parent.name == key]
                if len(own) == 1:
                    return PinnedTraining(path, record, own[0])
    return None


def restore_pinned(model: torch.nn.Module, key: str, scale: str, folder: Path) -> TrainState | None:
    """Where ``folder`` (the training's run folder) has no ``checkpoint.pt`` and a current record pinned the weights of
    training ``key`` (:func:`pinned_training`): load them into ``model``, copy them to ``folder/best.pt`` (the file a
    record made from them pins in turn), add the training's segments to the record being made
    (:func:`metarepro.trainer.note_training`) and return its state; else None (train as usual)."""
    from metarepro.trainer import note_training

    if (folder / "checkpoint.pt").is_file():
        return None
    pinned = pinned_training(key, scale)
    if pinned is None:
        return None
    model.load_state_dict(pinned.weights())
    with atomic_path(folder / "best.pt") as tmp:
        shutil.copyfile(pinned.path, tmp)
    for training in pinned.trainings():
        note_training(training)
    return pinned.state()
