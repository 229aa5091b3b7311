"""Pinned checkpoints: the weights behind a paper-scale record, kept with the results (issue #15).

When a cell's record is written at a pinned scale (:data:`PINNED_SCALES`), the runner copies the model weights the cell
was scored with (:meth:`~benchmarks.harness.base.Benchmark.scored_checkpoint`; optimizer state and RNG dropped) to
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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.base import Benchmark, Cell
from metarepro import results as R
from metarepro.atomic import atomic_path
from metarepro.data.store import file_digest
from metarepro.trainer import load_checkpoint

#: scales whose records pin their checkpoint (quick and smoke runs are cheap to repeat)
PINNED_SCALES = ("paper",)
#: pinned files up to this size travel in git; larger ones through the DVC cache and remote
GIT_LIMIT_BYTES = 5 * 2**20


def pinned_path(benchmark: Benchmark, cell: Cell, scale: str, root: Path | None = None) -> Path:
    return (root or R.results_dir()) / "checkpoints" / benchmark.id / scale / f"{benchmark.training_key(cell, scale)}.pt"


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def pin_checkpoint(benchmark: Benchmark, cell: Cell, scale: str, scores: np.ndarray, device: str = "cpu",
                   root: Path | None = None) -> dict:
    """Copy the weights that gave ``scores`` next to the records (under ``root``, default the pinned results) and check
    they re-score to ``scores`` (module docstring); the record's ``checkpoint`` entry."""
    source = benchmark.scored_checkpoint(cell, scale)
    if source is None:
        return {"pinned": False, "why": "no single trained model gave the cell's scores (several runs, a grid, or no training)"}
    if not source.is_file():
        return {"pinned": False, "why": f"no checkpoint at {source}"}
    payload = load_checkpoint(source)
    weights = {"format": payload["format"], "config_hash": payload.get("config_hash"), "model": payload["model"]}
    target = pinned_path(benchmark, cell, scale, root)
    # a group's second cell finds the file its first cell pinned: keep it (same bytes, same digest in both records)
    if not (target.is_file() and _same_weights(load_checkpoint(target)["model"], weights["model"])):
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            torch.save(weights, tmp)
    rescored = np.asarray(benchmark.evaluate_checkpoint(target, cell, scale, device=device), dtype=np.float64)
    if rescored.shape != np.shape(scores) or not np.array_equal(rescored, np.asarray(scores, dtype=np.float64)):
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
    return np.asarray(benchmark.evaluate_checkpoint(path, Cell.of(record), record["scale"], device=device)), str(path)
