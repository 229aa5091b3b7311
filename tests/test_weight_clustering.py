"""Weight-clustered Reptile (Goldblum et al. Algorithm 2) and the filter-normalised distance, against loops."""

import copy

import numpy as np
import torch

from metarepro.episodes import Episode
from methods.backbones import ConvNet
from methods.weight_clustering import WeightClusteredReptile, filter_normalized_distance, filter_normalized_sq_distance


def _net():
    torch.manual_seed(0)
    return ConvNet(1, 3, 4, pool=False, features="mean", bn_scale=False, head_init="normal").double()


def _batch(tasks=3, n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(tasks, n, 1, 28, 28, generator=g, dtype=torch.float64)
    y = torch.arange(3).repeat(n // 3).expand(tasks, -1).clone()
    return Episode(x, y, x[:, :3], y[:, :3])


def test_filter_normalized_distance_is_a_loop_over_filters():
    g = np.random.default_rng(0)
    a = {"w": g.normal(size=(2, 4, 3, 3, 3)), "b": g.normal(size=(2, 4)), "fc": g.normal(size=(2, 5, 7))}
    b = {"w": g.normal(size=(4, 3, 3, 3)), "b": g.normal(size=(4,)), "fc": g.normal(size=(5, 7))}
    want = [sum(np.sum((a[k][t][f] - b[k][f]) ** 2) / np.sum(b[k][f] ** 2) for k in ("w", "fc") for f in range(len(b[k])))
            for t in range(2)]
    got = filter_normalized_sq_distance({k: torch.from_numpy(v) for k, v in a.items()}, {k: torch.from_numpy(v) for k, v in b.items()})
    assert np.allclose(got.numpy(), want, rtol=1e-12)
    assert np.allclose(filter_normalized_distance({k: torch.from_numpy(v) for k, v in a.items()},
                                                  {k: torch.from_numpy(v) for k, v in b.items()}).numpy(), np.sqrt(want))


def test_alpha_zero_is_reptile_with_sgd_tasks_adapted_alone():
    net, batch = _net(), _batch()
    model = WeightClusteredReptile(copy.deepcopy(net), inner_lr=0.1, inner_batch=3, alpha=0.0)
    model.train_step(batch, torch.optim.SGD(model.backbone.parameters(), lr=0.5))
    adapted = []
    for t in range(batch.n_tasks):  # the oracle: each task alone, torch.optim.SGD on a copy, its normal forward
        task_net = copy.deepcopy(net)
        sgd = torch.optim.SGD(task_net.parameters(), lr=0.1)
        for i in range(0, 6, 3):
            sgd.zero_grad()
            torch.nn.functional.cross_entropy(task_net(batch.support_x[t, i:i + 3]), batch.support_y[t, i:i + 3]).backward()
            sgd.step()
        adapted.append(dict(task_net.named_parameters()))
    for name, p in net.named_parameters():
        want = p + 0.5 * (torch.stack([a[name] for a in adapted]).mean(0) - p)  # theta + gamma (mean phi - theta)
        assert torch.allclose(dict(model.backbone.named_parameters())[name], want, atol=1e-10), name


def test_the_regulariser_pulls_each_task_toward_the_consensus_by_its_analytic_gradient():
    net, batch = _net(), _batch()
    model = WeightClusteredReptile(net, inner_lr=0.1, inner_batch=6, alpha=0.0)
    g = torch.Generator().manual_seed(3)
    params = {n: p.detach().unsqueeze(0) + 0.05 * torch.randn(3, *p.shape, generator=g, dtype=p.dtype) for n, p in net.named_parameters()}
    one = [(batch.support_x, batch.support_y)]
    plain, _ = model.inner_steps(params, one, 0.0)
    pulled, _ = model.inner_steps(params, one, 0.3)
    for n, p in params.items():
        mean = p.mean(0)
        if p.dim() - 1 >= 2:  # grad of d^2 with the consensus fixed: 2 (theta_i - mean) / ||mean_f||^2 per filter
            norm = mean.flatten(1).pow(2).sum(1).view(-1, *([1] * (mean.dim() - 1)))
            want = plain[n] - 0.1 * 0.3 * 2 * (p - mean) / norm
        else:  # biases and BatchNorm parameters are not measured
            want = plain[n]
        assert torch.allclose(pulled[n], want, atol=1e-12), n
