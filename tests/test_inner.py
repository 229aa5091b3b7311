"""The inner loop against independent oracles: finite differences, hand loops, higher."""

import numpy as np
import pytest
import torch
from torch import nn

from metarepro.episodes import SINUSOID_METASGD
from metarepro.inner import InnerLoop, adapt_tasks, mse_per_task, run_inner_loop
from methods.alfa import ALFA
from methods.backbones import MLP
from methods.maml import MAML


def tiny_batch(n_tasks=3, shots=4, dtype=torch.float64):
    return SINUSOID_METASGD.train_batch(seed=7, index=0, n_tasks=n_tasks, n_support=shots, n_query=shots).to("cpu", dtype)


def meta_loss(model, batch):
    return model.outer_loss(batch)


def flat_grad(model, batch):
    model.zero_grad()
    meta_loss(model, batch).backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])


def finite_difference_grad(model, batch, eps=1e-6):
    """Central differences of the meta-loss, one parameter element at a time (float64)."""
    grads = []
    with torch.no_grad():
        for p in [p for p in model.parameters() if p.requires_grad]:
            flat = p.view(-1)
            for i in range(flat.numel()):
                old = flat[i].item()
                flat[i] = old + eps
                with torch.enable_grad():
                    up = meta_loss(model, batch).item()
                flat[i] = old - eps
                with torch.enable_grad():
                    down = meta_loss(model, batch).item()
                flat[i] = old
                grads.append((up - down) / (2 * eps))
    return torch.tensor(grads, dtype=torch.float64)


def tiny_mlp():
    torch.manual_seed(3)
    return MLP([1, 6, 6, 1], init="torch").double()


@pytest.mark.parametrize("engine", ["func", "higher"])
def test_second_order_maml_gradient_matches_float64_finite_differences(engine):
    model = MAML(tiny_mlp(), mse_per_task, inner_lr=0.05, inner_steps=2, engine=engine)
    batch = tiny_batch()
    analytic = flat_grad(model, batch)
    numeric = finite_difference_grad(model, batch)
    np.testing.assert_allclose(analytic.numpy(), numeric.numpy(), rtol=1e-5, atol=1e-8)


def test_alfa_meta_gradient_matches_float64_finite_differences():
    """ALFA's meta-gradient, generator and post-multipliers included.

    The generator reads the gradient means *detached* (as the released code
    does), which finite differences would see; zeroing the generator's input
    weights on those means removes that path, so the two must agree exactly.
    """
    torch.manual_seed(0)
    model = ALFA(tiny_mlp(), mse_per_task, inner_lr=0.05, inner_steps=2, form="code", generator_layers=2).double()
    with torch.no_grad():
        model.generator[0].weight[:, len(model.names):] = 0.0
    batch = tiny_batch()
    analytic = flat_grad(model, batch)
    numeric = finite_difference_grad(model, batch)
    np.testing.assert_allclose(analytic.numpy(), numeric.numpy(), rtol=1e-5, atol=1e-8)


def test_first_order_is_the_query_gradient_at_the_adapted_weights():
    model = MAML(tiny_mlp(), mse_per_task, inner_lr=0.1, inner_steps=2, first_order=True)
    batch = tiny_batch()
    fo = flat_grad(model, batch)

    # Oracle: adapt each task with plain autograd, then take grad L_query at theta' alone.
    expected = torch.zeros_like(fo)
    for t in range(batch.n_tasks):
        net = tiny_mlp()
        net.load_state_dict(model.backbone.state_dict())
        for _ in range(2):
            loss = ((net(batch.support_x[t]) - batch.support_y[t]) ** 2).mean()
            grads = torch.autograd.grad(loss, list(net.parameters()))
            with torch.no_grad():
                for p, g in zip(net.parameters(), grads):
                    p -= 0.1 * g
        loss = ((net(batch.query_x[t]) - batch.query_y[t]) ** 2).mean() / batch.n_tasks
        expected += torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(net.parameters()))])
    np.testing.assert_allclose(fo.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)

    second = flat_grad(MAML(model.backbone, mse_per_task, inner_lr=0.1, inner_steps=2), batch)
    assert (second - fo).abs().max() > 1e-3 * fo.abs().max(), "first order should drop a non-negligible Hessian term"


@pytest.mark.parametrize("method", ["maml", "alfa"])
def test_func_batched_engine_equals_higher_per_task_engine(method):
    batch = tiny_batch(n_tasks=5, shots=5, dtype=torch.float32)
    grads = {}
    for engine in ("func", "loop", "higher"):
        torch.manual_seed(1)
        net = MLP([1, 40, 40, 1])
        if method == "maml":
            model = MAML(net, mse_per_task, 0.01, 3, engine=engine)
        else:
            model = ALFA(net, mse_per_task, 0.01, 3, form="code", generator_layers=2, engine=engine)
        grads[engine] = flat_grad(model, batch)
    assert torch.allclose(grads["func"], grads["higher"], rtol=0, atol=1e-6)
    assert torch.allclose(grads["loop"], grads["higher"], rtol=0, atol=1e-6)
    assert grads["func"].abs().max() > 1e-4  # a meaningful gradient was compared


def test_vmap_path_and_norm_layer_loop_agree_with_higher():
    """Models without forward_batched go through vmap; with BatchNorm, task by task."""
    batch = tiny_batch(n_tasks=3, shots=6, dtype=torch.float64)
    for make in (lambda: nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)),
                 lambda: nn.Sequential(nn.Linear(1, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))):
        grads = []
        for engine in ("func", "higher"):
            torch.manual_seed(2)
            model = MAML(make().double(), mse_per_task, 0.1, 2, engine=engine)
            grads.append(flat_grad(model, batch))
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_rates_per_step_and_per_parameter_follow_the_update_rule():
    """theta <- (1 - decay) theta - lr * grad on 0.5 * ||theta - c||^2, against numpy."""
    c = {"a": torch.tensor([1.0, -2.0], dtype=torch.float64), "b": torch.tensor([3.0], dtype=torch.float64)}
    theta0 = {"a": torch.tensor([[0.5, 0.5]], dtype=torch.float64), "b": torch.tensor([[-1.0]], dtype=torch.float64)}
    lr = [{"a": torch.tensor([0.1, 0.2], dtype=torch.float64), "b": 0.3}, 0.05]
    decay = [0.0, {"a": 0.01, "b": 0.02}]

    def forward(params, x):  # unused output shape trick: loss only needs params
        return torch.cat([params["a"], params["b"]], dim=1)

    def loss(pred, _):
        target = torch.cat([c["a"], c["b"]]).unsqueeze(0)
        return 0.5 * ((pred - target) ** 2).sum(1)

    out = run_inner_loop(forward, loss, {k: v.clone().requires_grad_() for k, v in theta0.items()},
                         torch.zeros(1, 1), torch.zeros(1, 1), InnerLoop(steps=2, lr=lr, decay=decay))
    a, b = theta0["a"].numpy()[0].copy(), theta0["b"].numpy()[0].copy()
    ca, cb = c["a"].numpy(), c["b"].numpy()
    a, b = a - np.array([0.1, 0.2]) * (a - ca), b - 0.3 * (b - cb)
    a, b = (1 - 0.01) * a - 0.05 * (a - ca), (1 - 0.02) * b - 0.05 * (b - cb)
    np.testing.assert_allclose(out["a"].detach().numpy()[0], a, rtol=1e-12)
    np.testing.assert_allclose(out["b"].detach().numpy()[0], b, rtol=1e-12)


def test_adapted_state_is_returned_not_stored():
    model = MAML(MLP([1, 40, 40, 1]), mse_per_task, 0.01, 1)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    batch = tiny_batch(dtype=torch.float32)
    adapted = model.adapt(batch.support_x, batch.support_y)
    assert set(adapted.params) == set(before)
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())
    assert not any(torch.equal(adapted.params[k][0], before[k]) for k in ("layers.2.bias",))


def test_unknown_engine_is_rejected():
    with pytest.raises(ValueError, match="unknown inner-loop engine"):
        InnerLoop(steps=1, engine="jax")
    with pytest.raises(ValueError):
        adapt_tasks(MLP([1, 2, 1]), {}, torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), mse_per_task, InnerLoop(steps=-1))
