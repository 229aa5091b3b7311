"""Hyper-Representation: reverse = forward-mode hypergradients = float64 central differences; the ground model
after T steps converges to scipy's minimiser of the same objective."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import logsumexp
from torch import nn

from metarepro.episodes import Episode
from methods.hyper_representation import HyperRepresentation, ground_gradient, ground_loss, train_ground_model


class TinyRepresentation(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, stride=2)
        self.norm = nn.BatchNorm2d(2, track_running_stats=False)

    def forward(self, x):
        return torch.tanh(self.norm(self.conv(x))).flatten(1)


def _episode(seed=0, ways=3, shots=2, queries=2, size=7):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(ways * (shots + queries), 1, size, size, generator=g, dtype=torch.float64)
    return Episode(x[: ways * shots], torch.arange(ways).repeat_interleave(shots), x[ways * shots :],
                   torch.arange(ways).repeat_interleave(queries))


def _model(mode, steps=3, l2=0.0):
    torch.manual_seed(0)
    return HyperRepresentation(TinyRepresentation(), steps=steps, eta=0.7, l2=l2, mode=mode).double()


@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_forward_and_reverse_hypergradients_agree_and_match_finite_differences(l2):
    batch = Episode.stack([_episode(0), _episode(1)])
    reverse, forward = _model("reverse", l2=l2), _model("forward", l2=l2)
    loss_r, g_r = reverse.hypergradient(batch)
    loss_f, g_f = forward.hypergradient(batch)
    assert float(loss_r) == pytest.approx(float(loss_f), rel=1e-12)
    for a, b in zip(g_r, g_f):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)

    def objective():
        with torch.no_grad():
            return float(torch.stack([reverse.episode_loss(batch.task(t)) for t in range(2)]).mean())

    h = 1e-6
    for p, g in zip(reverse.parameters(), g_r):
        flat = p.data.view(-1)
        for k in range(flat.numel()):
            old = float(flat[k])
            flat[k] = old + h
            up = objective()
            flat[k] = old - h
            down = objective()
            flat[k] = old
            assert float(g.view(-1)[k]) == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9)


def test_eta_is_a_learned_parameter_with_a_nonzero_hypergradient():
    model = _model("reverse")
    names = [n for n, _ in model.named_parameters()]
    _, grads = model.hypergradient(_episode(0))
    assert abs(float(grads[names.index("eta")])) > 1e-4


def _numpy_objective(w_flat, x, y, ways, l2):
    w = w_flat.reshape(ways, x.shape[1] + 1)
    logits = x @ w[:, :-1].T + w[:, -1]
    loss = np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(y)), y])
    return loss + 0.5 * l2 * np.sum(w[:, :-1] ** 2)


def test_ground_model_after_t_steps_approaches_scipys_minimiser_of_the_same_objective():
    rng = np.random.default_rng(0)
    ways, x = 3, rng.normal(size=(9, 4))
    y = np.repeat(np.arange(ways), 3)
    l2 = 0.1
    best = minimize(_numpy_objective, np.zeros(ways * 5), args=(x, y, ways, l2), method="L-BFGS-B",
                    options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000}).x.reshape(ways, 5)
    features, labels = torch.tensor(x), torch.tensor(y)
    errors = [float(np.abs(train_ground_model(features, labels, ways, t, torch.tensor(1.0, dtype=torch.float64), l2).numpy()
                                    - best).max()) for t in (1, 10, 100, 1000)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 1e-2
    assert errors[-1] < 1e-6


def test_meta_training_with_the_forward_mode_lowers_the_outer_loss():
    model = _model("forward", steps=2)
    batch = Episode.stack([_episode(s) for s in range(4)])
    opt = torch.optim.Adam(model.parameters(), lr=5e-2)
    first = float(model.train_step(batch, opt))
    for _ in range(20):
        last = float(model.train_step(batch, opt))
    assert last < first


@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_closed_form_ground_gradient_equals_autograd(l2):
    g = torch.Generator().manual_seed(4)
    w = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    x, y = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2])
    (auto,) = torch.autograd.grad(ground_loss(w, x, y, l2), w)
    torch.testing.assert_close(ground_gradient(w, x, y, l2), auto, rtol=1e-12, atol=1e-14)


def test_support_features_do_not_see_the_queries_under_batch_statistics():
    """With BatchNorm on batch statistics, a joint pass would let the queries shape the support features; each set has its own."""
    from metarepro.episodes import Episode
    from methods.backbones import Conv4

    torch.manual_seed(0)
    model = HyperRepresentation(Conv4(1, 8, pool=True), steps=2).eval()
    for m in model.modules():  # batch statistics in eval mode, as fewshot_metric.use_batch_statistics sets them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
    support_x, y = torch.rand(5, 1, 28, 28), torch.arange(5)
    a = Episode(support_x, y, torch.rand(10, 1, 28, 28), y.repeat(2))
    b = Episode(support_x, y, 3 * torch.rand(10, 1, 28, 28), y.repeat(2))
    assert torch.equal(model.embed(a)[0], model.embed(b)[0])
    joint = [model.representation(torch.cat([e.support_x, e.query_x]))[:5] for e in (a, b)]
    assert (joint[0] - joint[1]).abs().max() > 1e-3  # the check is not vacuous: a joint pass differs


def test_a_checkpoint_restores_its_number_of_ground_steps():
    from methods.backbones import Conv4

    trained = HyperRepresentation(Conv4(1, 8, pool=True), steps=1)
    rebuilt = HyperRepresentation(Conv4(1, 8, pool=True), steps=5)
    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.steps == 1


def test_a_checkpoint_without_its_t_is_refused_with_the_reason():
    from methods.backbones import Conv4

    model = HyperRepresentation(Conv4(1, 8, pool=True), steps=1)
    old = {k: v for k, v in model.state_dict().items() if k != "ground_steps"}
    with pytest.raises(RuntimeError, match="predates separate support/query embedding"):
        HyperRepresentation(Conv4(1, 8, pool=True), steps=5).load_state_dict(old)
