"""Per-episode scores -> mean and 95% confidence interval."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from metarepro.episodes import Episode

#: z-value of a two-sided 95% normal interval, as MAML's and ProtoNet's code use.
Z95 = 1.96


def mean_ci95(scores: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and 95% half-width ``1.96 * std / sqrt(n)`` of per-episode scores.

    ``std`` is the population standard deviation (``ddof=0``), as in MAML's
    and ProtoNet's evaluation code (``np.std``); at n = 600 the two
    conventions differ by 0.08% of the half-width.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence of scores, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores contain NaN or infinity")
    return float(values.mean()), float(Z95 * values.std() / math.sqrt(values.size))


def score_episodes(score_fn: Callable[[Episode], torch.Tensor], episodes: Episode, chunk: int = 100) -> np.ndarray:
    """Per-episode scores of a batched test set, ``chunk`` tasks at a time.

    ``score_fn`` maps a batched episode ``(T, ...)`` to ``(T,)`` scores.
    """
    out = []
    for start in range(0, episodes.n_tasks, chunk):
        part = Episode(*(getattr(episodes, f)[start : start + chunk] for f in Episode._fields()))
        out.append(score_fn(part).detach().double().cpu())
    return torch.cat(out).numpy()
