"""Reptile against independent references: TF's Adam rule as a float64 numpy loop, the meta step as plain arithmetic,
and supervised-reptile's mini-batch order."""

import numpy as np
import pytest
import torch

from benchmarks.families.omniglot_gbml import minibatch_order
from metarepro.episodes import Episode
from methods.backbones import ConvNet
from methods.reptile import Reptile, adam_beta1_zero


def test_adam_beta1_zero_matches_tensorflow_rule_in_numpy():
    rng = np.random.default_rng(0)
    p, v = rng.normal(size=7), np.zeros(7)
    tp, tv = torch.tensor(p), torch.tensor(v)
    lr, beta2, eps = 1e-3, 0.999, 1e-8
    for t in range(1, 6):
        g = rng.normal(size=7)
        # tf.train.AdamOptimizer: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m = beta1 m + (1 - beta1) g (beta1 = 0: m = g)
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * np.sqrt(1 - beta2**t) / (1 - 0.0**t) * g / (np.sqrt(v) + eps)
        tp, tv = adam_beta1_zero(tp, torch.tensor(g), tv, t, lr, beta2, eps)
    np.testing.assert_allclose(tp.numpy(), p, rtol=1e-13)
    np.testing.assert_allclose(tv.numpy(), v, rtol=1e-13)


def test_minibatch_order_reshuffles_when_the_set_is_used_up():
    order = minibatch_order(np.random.default_rng(1), n=5, batch=2, count=5)  # 10 draws = two shuffles of 5
    assert order.shape == (5, 2)
    flat = order.reshape(-1)
    assert sorted(flat[:5]) == list(range(5)) and sorted(flat[5:]) == list(range(5))  # a batch straddles the two shuffles


def test_meta_step_moves_theta_toward_the_mean_of_sequentially_adapted_weights():
    torch.manual_seed(0)
    net = ConvNet(1, 3, 4, pool=False, features="flatten", image_size=8).double()
    model = Reptile(net, inner_lr=1e-2, inner_batch=3, eval_iters=2, eval_batch=3)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 6, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0]).expand(2, 6)
    batch = Episode(x, y, x[:, :0], y[:, :0])
    theta = {n: p.detach().clone() for n, p in net.named_parameters()}

    # independent reference: the loop spelled out with a stock forward, Adam slots carried from task to task
    v = {n: torch.zeros_like(p) for n, p in theta.items()}
    t, finals = 0, []
    for task in range(2):
        phi = {n: p.clone() for n, p in theta.items()}
        for start in (0, 3):
            leaves = {n: p.clone().requires_grad_() for n, p in phi.items()}
            logits = torch.func.functional_call(net, leaves, (x[task, start : start + 3],))
            grads = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, y[task, start : start + 3]), list(leaves.values()))
            t += 1
            for (n, _), gr in zip(leaves.items(), grads):
                v[n] = 0.999 * v[n] + 0.001 * gr * gr
                phi[n] = phi[n] - 1e-2 * (1 - 0.999**t) ** 0.5 * gr / (v[n].sqrt() + 1e-8)
        finals.append(phi)
    epsilon = 0.7
    expected = {n: theta[n] + epsilon * (sum(f[n] for f in finals) / 2 - theta[n]) for n in theta}

    model.train_step(batch, torch.optim.SGD(net.parameters(), lr=epsilon))
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), expected[n], rtol=1e-10, atol=1e-9)  # conv biases: BN cancels them, gradient is rounding noise
    assert int(model.adam_steps) == 4
    torch.testing.assert_close(model.adam_v__head__weight, v["head.weight"], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("chunk_images", [8192, 9])  # 9 images: chunks of 2 pseudo-tasks, crossing task boundaries
def test_non_transductive_prediction_sees_only_the_support_set_and_one_query(chunk_images, monkeypatch):
    import methods.reptile

    monkeypatch.setattr(methods.reptile, "PSEUDO_TASK_IMAGES", chunk_images)
    torch.manual_seed(2)
    net = ConvNet(1, 3, 4, pool=False, features="flatten", image_size=8).double()
    model = Reptile(net, inner_lr=1e-2, inner_batch=3, eval_iters=2, eval_batch=3, transductive=False)
    g = torch.Generator().manual_seed(3)
    support = torch.rand(2, 3, 1, 8, 8, generator=g, dtype=torch.float64)
    query = torch.rand(2, 4, 1, 8, 8, generator=g, dtype=torch.float64)
    sy, qy = torch.arange(3).expand(2, 3), torch.tensor([0, 1, 2, 0]).expand(2, 4)
    order = torch.tensor([[0, 1, 2], [2, 1, 0]]).expand(2, 2, 3)
    batch = Episode(support, sy, query, qy)
    logits = model.predict(batch, order)
    params = model.adapt(support, sy, order)
    for task in range(2):
        p = {n: v[task] for n, v in params.items()}
        for q in range(4):
            alone = torch.func.functional_call(net, p, (torch.cat([support[task], query[task, q : q + 1]]),))[-1]
            torch.testing.assert_close(logits[task, q], alone, rtol=1e-10, atol=1e-10)
    model.transductive = True
    together = model.predict(batch, order)
    assert (together - logits).abs().max() > 1e-3  # batch statistics of all queries: a different prediction


def test_code_split_variant_draws_the_seeded_split_and_leaves_the_main_models_keys(tmp_path):
    from benchmarks.anchors.nichol2018_table1 import BENCHMARK, TRAINING_KEYS
    from benchmarks.harness.base import Cell
    from metarepro.data.omniglot import DRAWERS, load_cache, seeded_character_split
    from metarepro.results import config_hash

    main, variant = Cell("Reptile", "5-way 1-shot"), Cell("Reptile", "5-way 1-shot", "code-split")
    pools = {c: BENCHMARK.pools(BENCHMARK.config(c, "smoke"), tmp_path) for c in (main, variant)}
    characters = load_cache(tmp_path / "fixture-omniglot-14-20", 28, "nearest", log=lambda *_: None).characters
    train, test = seeded_character_split(characters, 0, 14)

    def names(pool):
        return sorted({characters[r // DRAWERS] for r in pool.rows})

    assert names(pools[variant]["train"]) == sorted(train) and names(pools[variant]["test"]) == sorted(test)
    assert names(pools[main]["train"]) == sorted(characters[:14]) != sorted(train)
    assert len(pools[variant]["train"]) == 4 * 14 and len(pools[variant]["test"]) == 20  # rotations in training only
    cfg = BENCHMARK.config(main, "paper")  # the split keys must not enter the main model's key (its checkpoints)
    assert BENCHMARK.training_key(main, "paper") == "reptile-5w-" + config_hash({k: cfg[k] for k in TRAINING_KEYS})
    assert BENCHMARK.training_key(variant, "paper") != BENCHMARK.training_key(main, "paper")
