"""Episodes and seeded task samplers.

An :class:`Episode` is one few-shot task: a support set to adapt on and a query
set to score on. The same class carries a *batch* of episodes when every
tensor has a leading task dimension ``T`` (see :meth:`Episode.stack`), which is
how meta-batches travel through batched inner loops.

Every sampler here is *stateless by index*: the tasks of training batch ``i``
or test episode ``i`` are a pure function of ``(seed, split, i)``. That makes
runs resumable bit for bit (a resumed run draws exactly the batches an
uninterrupted one would) and lets every method of a table see the same test
episodes.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Episode", "SinusoidFamily", "SINUSOID_MAML", "SINUSOID_METASGD", "task_rng"]


@dataclass(frozen=True)
class Episode:
    """One few-shot task, or a batch of them with a leading task dimension.

    Classification: ``support_x (ways*shots, C, H, W)``, ``support_y
    (ways*shots,)`` int64 labels in ``0..ways-1``; ``query_x (n_query, C, H,
    W)``, ``query_y (n_query,)``.

    Regression: ``support_x (shots, d_in)``, ``support_y (shots, d_out)``
    float; likewise for the query.

    Batched: each tensor gains a leading ``T`` (tasks) dimension.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    @staticmethod
    def stack(episodes: list[Episode]) -> Episode:
        """Stack same-shaped episodes into one batched episode, ``(T, ...)``."""
        return Episode(*(torch.stack([getattr(e, f) for e in episodes]) for f in Episode._fields()))

    @staticmethod
    def _fields() -> tuple[str, ...]:
        return ("support_x", "support_y", "query_x", "query_y")

    @property
    def n_tasks(self) -> int:
        """Leading task dimension of a batched episode."""
        return self.support_x.shape[0]

    def task(self, index: int) -> Episode:
        """The ``index``-th task of a batched episode."""
        return Episode(*(getattr(self, f)[index] for f in Episode._fields()))

    def chunks(self, size: int) -> list[Episode]:
        """A batched episode as consecutive batched episodes of at most ``size`` tasks (views, no copy)."""
        return [Episode(*(getattr(self, f)[i : i + size] for f in Episode._fields())) for i in range(0, self.n_tasks, size)]

    def image_tasks(self) -> list[Episode]:
        """The tasks of an image episode, batched ``(T, n, C, H, W)`` or single ``(n, C, H, W)``, one by one."""
        return [self.task(t) for t in range(self.n_tasks)] if self.support_x.dim() == 5 else [self]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Episode:
        """Move to a device; ``dtype`` casts floating tensors only."""

        def move(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return Episode(*(move(getattr(self, f)) for f in Episode._fields()))


_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def task_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of item ``index`` of ``split`` under ``seed``.

    Independent streams per (seed, split, index) via numpy's SeedSequence, so
    batch ``i`` never depends on how many batches were drawn before it.
    """
    code = _SPLIT_CODES.get(split)
    if code is None:  # any other split name still gets its own stream
        code = 3 + zlib.crc32(split.encode())
    return np.random.default_rng([seed, code, index])


def uniform_outside(rng: np.random.Generator, bounds: tuple[float, float], hole: tuple[float, float] | None,
                    size: tuple[int, ...]) -> np.ndarray:
    """Uniform on ``[low, high)`` less ``[hole_low, hole_high)`` (plain uniform when ``hole`` is None): one uniform draw on
    the remaining length, shifted past the hole, so a range without a hole draws exactly what ``rng.uniform`` would."""
    low, high = bounds
    if hole is None:
        return rng.uniform(low, high, size=size)
    if not low <= hole[0] < hole[1] <= high or (hole[0], hole[1]) == (low, high):
        raise ValueError(f"the hole {hole} must lie inside {bounds} and leave part of it")
    draw = rng.uniform(low, high - (hole[1] - hole[0]), size=size)
    return np.where(draw < hole[0], draw, draw + (hole[1] - hole[0]))


@dataclass(frozen=True)
class SinusoidFamily:
    """Sine-wave regression tasks ``y = A sin(w x - phi)``.

    Two published settings (``frequency_range=None`` fixes ``w = 1``):

    * MAML (Finn et al. 2017, sec. 5.1): amplitude in [0.1, 5.0], phase in
      [0, pi], x in [-5, 5].
    * Meta-SGD (Li et al. 2017, sec. 4.1), used by ALFA Table 8: the same
      plus frequency in [0.8, 1.2].

    ``amplitude_hole`` / ``phase_hole`` cut an interval out of a range (the
    value is uniform over what is left): meta-train tasks disjoint from
    meta-test tasks drawn from the hole (Guiroy et al.'s Fig. 8).
    """

    amplitude_range: tuple[float, float] = (0.1, 5.0)
    phase_range: tuple[float, float] = (0.0, math.pi)
    frequency_range: tuple[float, float] | None = None
    x_range: tuple[float, float] = (-5.0, 5.0)
    amplitude_hole: tuple[float, float] | None = None
    phase_hole: tuple[float, float] | None = None

    def sample(self, rng: np.random.Generator, n_tasks: int, n_support: int, n_query: int) -> Episode:
        """Draw ``n_tasks`` tasks as one batched episode.

        Returns ``support_x, support_y (n_tasks, n_support, 1)`` and
        ``query_x, query_y (n_tasks, n_query, 1)``, float32. Support and query
        points are disjoint draws from the same task.
        """
        amplitude = uniform_outside(rng, self.amplitude_range, self.amplitude_hole, (n_tasks, 1))
        phase = uniform_outside(rng, self.phase_range, self.phase_hole, (n_tasks, 1))
        if self.frequency_range is None:
            frequency = np.ones((n_tasks, 1))
        else:
            frequency = rng.uniform(*self.frequency_range, size=(n_tasks, 1))
        x = rng.uniform(*self.x_range, size=(n_tasks, n_support + n_query))
        y = amplitude * np.sin(frequency * x - phase)
        x_t = torch.from_numpy(x).float().unsqueeze(-1)
        y_t = torch.from_numpy(y).float().unsqueeze(-1)
        return Episode(
            support_x=x_t[:, :n_support],
            support_y=y_t[:, :n_support],
            query_x=x_t[:, n_support:],
            query_y=y_t[:, n_support:],
        )

    def train_batch(self, seed: int, index: int, n_tasks: int, n_support: int, n_query: int) -> Episode:
        """Meta-training batch ``index``: a pure function of its arguments."""
        return self.sample(task_rng(seed, "train", index), n_tasks, n_support, n_query)

    def test_episodes(self, seed: int, n_episodes: int, n_support: int, n_query: int) -> Episode:
        """The fixed test episodes ``0..n_episodes-1`` as one batched episode.

        Episode ``i`` is drawn from ``task_rng(seed, "test", i)``, so the first
        100 episodes are the same whether 100 or 600 are asked for.
        """
        episodes = [self.sample(task_rng(seed, "test", i), 1, n_support, n_query) for i in range(n_episodes)]
        return Episode(*(torch.cat([getattr(e, f) for e in episodes]) for f in Episode._fields()))


SINUSOID_MAML = SinusoidFamily()
SINUSOID_METASGD = SinusoidFamily(frequency_range=(0.8, 1.2))
