"""The guard against torch's threaded CPU LU fault (``metarepro.lapack``): the heads that solve linear systems stay right
with two intra-op threads at the sizes where the unguarded LU is wrong on this machine (torch 2.13.0+cpu: 2 batched
375 x 375 systems, 300 x 300 ones). Oracles: cvxpy in float64 for the SVM dual, numpy's solve for ridge regression, and
plain single-threaded autograd for the guard's backward pass."""

import numpy as np
import pytest
import torch

from metarepro.lapack import call_one_threaded, one_thread
from methods.ridge_head import ridge_weights
from tests.test_svm_head import cvxpy_dual, episode_batch


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_one_thread_restores_the_thread_count_also_after_an_error(two_threads):
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(ValueError), one_thread():
        raise ValueError
    assert torch.get_num_threads() == 2


def test_the_guard_passes_values_and_first_order_gradients_through(two_threads):
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True), torch.randn(4, generator=g, dtype=torch.float64)
    fn = lambda t: torch.tanh(t @ w).exp()  # noqa: E731
    seen = []
    guarded = call_one_threaded(lambda t: (seen.append(torch.get_num_threads()), fn(t))[1], x)
    (grad,) = torch.autograd.grad(guarded.sum(), x)
    (want,) = torch.autograd.grad(fn(x).sum(), x)
    assert seen == [1] and torch.equal(guarded, fn(x)) and torch.allclose(grad, want, rtol=1e-14, atol=0)


def test_the_svm_head_at_metaoptnets_training_size_with_two_threads(two_threads):
    pytest.importorskip("qpth")
    pytest.importorskip("cvxpy")
    from methods.svm_head import solve_qpth

    support, labels, query, _ = episode_batch(tasks=2, ways=5, shots=15, queries=2, dim=16, seed=4)  # 375-variable QPs
    s = support.clone().requires_grad_(True)
    alpha = solve_qpth(s, labels, 5, iterations=30)
    oracle = np.stack([cvxpy_dual(x.numpy(), y.numpy(), 5, 0.1, 1.0) for x, y in zip(support, labels)])
    assert np.abs(alpha.detach().numpy() - oracle).max() < 1e-6
    weights = torch.randn_like(alpha)
    (grad,) = torch.autograd.grad((alpha * weights).sum(), s)
    torch.set_num_threads(1)  # the same solve and backward on the path that is right without the guard
    s1 = support.clone().requires_grad_(True)
    (want,) = torch.autograd.grad((solve_qpth(s1, labels, 5, iterations=30) * weights).sum(), s1)
    assert torch.allclose(grad, want, rtol=1e-9, atol=1e-12)


def test_ridge_weights_at_r2d2s_omniglot_size_with_two_threads(two_threads):
    g = np.random.default_rng(2)
    n, d = 300, 400  # Woodbury: 300 x 300 systems (R2-D2's 60-way episodes have up to 600 support images)
    x, y = g.normal(size=(2, n, d)), g.normal(size=(2, n, 5))
    ours = ridge_weights(torch.from_numpy(x), torch.from_numpy(y), 50.0).numpy()
    for t in range(2):
        primal = np.linalg.solve(x[t].T @ x[t] + 50.0 * np.eye(d), x[t].T @ y[t])
        assert np.abs(ours[t] - primal).max() < 1e-10
