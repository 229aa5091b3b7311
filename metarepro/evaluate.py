"""Per-episode scores -> mean and 95% confidence interval."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from metarepro.episodes import Episode

#: z-value of a two-sided 95% normal interval, as MAML's and ProtoNet's code use.
Z95 = 1.96


#: two-sided 95% Student-t quantiles ``t_{0.975, df}`` for df = 1..30 (scipy.stats.t.ppf, to 9 decimals; a test holds them)
T975 = (12.706204736, 4.30265273, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252, 2.306004135, 2.262157163,
        2.228138852, 2.20098516, 2.17881283, 2.160368656, 2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.10092204,
        2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.06865761, 2.063898562, 2.059538553, 2.055529439, 2.051830516,
        2.048407142, 2.045229642, 2.042272456)
#: what a record's scores are: one per test episode, or one per independent training run (the mean over its episodes)
SCORE_UNITS = ("episode", "run")


def t975(df: int) -> float:
    """``t_{0.975, df}``: the table above, then the Cornish-Fisher expansion to 1/df^4 (error < 1e-6 beyond df = 30)."""
    if df < 1:
        raise ValueError(f"a t interval needs at least one degree of freedom, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959963984540054  # the exact normal quantile (Z95 is the codes' rounded 1.96)
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
            + (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / (92160 * df**4))


def mean_ci95(scores: Sequence[float] | np.ndarray, unit: str = "episode") -> tuple[float, float]:
    """Mean and 95% half-width of ``scores``.

    ``unit="episode"`` (hundreds of test episodes): ``1.96 * std / sqrt(n)``
    with the population standard deviation (``ddof=0``), as in MAML's and
    ProtoNet's evaluation code (``np.std``); at n = 600 the two conventions
    differ by 0.08% of the half-width. ``unit="run"`` (a few run means, e.g.
    L2G's five): the Student-t interval ``t_{0.975, n-1} * std_{ddof=1} /
    sqrt(n)``, as the normal one would be ~1.6x too narrow at n = 5.
    """
    if unit not in SCORE_UNITS:
        raise ValueError(f"unknown score unit {unit!r}; choose one of {SCORE_UNITS}")
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D sequence of scores, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores contain NaN or infinity")
    if unit == "run":
        if values.size < 2:
            raise ValueError("an interval over runs needs at least two runs")
        return float(values.mean()), float(t975(values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    return float(values.mean()), float(Z95 * values.std() / math.sqrt(values.size))


#: |R| is clipped below 1 before Fisher's z (a two-point series has R = +-1 and z = +-inf)
MAX_ABS_CORRELATION = 1 - 1e-9


def correlation_across_runs(correlations: Sequence[float]) -> tuple[float, float | None, float | None]:
    """``(R, low, high)``: one correlation coefficient per independent run summarised as Fisher's ``z = atanh(R)``
    averaged over runs, with the 95% Student-t interval of that mean (``t_{0.975, n-1} sd_{ddof=1} / sqrt(n)``), mapped back
    by ``tanh``; the interval is ``None`` for a single run. Correlations over points within one run (epochs) are not
    independent, so a run contributes one R and the interval is over runs."""
    values = np.asarray(correlations, dtype=np.float64)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(np.abs(values) > 1):
        raise ValueError(f"need a non-empty 1-D sequence of finite correlations in [-1, 1], got {correlations!r}")
    z = np.arctanh(np.clip(values, -MAX_ABS_CORRELATION, MAX_ABS_CORRELATION))
    if z.size == 1:
        return float(values[0]), None, None
    half = t975(z.size - 1) * z.std(ddof=1) / math.sqrt(z.size)
    return float(np.tanh(z.mean())), float(np.tanh(z.mean() - half)), float(np.tanh(z.mean() + half))


def peak_segment_z_of_shuffled_steps(x: Sequence[float], y: Sequence[float], after_peak: bool, surrogates: int = 500,
                                     seed: int = 0) -> float:
    """What the correlation on one side of a curve's own peak gives a curve with no order in it: the mean Fisher z of
    Pearson's R(x, y) over the points after (``after_peak``) or before the first maximum of ``y`` (the maximum left out),
    over ``surrogates`` curves that take ``y``'s own steps ``y[k+1] - y[k]`` in a random order (same start and end, same
    ``x``), each split at its own peak. A segment chosen by the curve's own maximum leans to the claimed sign by
    construction, and the more the smoother the curve (a random walk's rise before its maximum); a run's observed z minus
    this one asks whether its rise (or fall) is more orderly than its steps alone make it. NaN if no surrogate leaves
    three points on that side. ``x``, ``y``: ``(n,)``."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    steps = rng.permuted(np.tile(np.diff(y), (surrogates, 1)), axis=1)
    curves = y[0] + np.concatenate([np.zeros((surrogates, 1)), np.cumsum(steps, axis=1)], axis=1)  # (surrogates, n)
    peaks = curves.argmax(axis=1)[:, None]  # the first maximum, as the claims split the observed curve
    index = np.arange(y.size)[None, :]
    side = (index > peaks) if after_peak else (index < peaks)  # each surrogate's segment, (surrogates, n)
    count = side.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = np.where(side, x[None, :] - (side * x).sum(axis=1, keepdims=True) / count[:, None], 0.0)
        dy = np.where(side, curves - (side * curves).sum(axis=1, keepdims=True) / count[:, None], 0.0)
        r = (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    r = r[(count > 2) & np.isfinite(r)]
    return float(np.arctanh(np.clip(r, -MAX_ABS_CORRELATION, MAX_ABS_CORRELATION)).mean()) if r.size else math.nan


def score_episodes(score_fn: Callable[[Episode], torch.Tensor], episodes: Episode, chunk: int = 100) -> np.ndarray:
    """Per-episode scores of a batched test set, ``chunk`` tasks at a time.

    ``score_fn`` maps a batched episode ``(T, ...)`` to ``(T,)`` scores.
    """
    out = []
    for start in range(0, episodes.n_tasks, chunk):
        part = Episode(*(getattr(episodes, f)[start : start + chunk] for f in Episode._fields()))
        out.append(score_fn(part).detach().double().cpu())
    return torch.cat(out).numpy()
