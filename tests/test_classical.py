"""Classical training's schedule (Goldblum et al. Appendix A.2) and the linear fine-tuning head against a numpy SGD."""

import numpy as np
import torch

from methods.backbones import Conv4
from methods.classical import ClassicalClassifier, LabelledBatch, classical_lr_factor, classical_schedule, nesterov_sgd
from methods.linear_head import BATCH, DAMPENING, LR, MOMENTUM, WEIGHT_DECAY, LinearHead, initial_layer, minibatch_orders


def test_the_schedule_is_appendix_a2s():
    # CIFAR-FS: 0.1 for the first 100 epochs, then divided by 10 every 50 epochs
    assert [classical_lr_factor(e) for e in (0, 99, 100, 149, 150, 299)] == [1.0, 1.0, 0.1, 0.1, 0.1**2, 0.1**4]
    # mini-ImageNet: 15 warm-up epochs at 0.01 (a tenth of 0.1)
    assert [classical_lr_factor(e, warmup_epochs=15) for e in (0, 14, 15)] == [0.1, 0.1, 1.0]
    assert classical_schedule(10)(1005) == 0.1
    optimizer = nesterov_sgd(torch.nn.Linear(2, 2).parameters())
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.9 and optimizer.defaults["weight_decay"] == 1e-4


def test_classical_loss_is_cross_entropy_over_all_training_classes():
    torch.manual_seed(0)
    model = ClassicalClassifier(Conv4(1, 4, pool=True), 4, 7)
    batch = LabelledBatch(torch.rand(5, 1, 28, 28), torch.tensor([0, 6, 3, 3, 1]))
    want = torch.nn.functional.cross_entropy(model.classifier(model.backbone(batch.x)), batch.y)
    assert model(batch.x).shape == (5, 7) and torch.equal(model.outer_loss(batch), want)


def _numpy_fit(support, labels, ways, seed):
    """Chen et al.'s fine-tuning written out in numpy: SGD with momentum, dampening and weight decay (PyTorch's update:
    buf = g on the first step, then momentum * buf + (1 - dampening) * g), softmax cross-entropy on minibatches of 4."""
    layer = initial_layer(support.shape[1], ways, seed)
    w, b = layer.weight.detach().double().numpy().copy(), layer.bias.detach().double().numpy().copy()
    bufs = None
    for order in minibatch_orders(len(labels), seed):
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            x, y = support[idx], labels[idx]
            z = x @ w.T + b
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            p[np.arange(len(y)), y] -= 1
            gw, gb = p.T @ x / len(y) + WEIGHT_DECAY * w, p.mean(0) + WEIGHT_DECAY * b
            bufs = [gw, gb] if bufs is None else [MOMENTUM * bufs[0] + (1 - DAMPENING) * gw, MOMENTUM * bufs[1] + (1 - DAMPENING) * gb]
            w, b = w - LR * bufs[0], b - LR * bufs[1]
    return w, b


def test_the_linear_head_is_chens_fine_tuning_of_each_episode_alone():
    """Three episodes fitted at once: each episode's logits are those of its own numpy fit (float64)."""
    g = np.random.default_rng(0)
    support, query = g.normal(size=(3, 10, 6)), g.normal(size=(3, 4, 6))
    labels = np.stack([np.arange(5).repeat(2), np.arange(5).repeat(2)[::-1], np.tile(np.arange(5), 2)])
    ours = LinearHead(seed=3).double()(torch.from_numpy(support), torch.from_numpy(labels), torch.from_numpy(query), 5)
    for episode in range(3):
        w, b = _numpy_fit(support[episode], labels[episode], 5, seed=3)
        assert np.abs(ours[episode].numpy() - (query[episode] @ w.T + b)).max() < 1e-10


def test_fine_tuning_a_foreign_backbone_is_sgd_on_a_copy():
    import copy

    from methods.finetune_head import finetune_logits

    torch.manual_seed(0)
    backbone = Conv4(1, 4, pool=True).double()
    g = torch.Generator().manual_seed(1)
    sx, qx = torch.rand(6, 1, 28, 28, generator=g, dtype=torch.float64), torch.rand(4, 1, 28, 28, generator=g, dtype=torch.float64)
    sy = torch.arange(3).repeat(2)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    ours = finetune_logits(backbone, sx, sy, qx, 3, steps=3, lr=0.1)
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())  # adapted state returned, not stored

    net = copy.deepcopy(backbone).eval()
    head = torch.nn.Linear(net(sx[:1]).shape[1], 3).double()
    torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(head(net(sx)), sy).backward()
        optimizer.step()
    assert torch.allclose(ours, head(net(qx)).detach(), atol=1e-12)


def test_the_maml_heads_grid_read_along_one_run_per_step_size_equals_each_point_run_alone():
    """finetune_grid_accuracies reads 1, 2 and 4 steps off one 4-step run; each point scored alone by head_accuracies with
    its own FineTuneHead is the oracle, exactly (the same operations), a diverging step size's NaNs included."""
    from benchmarks.families.unraveling_images import finetune_grid_accuracies, head_accuracies
    from metarepro.episodes import Episode
    from methods.finetune_head import FineTuneHead, finetune, finetune_trajectory

    torch.manual_seed(0)
    backbone = Conv4(1, 8, pool=True)
    g = torch.Generator().manual_seed(2)

    def episode():  # queries are noisy copies of the support images: the fine-tuned accuracy moves with the steps
        support = 3 * torch.randn(6, 1, 28, 28, generator=g)
        query = torch.cat([support, support[:3]]) + 0.3 * torch.randn(9, 1, 28, 28, generator=g)
        return Episode(support, torch.arange(3).repeat(2), query, torch.arange(3).repeat(3))

    episodes = [episode() for _ in range(4)]
    grid = [(0.1, 1), (0.1, 4), (1.0, 1), (1.0, 2), (1.0, 4), (1e6, 1), (1e6, 4)]
    together = finetune_grid_accuracies(backbone, grid, episodes, "cpu")
    alone = {(lr, steps): head_accuracies(backbone, FineTuneHead(steps, lr), episodes, "cpu") for lr, steps in grid}
    assert list(together) == grid
    for point in grid:
        np.testing.assert_array_equal(together[point], alone[point])
    assert np.isnan(together[(1e6, 4)]).all() and np.isfinite(together[(0.1, 4)]).all()
    assert not np.array_equal(together[(0.1, 1)], together[(0.1, 4)])  # the read-outs are of different states
    e = episodes[0]
    states = finetune_trajectory(backbone, e.support_x, e.support_y, 3, 0.1, [1, 4])
    for steps in (1, 4):
        single = finetune(backbone, e.support_x, e.support_y, 3, steps, 0.1)
        assert all(torch.equal(states[steps][0][k], single[0][k]) for k in single[0])
        assert torch.equal(states[steps][2], single[2]) and torch.equal(states[steps][3], single[3])


def test_episodes_scored_together_by_the_linear_head_score_as_each_alone():
    """``head_accuracies`` hands the linear head 100 episodes a call: each episode's accuracy is what scoring it alone
    gives (float64), and episodes of different way counts in one call are refused."""
    from benchmarks.families.unraveling_images import head_accuracies
    from metarepro.episodes import Episode

    backbone = torch.nn.Flatten()  # features: the 16 "pixels" themselves
    g = torch.Generator().manual_seed(1)

    def episode(ways):  # queries: their class's support plus noise, so that episodes score differently
        support, labels = 3 * torch.randn(ways, 1, 4, 4, generator=g, dtype=torch.float64), torch.arange(ways).repeat(3)
        noise = 3 * torch.randn(3 * ways, 1, 4, 4, generator=g, dtype=torch.float64)
        return Episode(support, torch.arange(ways), support[labels] + noise, labels)

    episodes, head = [episode(3) for _ in range(7)], LinearHead(seed=2)
    together = head_accuracies(backbone, head, episodes, "cpu")
    alone = np.array([head_accuracies(backbone, head, [e], "cpu")[0] for e in episodes])
    assert np.array_equal(together, alone) and len(set(together)) > 1
    try:
        head_accuracies(backbone, head, [episode(3), episode(4)], "cpu")
    except ValueError as error:
        assert "same number of ways" in str(error)
    else:
        raise AssertionError("mixed way counts were scored together")
