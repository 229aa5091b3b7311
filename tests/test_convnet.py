"""The grouped, per-task ConvNet of the MAML family against independent references.

Oracles: standard ``torch.nn`` layers task by task (forward), the ``higher``
per-task loop (meta-gradients, float32), and float64 central finite
differences of the meta-loss (second order).
"""

import pytest
import torch
from torch import nn

from metarepro.inner import cross_entropy_per_task
from methods.backbones import ConvNet, same_padding
from methods.maml import MAML


def test_same_padding_matches_tensorflow_by_hand():
    # TF: out = ceil(n / s); pad_total = max((out - 1) * s + k - n, 0); pad_before = pad_total // 2
    assert same_padding(28, 3, 2) == (0, 1)  # out 14: 13*2+3-28 = 1
    assert same_padding(7, 3, 2) == (1, 1)  # out 4: 3*2+3-7 = 2
    assert same_padding(4, 3, 2) == (0, 1)  # out 2: 1*2+3-4 = 1
    assert same_padding(84, 3, 1) == (1, 1)
    net = ConvNet(1, 5, 8, pool=False, features="flatten")
    assert net.final_size == 2 and net.head.in_features == 8 * 2 * 2  # 28 -> 14 -> 7 -> 4 -> 2 (Reptile's 2x2x64)
    assert ConvNet(3, 5, 32, pool=True, features="flatten", image_size=84).head.in_features == 32 * 5 * 5


def _reference_net(net: ConvNet, params: dict, stride: int) -> nn.Sequential:
    """The same network from stock layers, one task's weights copied in."""
    layers = []
    for i in range(4):
        conv = nn.Conv2d(net.in_channels if i == 0 else net.filters, net.filters, 3, stride=stride).double()
        bn = nn.BatchNorm2d(net.filters, eps=net.bn_eps, track_running_stats=False).double()
        with torch.no_grad():
            conv.weight.copy_(params[f"convs.{i}.weight"]), conv.bias.copy_(params[f"convs.{i}.bias"])
            bn.bias.copy_(params[f"norms.{i}.bias"])
            bn.weight.copy_(params[f"norms.{i}.weight"] if f"norms.{i}.weight" in params else torch.ones(net.filters))
        activation = nn.LeakyReLU(0.01) if net.activation == "leaky_relu" else nn.ReLU()  # ALFA's / MAML++'s, or MAML's
        layers += [_TFSame(stride), conv, bn, activation] + ([nn.MaxPool2d(2)] if net.pool else [])
    return nn.Sequential(*layers).double()


class _TFSame(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        (top, bottom), (left, right) = same_padding(x.shape[2], 3, self.stride), same_padding(x.shape[3], 3, self.stride)
        return nn.functional.pad(x, (left, right, top, bottom))


@pytest.mark.parametrize("pool,features,scale,activation", [(False, "mean", False, "relu"), (False, "flatten", True, "relu"),
                                                            (True, "flatten", True, "relu"), (True, "flatten", True, "leaky_relu")])
def test_grouped_tasks_equal_stock_layers_task_by_task(pool, features, scale, activation):
    torch.manual_seed(0)
    net = ConvNet(3, 4, 6, pool=pool, features=features, image_size=20, bn_scale=scale, activation=activation).double()
    tasks, n = 3, 7
    params = {k: v.detach().unsqueeze(0).repeat(tasks, *[1] * v.dim()) + 0.3 * torch.randn(tasks, *v.shape, dtype=torch.float64)
              for k, v in net.own_parameters().items()}  # every task its own weights
    x = torch.randn(tasks, n, 3, 20, 20, dtype=torch.float64)
    out = net.forward_batched(params, x)
    for t in range(tasks):
        p = {k: v[t] for k, v in params.items()}
        h = _reference_net(net, p, 1 if pool else 2)(x[t])
        feats = h.mean((2, 3)) if features == "mean" else h.flatten(1)
        torch.testing.assert_close(out[t], feats @ p["head.weight"].T + p["head.bias"], rtol=1e-10, atol=1e-10)


class StockConvNet(nn.Module):
    """The same classifier from stock layers (Conv2d, BatchNorm2d without running statistics, Linear), weights copied."""

    def __init__(self, net: ConvNet):
        super().__init__()
        params = {k: v.detach() for k, v in net.own_parameters().items()}
        self.body = _reference_net(net, params, 1 if net.pool else 2).to(params["head.weight"].dtype)
        self.head = nn.Linear(net.head.in_features, net.head.out_features).to(params["head.weight"].dtype)
        with torch.no_grad():
            self.head.weight.copy_(params["head.weight"]), self.head.bias.copy_(params["head.bias"])
        self.features = net.features
        for m in self.body:  # MAML keeps BN without scale: hold it at 1
            if isinstance(m, nn.BatchNorm2d) and not net.norms[0].scale:
                m.weight.requires_grad_(False)

    def forward(self, x):
        h = self.body(x)
        return self.head(h.mean((2, 3)) if self.features == "mean" else h.flatten(1))


def _net(dtype, head_init="normal"):
    torch.manual_seed(1)
    return ConvNet(1, 3, 4, pool=False, features="mean", image_size=8, bn_scale=False, head_init=head_init).to(dtype)


def _maml(backbone, engine="func", first_order=False, inner_lr=0.4):
    frozen = [n for n, m in backbone.named_modules() if isinstance(m, nn.BatchNorm2d)]
    frozen = tuple(f"{n}.{p}" for n in frozen for p in ("weight", "bias")) + tuple(f"norms.{i}.bias" for i in range(4))
    return MAML(backbone, cross_entropy_per_task, inner_lr=inner_lr, inner_steps=2, first_order=first_order, engine=engine, frozen=frozen)


def _batch(dtype=torch.float32, tasks=4):
    from metarepro.episodes import Episode

    g = torch.Generator().manual_seed(2)
    y = torch.arange(3).repeat(2).expand(tasks, 6)
    return Episode(torch.rand(tasks, 6, 1, 8, 8, generator=g, dtype=dtype), y, torch.rand(tasks, 6, 1, 8, 8, generator=g, dtype=dtype), y)


def _meta_grads(model):
    params = [p for p in model.backbone.parameters() if p.requires_grad]
    return torch.autograd.grad(model.outer_loss(_batch()), params)


@pytest.mark.parametrize("first_order", [False, True])
def test_batched_meta_gradient_equals_the_per_task_loop_and_higher(first_order):
    """Float32, relative error of the whole meta-gradient; conv biases are left out per tensor: BatchNorm
    cancels them, so their exact gradient is 0 and what both sides hold is rounding noise."""
    net = _net(torch.float32, head_init="glorot")
    batched = _meta_grads(_maml(net, first_order=first_order, inner_lr=0.1))
    stock = StockConvNet(net)
    # stock parameter order: (conv w, conv b, bn b) x 4 (bn w frozen at 1, no grad), head; ours: convs, norms, head
    order = [0, 1, 3, 4, 6, 7, 9, 10] + [2, 5, 8, 11] + [12, 13]
    names = list(dict(net.named_parameters()))
    for engine in ("func", "higher"):  # func: the stock net has BatchNorm, so the loop runs task by task
        reference = _meta_grads(_maml(stock, engine, first_order, inner_lr=0.1))
        reference = [reference[i] for i in order]
        whole = torch.cat([(a - b).flatten() for a, b in zip(batched, reference)]).norm() / torch.cat([b.flatten() for b in reference]).norm()
        assert float(whole) < 1e-5, engine
        for name, a, b in zip(names, batched, reference):
            if not (name.startswith("convs.") and name.endswith(".bias")):
                assert float((a - b).norm() / b.norm()) < 1e-5, (engine, name)
    assert all(g.abs().sum() > 0 for g in batched)  # frozen BN offsets are meta-learned: they get an outer gradient
    # ConvNet itself through higher (``reproduce --engine higher``, ``metarepro time``'s "before"): higher must see the
    # fast weights although ConvNet never calls its layers' own forward
    for engine in ("higher", "loop"):  # "loop": ConvNet's own forward_batched, one task at a time
        per_task = _meta_grads(_maml(net, engine, first_order, inner_lr=0.1))
        whole = torch.cat([(a - b).flatten() for a, b in zip(batched, per_task)]).norm() / torch.cat([b.flatten() for b in per_task]).norm()
        assert float(whole) < 1e-5, engine


def test_second_order_meta_gradient_against_float64_finite_differences():
    model = _maml(_net(torch.float64))
    batch = _batch(torch.float64)
    params = list(model.backbone.parameters())
    grads = torch.autograd.grad(model.outer_loss(batch), params)
    g = torch.Generator().manual_seed(3)
    direction = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    eps = 1e-6
    with torch.no_grad():
        base = [p.clone() for p in params]

        def loss_at(sign):
            for p, b, d in zip(params, base, direction):
                p.copy_(b + sign * eps * d)
            with torch.enable_grad():
                return float(model.outer_loss(batch).detach())

        fd = (loss_at(1) - loss_at(-1)) / (2 * eps)
        for p, b in zip(params, base):
            p.copy_(b)
    analytic = float(sum((gr * d).sum() for gr, d in zip(grads, direction)))
    assert abs(analytic - fd) < 1e-6 * max(1.0, abs(fd))
    # the first-order gradient differs measurably: the check can tell the two apart
    first_order = _maml(model.backbone, first_order=True)
    fo = torch.autograd.grad(first_order.outer_loss(batch), params)
    assert abs(float(sum((gr * d).sum() for gr, d in zip(fo, direction))) - fd) > 1e-4


def test_parameter_counts_by_hand():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    convs = lambda c_in, f: (9 * c_in * f + f) + 3 * (9 * f * f + f)  # noqa: E731  3x3 kernels + biases
    # MAML Omniglot 5-way: BN offsets only (tf.contrib batch_norm defaults), head on the 64-d spatial mean
    assert count(ConvNet(1, 5, 64, pool=False, features="mean", bn_scale=False)) == convs(1, 64) + 4 * 64 + (64 * 5 + 5) == 112_005
    # Reptile Omniglot 20-way: BN scale and offset, head on the flattened 2x2x64 block
    assert count(ConvNet(1, 20, 64, pool=False, features="flatten")) == convs(1, 64) + 4 * 128 + (256 * 20 + 20)
    # MAML mini-ImageNet (32 filters) and Guiroy et al.'s (48), max-pool, 84 -> 42 -> 21 -> 10 -> 5, flattened
    for f in (32, 48):
        net = ConvNet(3, 5, f, pool=True, features="flatten", image_size=84, bn_scale=False)
        assert count(net) == convs(3, f) + 4 * f + (f * 25 * 5 + 5)
        assert net(torch.zeros(2, 3, 84, 84)).shape == (2, 5)


@pytest.mark.parametrize("stride", [1, 2])
def test_unfolded_first_layer_is_each_tasks_own_convolution(stride):
    """The im2col first layer == F.conv2d task by task (float64), values, gradients and second derivatives (gradgradcheck)."""
    import torch.nn.functional as F

    from methods.backbones import conv_per_task_unfolded

    g = torch.Generator().manual_seed(0)
    tasks, n, out = 3, 2, 4
    x = torch.rand(tasks, n, 1, 9, 9, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(tasks, out, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(tasks, out, generator=g, dtype=torch.float64, requires_grad=True)
    unfolded = conv_per_task_unfolded(x, w, b, stride)
    per_task = torch.cat([F.conv2d(x[t], w[t], b[t], stride=stride) for t in range(tasks)], dim=1)  # (n, T*out, H', W')
    torch.testing.assert_close(unfolded, per_task, rtol=0, atol=1e-14)
    v = torch.randn(per_task.shape, generator=g, dtype=torch.float64)
    for a, c in zip(torch.autograd.grad((unfolded * v).sum(), (x, w, b)), torch.autograd.grad((per_task * v).sum(), (x, w, b))):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-13)
    assert torch.autograd.gradgradcheck(lambda *a: conv_per_task_unfolded(*a, stride), (x, w, b))
