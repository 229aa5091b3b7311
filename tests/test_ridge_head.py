"""R2-D2's ridge head against numpy's solve of the primal, and its gradients against finite differences (gradcheck)."""

import math

import numpy as np
import pytest
import torch

from methods.ridge_head import RidgeHead, ridge_weights


@pytest.mark.parametrize("n, d", [(10, 32), (40, 8)])  # Woodbury (n <= d) and the normal equations
def test_ridge_weights_solve_the_primal(n, d):
    g = np.random.default_rng(0)
    x, y = g.normal(size=(2, n, d)), g.normal(size=(2, n, 3))
    ours = ridge_weights(torch.from_numpy(x), torch.from_numpy(y), 50.0).numpy()
    for t in range(2):
        primal = np.linalg.solve(x[t].T @ x[t] + 50.0 * np.eye(d), x[t].T @ y[t])
        assert np.abs(ours[t] - primal).max() < 1e-12


def _numpy_r2d2_logits(s, labels, q, ways, lam, scale, bias):
    """Bertinetto et al.'s code, written with numpy: a bias column, features and targets over sqrt(n), primal solve."""
    n = len(labels)
    x = np.hstack([s, np.ones((n, 1))]) / math.sqrt(n)
    y = np.eye(ways)[labels] / math.sqrt(n)
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)
    return scale * (q @ w[:-1] + w[-1]) + bias


def test_the_r2d2_form_is_the_authors_ridge_regression():
    g = torch.Generator().manual_seed(1)
    support, query = torch.randn(2, 10, 24, generator=g, dtype=torch.float64), torch.randn(2, 7, 24, generator=g, dtype=torch.float64)
    labels = torch.arange(5).repeat(2).expand(2, -1)
    head = RidgeHead(form="r2d2", init_scale=10.0).double()
    with torch.no_grad():
        head.bias.fill_(0.3)
        ours = head(support, labels, query, 5).numpy()
    for t in range(2):
        want = _numpy_r2d2_logits(support[t].numpy(), labels[t].numpy(), query[t].numpy(), 5, 50.0, 10.0, 0.3)
        assert np.abs(ours[t] - want).max() < 1e-12


def test_the_metaoptnet_form_has_no_bias_and_no_rescaling():
    g = torch.Generator().manual_seed(2)
    support, query = torch.randn(1, 5, 12, generator=g, dtype=torch.float64), torch.randn(1, 4, 12, generator=g, dtype=torch.float64)
    labels = torch.arange(5)[None]
    head = RidgeHead(form="metaoptnet").double()
    s, q = support[0].numpy(), query[0].numpy()
    w = np.linalg.solve(s.T @ s + 50.0 * np.eye(12), s.T @ np.eye(5))
    assert np.abs(head(support, labels, query, 5)[0].detach().numpy() - q @ w).max() < 1e-12
    assert not head.bias.requires_grad and head.scale.item() == 1.0


@pytest.mark.parametrize("form", ["r2d2", "metaoptnet"])
def test_gradients_through_the_closed_form_match_finite_differences(form):
    g = torch.Generator().manual_seed(3)
    support = torch.randn(1, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    query = torch.randn(1, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(3).repeat(2)[None]
    head = RidgeHead(form=form, lam=0.5).double()
    assert torch.autograd.gradcheck(lambda s, q: head(s, labels, q, 3), (support, query))
