"""MetaOptNet's SVM head against independent oracles: the QP built by a numpy loop, cvxpy solving it in float64,
central finite differences of cvxpy's solution, and scikit-learn's Crammer-Singer LinearSVC.

Tolerances: cvxpy's oracle is solved by Clarabel to ~1e-9 (its default tolerances tightened), so solutions are held to
1e-6 (qpth, float64, 30 iterations; cvxpylayers, SCS stopped at 1e-9); gradients to
finite differences of step 1e-4 to 1e-4 relative (the difference quotient's own error is ~1e-8, the solutions' ~1e-9
divided by the step)."""

import numpy as np
import pytest
import torch

from methods.svm_head import MetaOptNetSVM, crammer_singer_qp, solve_cvxpylayers, solve_qpth, svm_logits

pytest.importorskip("qpth")
cp = pytest.importorskip("cvxpy")


def episode_batch(tasks=2, ways=5, shots=2, queries=3, dim=16, seed=0, dtype=torch.float64):
    """Random features with class structure (class means plus noise), labels ``0..ways-1`` repeated ``shots`` times."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(tasks, ways, dim, generator=g, dtype=dtype)
    labels = torch.arange(ways).repeat(shots).expand(tasks, -1).contiguous()
    support = means.gather(1, labels[..., None].expand(-1, -1, dim)) + 0.5 * torch.randn(tasks, ways * shots, dim, generator=g, dtype=dtype)
    q_labels = torch.arange(ways).repeat(queries).expand(tasks, -1).contiguous()
    query = means.gather(1, q_labels[..., None].expand(-1, -1, dim)) + 0.5 * torch.randn(tasks, ways * queries, dim, generator=g, dtype=dtype)
    return support, labels, query, q_labels


def cvxpy_dual(support: np.ndarray, labels: np.ndarray, ways: int, C: float, jitter: float) -> np.ndarray:
    """The dual written from Lee et al. eq. 9 for one episode, solved by cvxpy in float64: ``alpha (n, ways)``."""
    n = len(labels)
    onehot = np.eye(ways)[labels]
    alpha = cp.Variable((n, ways))
    w = support.T @ alpha  # (d, ways): w_m = sum_i alpha_i^m x_i
    objective = 0.5 * cp.sum_squares(w) + 0.5 * jitter * cp.sum_squares(alpha) - cp.sum(cp.multiply(onehot, alpha))
    cp.Problem(cp.Minimize(objective), [alpha <= C * onehot, cp.sum(alpha, axis=1) == 0]).solve(
        solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return alpha.value


def test_the_qp_matches_a_loop_written_from_the_dual():
    support, labels, _, _ = episode_batch(tasks=1, ways=3, shots=2, dim=4)
    Q, p, G, h, A, b = (t[0].numpy() for t in crammer_singer_qp(support, labels, 3, C=0.1, jitter=1.0))
    x, y, n, ways = support[0].numpy(), labels[0].numpy(), 6, 3
    for i in range(n):
        for m in range(ways):
            r = i * ways + m
            assert p[r] == -float(y[i] == m) and h[r] == pytest.approx(0.1 * float(y[i] == m))
            for j in range(n):
                for k in range(ways):
                    assert Q[r, j * ways + k] == pytest.approx(x[i] @ x[j] * (m == k) + 1.0 * (r == j * ways + k), abs=1e-12)
            assert np.array_equal(A[:, r], np.eye(n)[i])  # row i sums alpha_i over classes
    assert np.array_equal(G, np.eye(n * ways)) and not b.any()


@pytest.mark.parametrize("jitter", [1.0, 0.0])
def test_both_engines_solve_the_dual_that_cvxpy_solves(jitter):
    support, labels, _, _ = episode_batch()
    oracle = np.stack([cvxpy_dual(s.numpy(), y.numpy(), 5, 0.1, jitter) for s, y in zip(support, labels)])
    qpth = solve_qpth(support, labels, 5, C=0.1, jitter=jitter, iterations=30).numpy()
    layers = solve_cvxpylayers(support, labels, 5, C=0.1, jitter=jitter).numpy()
    assert np.abs(qpth - oracle).max() < 1e-6
    assert np.abs(layers - oracle).max() < 1e-6


def test_the_code_default_of_15_float64_iterations_is_converged_and_3_float32_ones_are_not():
    support, labels, _, _ = episode_batch(shots=5)
    oracle = np.stack([cvxpy_dual(s.numpy(), y.numpy(), 5, 0.1, 1.0) for s, y in zip(support, labels)])
    at15 = solve_qpth(support, labels, 5, iterations=15).numpy()
    at3 = solve_qpth(support.float(), labels, 5, iterations=3).double().numpy()
    assert np.abs(at15 - oracle).max() < 1e-6
    assert np.abs(at3 - oracle).max() > 1e-4  # the paper's 3 iterations stop early (REFERENCE.md: up to 1e-2)


def _loss(alpha: torch.Tensor, support: torch.Tensor, query: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (svm_logits(alpha, support, query) * weights).sum()


def test_gradients_through_the_solution_match_finite_differences_of_cvxpy():
    support, labels, query, _ = episode_batch(tasks=1, ways=3, shots=2, queries=2, dim=8, seed=3)
    weights = torch.randn(1, 6, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    grads = {}
    engines = {"qpth": lambda s: solve_qpth(s, labels, 3, iterations=30), "cvxpylayers": lambda s: solve_cvxpylayers(s, labels, 3)}
    for engine, solve in engines.items():
        s = support.clone().requires_grad_(True)
        _loss(solve(s), s, query, weights).backward()
        grads[engine] = s.grad[0].numpy()

    def loss_of(x: np.ndarray) -> float:
        alpha = torch.from_numpy(cvxpy_dual(x, labels[0].numpy(), 3, 0.1, 1.0))[None]
        return float(_loss(alpha, torch.from_numpy(x)[None], query, weights))

    x0, step = support[0].numpy(), 1e-4
    numeric = np.zeros_like(x0)
    for idx in np.ndindex(*x0.shape):
        plus, minus = x0.copy(), x0.copy()
        plus[idx] += step
        minus[idx] -= step
        numeric[idx] = (loss_of(plus) - loss_of(minus)) / (2 * step)
    scale = np.abs(numeric).max()
    for engine, grad in grads.items():
        assert np.abs(grad - numeric).max() < 1e-4 * scale, engine


def test_without_jitter_the_head_predicts_what_sklearns_crammer_singer_svm_predicts():
    from sklearn.svm import LinearSVC

    support, labels, query, _ = episode_batch(tasks=3, ways=5, shots=5, queries=6, dim=32, seed=5)
    head = MetaOptNetSVM(C=0.1, jitter=0.0, iterations=30, double_precision=True)
    ours = head(support, labels, query, 5).argmax(-1)
    agree = []
    for s, y, q, mine in zip(support, labels, query, ours):
        svm = LinearSVC(multi_class="crammer_singer", C=0.1, fit_intercept=False, tol=1e-8, max_iter=100_000).fit(s.numpy(), y.numpy())
        agree.append(np.array_equal(svm.predict(q.numpy()), mine.numpy()))
        # and the same hyperplanes: w_m = sum_i alpha_i^m x_i
        alpha = head.solve(s[None], y[None], 5)[0]
        assert np.abs((s.T @ alpha).T.numpy() - svm.coef_).max() < 1e-4
    assert all(agree)


def test_the_head_module_batches_scales_and_learns_its_scale():
    support, labels, query, q_labels = episode_batch(dtype=torch.float32)
    head = MetaOptNetSVM()
    assert head.scale.item() == 1.0 and head.scale.requires_grad
    logits = head(support.requires_grad_(True), labels, query, 5)
    assert logits.shape == (2, 15, 5) and logits.dtype == torch.float32
    torch.nn.functional.cross_entropy(logits.reshape(-1, 5), q_labels.reshape(-1)).backward()
    assert head.scale.grad is not None and torch.isfinite(support.grad).all() and support.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="engine"):
        MetaOptNetSVM(engine="nope")
