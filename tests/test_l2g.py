"""L2G: the meta-gradient against float64 central differences of eq. 4, and task pairs that must not share a class."""

import numpy as np
import pytest
import torch
from torch import nn

from metarepro.data.samplers import disjoint_pair
from metarepro.episodes import Episode
from methods.l2g import L2G, TaskPairs, l2g_objective
from methods.protonet import ProtoNet
from methods.relationnet import RelationNet


def _episode(g, ways, shots, queries, size=8, dtype=torch.float64):
    x = torch.rand(ways * (shots + queries), 1, size, size, generator=g, dtype=dtype)
    y = torch.arange(ways).repeat_interleave(shots)
    qy = torch.arange(ways).repeat_interleave(queries)
    return Episode(x[: ways * shots], y, x[ways * shots :], qy)


class TinyEmbedding(nn.Module):
    """A small smooth embedding (no BatchNorm or ReLU kinks, so central differences are exact to O(h^2))."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, stride=2)
        self.fc = nn.Linear(27, 4)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _central_differences(fn, params, h=1e-6):
    grads = []
    for p in params.values():
        g = torch.zeros_like(p)
        flat, gflat = p.data.view(-1), g.view(-1)
        for k in range(flat.numel()):
            old = float(flat[k])
            flat[k] = old + h
            up = float(fn().detach())
            flat[k] = old - h
            down = float(fn().detach())
            flat[k] = old
            gflat[k] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def test_second_order_meta_gradient_matches_float64_finite_differences():
    torch.manual_seed(0)
    model = ProtoNet(TinyEmbedding()).double()
    g = torch.Generator().manual_seed(1)
    first, second = _episode(g, 3, 2, 2), _episode(g, 3, 1, 2)
    l2g = L2G(model, inner_lr=0.5)
    params = dict(model.named_parameters())
    analytic = torch.autograd.grad(l2g.outer_loss(TaskPairs([first], [second])), list(params.values()))
    numeric = _central_differences(lambda: l2g_objective(model, {n: p.detach().requires_grad_() for n, p in params.items()}, first, second, 0.5),
                                   params)
    for a, n in zip(analytic, numeric):
        torch.testing.assert_close(a, n, rtol=1e-6, atol=1e-8)
    # the inner step matters: without it (alpha = 0) the gradient is a different one
    plain = torch.autograd.grad(model(second), list(params.values()))
    assert max(float((a - p).abs().max()) for a, p in zip(analytic, plain)) > 1e-3
    # and so does the second-order term
    first_order = torch.autograd.grad(L2G(model, 0.5, first_order=True).outer_loss(TaskPairs([first], [second])), list(params.values()))
    assert max(float((a - f).abs().max()) for a, f in zip(analytic, first_order)) > 1e-4


def _eq8_by_hand(embedding, params, episode):
    """L2G eq. 8 with explicit loops: sum over queries of d(rho_y, f(x)) + log sum_c exp(-d(rho_c, f(x))), rho_c = mean support."""
    z = torch.func.functional_call(embedding, params, (torch.cat([episode.support_x, episode.query_x]),))
    n = len(episode.support_y)
    support, query = z[:n], z[n:]
    ways = int(episode.support_y.max()) + 1
    rho = [support[episode.support_y == c].mean(0) for c in range(ways)]
    total = 0.0
    for x, y in zip(query, episode.query_y):
        d = torch.stack([((r - x) ** 2).sum() for r in rho])
        total = total + d[int(y)] + torch.log(torch.exp(-d).sum())
    return total


@pytest.mark.parametrize("loss", ["sum", "mean"])
def test_l2g_objective_is_eq4_with_eq8_by_hand(loss):
    """theta' = theta - alpha grad L_{T_i}(theta) on the FIRST task, then L_{T_j}(theta') on the second (eqs. 3-4), with the
    loss of eq. 8 written out by hand (summed, or divided by its number of queries for the mean)."""
    torch.manual_seed(0)
    model = ProtoNet(TinyEmbedding()).double()
    g = torch.Generator().manual_seed(3)
    first, second = _episode(g, 3, 2, 2), _episode(g, 3, 1, 3)
    params = dict(model.named_parameters())
    inner_params = {n.removeprefix("backbone."): p for n, p in params.items()}

    def hand(p, e):
        value = _eq8_by_hand(model.backbone, p, e)
        return value if loss == "sum" else value / len(e.query_y)

    step = torch.autograd.grad(hand(inner_params, first), list(inner_params.values()), create_graph=True)
    adapted = {n: p - 0.1 * s for (n, p), s in zip(inner_params.items(), step)}
    expected = hand(adapted, second)
    got = l2g_objective(model, params, first, second, 0.1, loss=loss)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(got, list(params.values())), torch.autograd.grad(expected, list(params.values()))):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    swapped = l2g_objective(model, params, second, first, 0.1, loss=loss)  # the roles of the two tasks are not symmetric
    assert abs(float(swapped - got)) > 1e-3


def test_summed_loss_takes_a_step_as_many_times_longer_as_the_loss_has_terms():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    cases = ((ProtoNet(TinyEmbedding()).double(), _episode(g, 3, 1, 4), 12),
             (RelationNet(1, 28, filters=4).double(), _episode(g, 3, 1, 4, size=28), 36))
    for model, first, terms in cases:
        params = dict(model.named_parameters())
        assert model.loss_terms(first) == terms
        mean_grad = torch.autograd.grad(model(first), list(params.values()))
        sum_value = torch.func.functional_call(model, params, (first,)) * model.loss_terms(first)
        for a, b in zip(torch.autograd.grad(sum_value, list(params.values())), mean_grad):
            torch.testing.assert_close(a, terms * b)
    with pytest.raises(ValueError, match="loss"):
        L2G(ProtoNet(TinyEmbedding()), loss="median")


def test_the_summed_objective_is_the_mean_one_with_a_longer_step_and_a_scaled_outer_loss():
    """L_sum(T_j; theta - a grad L_sum(T_i)) = m_j L_mean(T_j; theta - a m_i grad L_mean(T_i)), m = the loss's terms; for both
    base learners through l2g_objective (m_i, m_j: 12 and 9 queries for ProtoNet, 36 and 27 scores for RelationNet)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(6)
    for model, size, terms in ((ProtoNet(TinyEmbedding()).double(), 8, (12, 9)), (RelationNet(1, 28, filters=4).double(), 28, (36, 27))):
        first, second = _episode(g, 3, 1, 4, size=size), _episode(g, 3, 2, 3, size=size)
        params = dict(model.named_parameters())
        summed = l2g_objective(model, params, first, second, 1e-3, loss="sum")
        mean = l2g_objective(model, params, first, second, 1e-3 * terms[0], loss="mean")
        torch.testing.assert_close(summed, terms[1] * mean, rtol=1e-10, atol=1e-12)
        assert abs(float(summed - terms[1] * l2g_objective(model, params, first, second, 1e-3, loss="mean"))) > 1e-8


def test_relation_network_runs_under_l2g():
    torch.manual_seed(0)
    model = RelationNet(1, 28, filters=4)
    g = torch.Generator().manual_seed(2)
    pairs = TaskPairs([_episode(g, 3, 1, 2, 28, torch.float32)] * 2, [_episode(g, 3, 1, 2, 28, torch.float32)] * 2)
    loss = L2G(model).outer_loss(pairs)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_pairs_that_share_a_class_are_refused():
    e = Episode(torch.zeros(2, 1, 2, 2), torch.arange(2), torch.zeros(2, 1, 2, 2), torch.arange(2))
    with pytest.raises(ValueError, match="share 1 class"):
        TaskPairs([e], [e], [np.array([3, 7])], [np.array([7, 9])])
    TaskPairs([e], [e], [np.array([3, 7])], [np.array([8, 9])])  # disjoint: accepted


def test_the_sampler_gives_l2g_disjoint_pairs_and_the_check_would_catch_a_shared_class(tmp_path):
    """Built from ``disjoint_pair`` on a real pool of Omniglot-like classes, many draws: never a shared class."""
    from metarepro.data.fixtures import make_omniglot
    from metarepro.data.omniglot import ClassPool, load_cache

    root = make_omniglot(tmp_path, alphabets=(("images_background", "Alpha", 10), ("images_evaluation", "Beta", 2)))
    cache = load_cache(root, 28, "nearest", log=lambda *_: None)
    pool = ClassPool.from_split(cache, [(c, 0) for c in cache.characters], "all")
    rng = np.random.default_rng(0)
    for _ in range(50):
        ti, tj, ci, cj = disjoint_pair(pool, rng, (5, 1), queries=1)
        TaskPairs([ti], [tj], [ci], [cj])
        assert len(np.intersect1d(ci, cj)) == 0


def test_maml_plus_metric_steps_on_the_support_set_and_never_writes_the_model():
    """MAML + ProtoNet: its objective is eq. 4 with T_i = the task's support set classifying itself (checked against an
    explicit step), second order, and a test-time step changes the scores."""
    from methods.maml_metric import MAMLMetric, support_only

    torch.manual_seed(0)
    model = ProtoNet(TinyEmbedding()).double()
    g = torch.Generator().manual_seed(5)
    episode = _episode(g, 3, 2, 2)
    params = dict(model.named_parameters())
    maml = MAMLMetric(model, inner_lr=0.5)
    analytic = torch.autograd.grad(maml.outer_loss(episode), list(params.values()))
    # by hand: one explicit step on the support set, then the episode loss
    inner = torch.autograd.grad(model(Episode(episode.support_x, episode.support_y, episode.support_x, episode.support_y)),
                                list(params.values()), create_graph=True)
    adapted = {n: p - 0.5 * gi for (n, p), gi in zip(params.items(), inner)}
    by_hand = torch.autograd.grad(torch.func.functional_call(model, adapted, (episode,)), list(params.values()))
    for a, b in zip(analytic, by_hand):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert torch.equal(support_only(episode).query_x, episode.support_x)
    before = {n: p.detach().clone() for n, p in params.items()}
    maml.score(episode)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())  # adaptation never writes to the model
