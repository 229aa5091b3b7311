"""Guiroy et al.'s landscape measures against oracles: the full float64 Hessian's eigenvalues, numpy loops over pairs."""

import itertools

import numpy as np
import torch

from metarepro.landscape import gradient_coherence, hessian_spectral_norm, mean_pairwise_inner, trajectory_coherence


def test_spectral_norm_is_the_largest_absolute_eigenvalue_of_the_full_hessian():
    g = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, generator=g, dtype=torch.float64)
    x, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.tensor([0, 1] * 5)

    def loss(params):
        a, b = params
        return torch.nn.functional.cross_entropy(torch.tanh(x @ a.T) @ b.T, y)

    flat = torch.cat([w1.flatten(), w2.flatten()])
    full = torch.autograd.functional.hessian(lambda v: loss([v[:12].view(4, 3), v[12:].view(2, 4)]), flat)
    want = torch.linalg.eigvalsh(full).abs().max().item()
    got = hessian_spectral_norm(loss, [w1, w2], iterations=2000, tolerance=1e-12, generator=torch.Generator().manual_seed(1))
    assert abs(got - want) < 1e-6 * want


def test_pairwise_means_are_loops_over_distinct_pairs():
    g = np.random.default_rng(0)
    v = g.normal(size=(5, 7))
    pairs = [(i, j) for i, j in itertools.permutations(range(5), 2)]
    assert np.isclose(mean_pairwise_inner(torch.from_numpy(v)).item(), np.mean([v[i] @ v[j] for i, j in pairs]))
    assert np.isclose(gradient_coherence(torch.from_numpy(v)).item(), np.mean([v[i] @ v[j] for i, j in pairs]))
    start = g.normal(size=7)
    units = [(v[i] - start) / np.linalg.norm(v[i] - start) for i in range(5)]
    coherence, distances = trajectory_coherence(torch.from_numpy(v), torch.from_numpy(start))
    assert np.isclose(coherence.item(), np.mean([units[i] @ units[j] for i, j in pairs]))
    assert np.allclose(distances.numpy(), np.linalg.norm(v - start, axis=1))
