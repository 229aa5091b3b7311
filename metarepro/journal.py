"""Score journals: the per-episode scores of a long evaluation, kept on disk as they are taken.

Most cells test in a minute; some take hours (vinyals2016-table1's fine-tuned 20-way 5-shot cells fine-tune a network on
each of 1000 test episodes after a six-point grid on 200 validation episodes: ~2 h on one core). A run stopped in such
an evaluation would otherwise lose all of it. A :class:`ScoreJournal` keeps each named series of scores (a grid point's,
the test's) in one JSON file, rewritten atomically at most every ``save_every_s`` seconds and when a series ends; a
later run with the same identity skips the episodes already scored. Episodes are drawn from fixed seeds, so the
*i*-th episode of a resumed run is the one the stopped run scored *i*-th.

The identity names everything a score depends on: the cell's configuration and the weights of the model being scored
(:func:`state_digest`). A journal of another identity (a retrained model, a changed protocol) is discarded, never mixed
in. The journal lives in the run folder of the training it scores, as ``evaluation-<cell>.json``, so ``metarepro park``
keeps it with an unfinished training and ``reproduce --restart`` deletes it with the folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metarepro.atomic import atomic_write_text

#: version of the journal file's layout
JOURNAL_VERSION = 1


def state_digest(module: torch.nn.Module | None) -> str:
    """SHA-256 of a module's parameters and buffers (names, dtypes, shapes and bytes, in ``state_dict`` order); of
    ``None``, the digest of nothing (a cell that scores without a model, e.g. pixels)."""
    digest = hashlib.sha256()
    for name, tensor in ({} if module is None else module.state_dict()).items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return digest.hexdigest()


def _identity_text(identity: dict) -> str:
    return json.dumps(identity, sort_keys=True, default=str)


class ScoreJournal:
    """Named series of per-episode scores of one evaluation, resumed from ``path`` when its identity matches.

    ``identity``: a JSON-able dict of what the scores depend on (e.g. ``{"config": cfg, "model": state_digest(model)}``).
    ``elapsed_s`` is the scoring time of this and every earlier segment, so a resumed cell still reports its whole test
    time. ``path=None`` keeps nothing on disk (an evaluation outside a run, e.g. ``metarepro evaluate``)."""

    def __init__(self, path: Path | None, identity: dict, save_every_s: float = 30.0):
        self.path, self.save_every_s = path, save_every_s
        self.identity = _identity_text(identity)
        self.series: dict[str, list[float]] = {}
        self.earlier_s = 0.0
        self.resumed = 0
        if path is not None and path.is_file():
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError):
                saved = None  # torn or foreign: start afresh (the atomic writer never leaves a torn file itself)
            if saved and saved.get("version") == JOURNAL_VERSION and saved.get("identity") == self.identity:
                self.series = {k: [math.nan if v is None else float(v) for v in vs] for k, vs in saved["series"].items()}
                self.earlier_s = float(saved.get("elapsed_s", 0.0))
                self.resumed = sum(len(v) for v in self.series.values())
        self._started = time.perf_counter()
        self._saved_at = self._started

    @property
    def elapsed_s(self) -> float:
        return self.earlier_s + time.perf_counter() - self._started

    def save(self) -> None:
        if self.path is None:
            return
        series = {k: [v if math.isfinite(v) else None for v in vs] for k, vs in self.series.items()}  # JSON has no NaN
        atomic_write_text(self.path, json.dumps({"version": JOURNAL_VERSION, "identity": self.identity,
                                                 "elapsed_s": round(self.elapsed_s, 3), "series": series}))
        self._saved_at = time.perf_counter()

    def scores(self, name: str, episodes: Sequence[Any] | Iterable[Any], score: Callable[[Any], float],
               total: int | None = None, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """``score(e)`` of each episode of the series ``name``, skipping the ones the journal already holds.

        ``episodes`` may be a lazy iterable (its first ``len(done)`` items are drawn and skipped, so their random draws
        still happen in order); ``total`` its length where it has none. ``progress(done, total)`` is called after each
        episode. A SIGINT or SIGTERM stops after the episode at hand: the journal is saved and ``KeyboardInterrupt`` raised
        (a second signal stops at once, losing at most ``save_every_s`` of scores). Returns the series' scores,
        ``(len(episodes),)``."""
        from metarepro.trainer import StopRequest

        done = self.series.setdefault(name, [])
        total = total if total is not None else len(episodes)  # type: ignore[arg-type]
        with StopRequest() as stop:  # SIGINT / SIGTERM: stop after the episode at hand, its score kept (as training does)
            for i, episode in enumerate(episodes):
                if i < len(done):
                    continue
                done.append(float(score(episode)))
                if progress is not None:
                    progress(len(done), total)
                if stop.requested:
                    self.save()
                    raise KeyboardInterrupt
                if time.perf_counter() - self._saved_at >= self.save_every_s:
                    self.save()
        if len(done) != total:
            raise ValueError(f"series {name!r}: {len(done)} scores for {total} episodes (the episodes changed under a journal "
                             "of the same identity?)")
        self.save()
        return np.array(done, dtype=float)
