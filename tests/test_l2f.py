"""L2F's attenuation and ALFA's per-step, per-layer update on a conv net, against a hand-written per-task loop in numpy
(forward passes by ``functional_call`` on one task at a time, not the batched engine under test), and their
meta-gradients against central finite differences in float64 (step 1e-6; the quotient's error is ~1e-10 relative, held to
1e-6).

Hand-written loop: for each task, the support gradient at the initialisation, its layer-wise means, the attenuator's
``sigmoid(W2 relu(W1 m + b1) + b2)`` (or ALFA's generator), the attenuated start ``gamma_l * theta_l``, then the steps."""

import numpy as np
import pytest
import torch

from metarepro.episodes import SINUSOID_METASGD
from metarepro.inner import cross_entropy_per_task, mse_per_task
from methods.alfa import ALFA
from methods.backbones import MLP, ConvNet
from methods.l2f import L2F
from tests.conftest import assert_gradient_matches_central_differences

FROZEN_BN = tuple(f"norms.{i}.{k}" for i in range(4) for k in ("weight", "bias"))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _linears(seq) -> list:
    return [m for m in seq if isinstance(m, torch.nn.Linear)]


def _mlp_numpy(linears, h: np.ndarray, sigmoid: bool) -> np.ndarray:
    for i, lin in enumerate(linears):
        h = h @ _np(lin.weight).T + _np(lin.bias)
        if i < len(linears) - 1:
            h = np.maximum(h, 0)
    return 1 / (1 + np.exp(-h)) if sigmoid else h


def _task_grads(backbone, theta: dict, names: list, x, y, task_loss) -> dict:
    """The support gradient of one task at ``theta`` (numpy in, numpy out), by ``functional_call`` on that task alone."""
    leaves = {n: torch.tensor(v, requires_grad=n in names) for n, v in theta.items()}
    loss = task_loss(torch.func.functional_call(backbone, leaves, (x,))[None], y[None]).sum()
    return dict(zip(names, (_np(g) for g in torch.autograd.grad(loss, [leaves[n] for n in names]))))


def _perturbed(model, scale=0.1, seed=0):
    """Every meta-parameter moved off its initial value, so no factor is trivially 0 or 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _image_batch(tasks=2, ways=3, shots=2, queries=2, size=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = lambda n: torch.rand(tasks, ways * n, 1, size, size, generator=g, dtype=torch.float64)  # noqa: E731
    y = lambda n: torch.arange(ways).repeat(n).expand(tasks, -1).contiguous()  # noqa: E731
    return x(shots), y(shots), x(queries), y(queries)


def _convnet(ways=3):
    torch.manual_seed(3)
    return ConvNet(1, ways, 4, pool=True, features="mean", image_size=16).double()


@pytest.mark.parametrize("engine", ["func", "loop"])
def test_l2f_attenuates_then_takes_maml_steps_as_a_hand_written_loop(engine):
    torch.manual_seed(0)
    model = _perturbed(L2F(MLP([1, 6, 6, 1], init="torch"), mse_per_task, inner_lr=0.05, inner_steps=2, engine=engine).double())
    batch = SINUSOID_METASGD.train_batch(3, 0, 2, 5, 5).to("cpu", torch.float64)
    adapted = model.adapt(batch.support_x, batch.support_y, training=True)
    names = model.attenuator.names
    for t in range(2):
        theta = {n: _np(p) for n, p in model.backbone.named_parameters()}
        grads = _task_grads(model.backbone, theta, names, batch.support_x[t], batch.support_y[t], mse_per_task)
        gamma = _mlp_numpy(_linears(model.attenuator.net), np.array([grads[n].mean() for n in names]), sigmoid=True)
        theta = {n: gamma[i] * theta[n] for i, n in enumerate(names)}
        for _ in range(2):
            grads = _task_grads(model.backbone, theta, names, batch.support_x[t], batch.support_y[t], mse_per_task)
            theta = {n: theta[n] - 0.05 * grads[n] for n in names}
        for n in names:
            np.testing.assert_allclose(_np(adapted.params[n][t]), theta[n], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("attenuate", [False, True])
def test_alfa_on_a_conv_net_updates_per_step_and_per_layer_as_a_hand_written_loop(attenuate):
    model = _perturbed(ALFA(_convnet(), cross_entropy_per_task, inner_lr=0.05, inner_steps=2, form="code", generator_layers=2,
                            frozen=FROZEN_BN, attenuate=attenuate).double())
    sx, sy, _, _ = _image_batch()
    adapted = model.adapt(sx, sy, training=True)
    names = model.names
    assert len(names) == 10  # 4 conv weights and biases, the head's weight and bias: BatchNorm's are not layers
    for t in range(2):
        theta = {n: _np(p) for n, p in model.backbone.named_parameters()}
        frozen = {n: theta[n] for n in FROZEN_BN}
        if attenuate:
            grads = _task_grads(model.backbone, theta, names, sx[t], sy[t], cross_entropy_per_task)
            gamma = _mlp_numpy(_linears(model.attenuator.net), np.array([grads[n].mean() for n in names]), sigmoid=True)
            theta = {**theta, **{n: gamma[i] * theta[n] for i, n in enumerate(names)}}
        for step in range(2):
            grads = _task_grads(model.backbone, theta, names, sx[t], sy[t], cross_entropy_per_task)
            state = np.array([theta[n].mean() for n in names] + [grads[n].mean() for n in names])
            out = _mlp_numpy(_linears(model.generator), state, sigmoid=False)
            alpha = _np(model.alpha0)[step] * out[:10]
            beta = _np(model.beta0)[step] * out[10:]
            theta = {**theta, **{n: (1 - beta[i]) * theta[n] - alpha[i] * grads[n] for i, n in enumerate(names)}}
        for n in names:
            np.testing.assert_allclose(_np(adapted.params[n][t]), theta[n], rtol=1e-9, atol=1e-12)
        for n, value in frozen.items():  # the inner loop leaves BatchNorm alone
            np.testing.assert_array_equal(_np(adapted.params[n][t]), value)


def _outer(model, batch) -> torch.Tensor:
    sx, sy, qx, qy = batch
    adapted = model.adapt(sx, sy, training=True)
    return model.task_loss(adapted.predict(qx), qy).mean()


def _check_meta_gradient(model, batch, entries):
    """Autograd's meta-gradient at ``entries`` ((parameter, flat index) pairs) against central differences."""
    assert_gradient_matches_central_differences(lambda: _outer(model, batch), entries)


def test_l2f_meta_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = _perturbed(L2F(MLP([1, 6, 6, 1], init="torch"), mse_per_task, 0.05, 2, gradient_graph=True).double())
    b = SINUSOID_METASGD.train_batch(4, 0, 2, 5, 5).to("cpu", torch.float64)
    first, last = _linears(model.attenuator.net)
    layer = model.backbone.layers[1].weight
    _check_meta_gradient(model, (b.support_x, b.support_y, b.query_x, b.query_y),
                         [(first.weight, 3), (last.bias, 1), (layer, 7), (layer, 20)])


def test_l2f_without_the_gradient_graph_still_trains_its_attenuator_exactly():
    """L2F's code takes the attenuator's input without a graph: the meta-gradient of the attenuator's own weights (which
    that input does not depend on) is still exact."""
    torch.manual_seed(0)
    model = _perturbed(L2F(MLP([1, 6, 6, 1], init="torch"), mse_per_task, 0.05, 2).double())
    b = SINUSOID_METASGD.train_batch(5, 0, 2, 5, 5).to("cpu", torch.float64)
    first, last = _linears(model.attenuator.net)
    _check_meta_gradient(model, (b.support_x, b.support_y, b.query_x, b.query_y), [(first.weight, 5), (last.weight, 2), (last.bias, 0)])


def test_alfa_plus_l2f_on_a_conv_net_meta_gradient_matches_finite_differences():
    """ALFA's generator reads the support gradients as constants (the code's), so a finite difference that moves them
    (any meta-parameter upstream of an inner step) sees a dependence autograd does not, by design. With the generator's
    gradient-mean columns zeroed that input is unused and every meta-parameter's gradient is exact: the initialisation,
    the attenuator (whose gradient input ALFA's code differentiates), the generator and the post-multipliers."""
    model = _perturbed(ALFA(_convnet(), cross_entropy_per_task, 0.05, 2, form="code", generator_layers=2, frozen=FROZEN_BN,
                            attenuate=True).double(), scale=0.05)
    first = _linears(model.generator)[0]
    with torch.no_grad():
        first.weight[:, len(model.names):] = 0
    entries = [(first.weight, 3), (model.alpha0, 3), (model.alpha0, 14), (model.beta0, 12), (_linears(model.attenuator.net)[1].bias, 4),
               (_linears(model.attenuator.net)[0].weight, 17), (model.backbone.convs[1].weight, 40), (model.backbone.head.weight, 2),
               (model.backbone.norms[2].bias, 1)]
    _check_meta_gradient(model, _image_batch(seed=4), entries)
