"""Episode samplers over any class pool (Omniglot's ``ClassPool``, the image datasets' ``ImagePool``).

* :func:`sample_episode`: N-way K-shot Q-query, classes optionally excluded.
* :func:`any_way_any_shot`: ways and shots drawn per episode (L2G Table 3:
  shots from {1, 5, 10}, ways from {5, 7, 10}).
* :func:`disjoint_pair`: two tasks on disjoint classes (L2G's inner task
  ``T_i`` and outer task ``T_j``), drawn together without replacement.

Fixed test episodes are addressed by ``(seed, split, index)`` through
:func:`metarepro.episodes.task_rng`. Nothing here decodes an image: pools
read their uint8 caches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from metarepro.episodes import Episode


def class_counts(pool) -> np.ndarray:
    """Images per class of the pool, ``(n_classes,)``."""
    counts = getattr(pool, "counts", None)
    if counts is not None:
        return np.asarray(counts)
    from metarepro.data.omniglot import DRAWERS

    return np.full(len(pool), DRAWERS)


def draw_items(pool, rng: np.random.Generator, classes: np.ndarray, per_class: int) -> np.ndarray:
    """``(len(classes), per_class)`` distinct images of each class; ValueError when a class has fewer."""
    counts = class_counts(pool)[classes]
    if len(counts) and per_class > counts.min():
        raise ValueError(f"{per_class} images per class requested; a chosen class has {counts.min()}")
    return np.stack([rng.choice(int(n), size=per_class, replace=False) for n in counts])


def episode_from(pool, classes: np.ndarray, items: np.ndarray, shots: int) -> Episode:
    """The episode of ``classes (ways,)`` and ``items (ways, shots+queries)``; the first ``shots`` of each class support.

    Images float32 in [0, 1], channel-first ``(n, C, H, W)``; labels ``0..ways-1`` class-major.
    """
    x = torch.from_numpy(np.ascontiguousarray(pool.images(classes, items))).float().div_(255.0)
    if x.dim() == 4:  # Omniglot: (ways, n, H, W) -> one channel
        x = x.unsqueeze(2)
    ways, shape = len(classes), x.shape[2:]
    queries = items.shape[1] - shots
    labels = torch.arange(ways).unsqueeze(1)
    return Episode(x[:, :shots].reshape(ways * shots, *shape), labels.expand(ways, shots).reshape(-1),
                   x[:, shots:].reshape(ways * queries, *shape), labels.expand(ways, queries).reshape(-1))


def sample_episode(pool, rng: np.random.Generator, ways: int, shots: int, queries: int,
                   exclude: Sequence[int] = ()) -> tuple[Episode, np.ndarray]:
    """An N-way K-shot episode and its pool classes ``(ways,)``, never one of ``exclude``."""
    allowed = np.setdiff1d(np.arange(len(pool)), np.asarray(exclude, dtype=np.int64))
    if ways > len(allowed):
        raise ValueError(f"{ways}-way episodes need {ways} classes; {len(allowed)} are available"
                         + (f" after excluding {len(exclude)}" if len(exclude) else ""))
    classes = rng.choice(allowed, size=ways, replace=False)
    return episode_from(pool, classes, draw_items(pool, rng, classes, shots + queries), shots), classes


def any_way_any_shot(pool, rng: np.random.Generator, ways_choices: Sequence[int], shots_choices: Sequence[int], queries: int,
                     exclude: Sequence[int] = ()) -> tuple[Episode, np.ndarray]:
    """An episode whose way and shot counts are drawn uniformly from the choices."""
    ways = int(rng.choice(np.asarray(ways_choices)))
    shots = int(rng.choice(np.asarray(shots_choices)))
    return sample_episode(pool, rng, ways, shots, queries, exclude)


def disjoint_pair(pool, rng: np.random.Generator, first: tuple[int, int], second: tuple[int, int] | None = None,
                  queries: int = 15, second_ways_choices: Sequence[int] | None = None,
                  second_shots_choices: Sequence[int] | None = None) -> tuple[Episode, Episode, np.ndarray, np.ndarray]:
    """Two episodes on disjoint classes: ``(T_i, T_j, classes_i, classes_j)``.

    ``first`` and ``second`` are ``(ways, shots)``; with ``second_*_choices`` the second task is any-way any-shot.
    """
    task_i, classes_i = sample_episode(pool, rng, *first, queries)
    if second_ways_choices is not None or second_shots_choices is not None:
        ways_choices = second_ways_choices or [first[0]]
        shots_choices = second_shots_choices or [first[1]]
        task_j, classes_j = any_way_any_shot(pool, rng, ways_choices, shots_choices, queries, exclude=classes_i)
    else:
        task_j, classes_j = sample_episode(pool, rng, *(second or first), queries, exclude=classes_i)
    return task_i, task_j, classes_i, classes_j
