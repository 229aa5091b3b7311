"""Backbone networks shared by the methods.

The sinusoid MLPs and the Conv-4 of the image tables.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU network, e.g. ``MLP([1, 40, 40, 1])``.

    The sinusoid nets of MAML (Finn et al. 2017, sec. 5.1: two hidden layers
    of 40) and ALFA Table 8 (also three hidden layers of 80).

    Initialisation follows MAML's released code (``construct_fc_weights``):
    weights from a normal truncated at two standard deviations, std 0.01,
    biases zero. ``init="xavier"``: Glorot-uniform weights and zero biases, as
    MAML++ and ALFA's released code build their layers (baiksung/ALFA
    ``meta_neural_network_architectures.py``, ``MetaLinearLayer``).
    ``init="torch"`` keeps PyTorch's default instead.
    """

    def __init__(self, sizes: list[int], init: str = "maml"):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least input and output sizes, got {sizes}")
        self.sizes = list(sizes)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        if init == "maml":
            for layer in self.layers:
                nn.init.trunc_normal_(layer.weight, std=0.01, a=-0.02, b=0.02)
                nn.init.zeros_(layer.bias)
        elif init == "xavier":
            for layer in self.layers:
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        elif init != "torch":
            raise ValueError(f"unknown init {init!r}; choose 'maml', 'xavier' or 'torch'")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (n, sizes[0]) -> (n, sizes[-1])``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x

    def forward_batched(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Every task with its own weights in one batched matmul per layer.

        ``params["layers.i.weight"] (T, out, in)``, ``params["layers.i.bias"]
        (T, out)``, ``x (T, n, sizes[0]) -> (T, n, sizes[-1])``.
        """
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            weight, bias = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            if i < last:
                x = torch.relu(x)
        return x


def conv_block(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    """3x3 conv (padding 1) + BatchNorm + ReLU, then 2x2 max-pool or a stride of 2.

    With pooling the module applies the max-pool *before* the ReLU: ReLU is
    monotone, so ``relu(maxpool(x)) == maxpool(relu(x))`` exactly, gradients
    included (ties pick the same first element, and a non-positive maximum gets
    no gradient either way), and the ReLU then touches a quarter of the
    activations (ProtoNet 60-way step: 486 -> 386 ms here). A test holds the
    two orders equal.
    """
    stride = 1 if pool else 2
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1), nn.BatchNorm2d(out_channels)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


#: the memory layouts :class:`Conv4` can compute in on CPU: "channels_last" (NHWC, the default since 2026-12-06: faster,
#: see :meth:`Conv4.forward`) and "nchw" (PyTorch's default layout, in which every earlier record was made). The two give
#: the same features up to float rounding, which can still flip a near-tie: a record names its layout in its provenance
#: (``conv4_cpu_layout``; a record without it was made in "nchw"), and ``metarepro evaluate`` re-scores it in that one
CONV4_CPU_LAYOUTS = ("channels_last", "nchw")
_conv4_cpu_layout = "channels_last"


def conv4_cpu_layout() -> str:
    """The layout :class:`Conv4` computes in on CPU now (one of :data:`CONV4_CPU_LAYOUTS`)."""
    return _conv4_cpu_layout


@contextlib.contextmanager
def conv4_layout(layout: str):
    """Within the block, :class:`Conv4` computes in ``layout`` on CPU (re-scoring a record in the arithmetic that made it)."""
    global _conv4_cpu_layout
    if layout not in CONV4_CPU_LAYOUTS:
        raise ValueError(f"unknown Conv4 layout {layout!r}; one of {CONV4_CPU_LAYOUTS}")
    previous, _conv4_cpu_layout = _conv4_cpu_layout, layout
    try:
        yield
    finally:
        _conv4_cpu_layout = previous


def init_batchnorm_scales(model: nn.Module, how: str) -> None:
    """Start every ``BatchNorm2d`` scale of ``model`` at 1 (``"ones"``: PyTorch 1.2 and later) or uniform in [0, 1)
    (``"uniform"``: PyTorch up to 1.1, ``_BatchNorm.reset_parameters``; pytorch/pytorch#12325 changed it), in place."""
    if how not in ("ones", "uniform"):
        raise ValueError(f"unknown BatchNorm weight initialisation {how!r}; choose 'ones' or 'uniform'")
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight) if how == "ones" else nn.init.uniform_(module.weight)


class Conv4(nn.Module):
    """The four-block convolutional embedding of few-shot learning.

    * ``Conv4(1, 64, pool=True)``: Prototypical Networks on Omniglot (Snell et
      al. 2017, sec. 3.1), 28x28 -> 64 features.
    * ``Conv4(1, 64, pool=False)``: MAML on Omniglot (Finn et al. 2017, sec.
      5.2: "strided convolutions instead of max-pooling"); spatial mean of the
      last block, as in MAML's code for non-pooled nets.
    * ``Conv4(3, 32, pool=True)``: MAML on mini-ImageNet (32 filters, sec. 5.2).

    ``forward``: ``x (n, C, H, W) -> (n, features)`` where ``features`` is the
    flattened last block (pool) or its spatial mean (strided).

    ``bn_weight_init="uniform"``: BatchNorm's scales start uniform in [0, 1), as
    PyTorch up to 1.1 initialised them (``_BatchNorm.reset_parameters``; 1.2
    and later start them at 1, pytorch/pytorch#12325): what code that ran on
    those versions without setting them trained from (Snell et al.'s, PyTorch
    0.4).
    """

    def __init__(self, in_channels: int = 1, filters: int = 64, pool: bool = True, bn_weight_init: str = "ones"):
        super().__init__()
        self.pool = pool
        self.blocks = nn.Sequential(*(conv_block(in_channels if i == 0 else filters, filters, pool) for i in range(4)))
        init_batchnorm_scales(self, bn_weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            # NHWC: oneDNN's convolutions and max-pooling are faster in it on CPU (measured 2026-12-06, one thread, a
            # MetaOptNet-style Omniglot update of 8 episodes x 80 images: 1.11-1.17 s against 1.63-1.78 s; a classical
            # batch of 128: 0.15-0.21 s against 0.20-0.27 s). ``.to`` and not ``.contiguous``: a one-channel NCHW image
            # already counts as channels-last contiguous and would keep its strides, and with them the slow path.
            # Unmeasured on CUDA, so left as it comes there. See :data:`CONV4_CPU_LAYOUTS` for records.
            layout = torch.channels_last if _conv4_cpu_layout == "channels_last" else torch.contiguous_format
            x = x.to(memory_format=layout)
        h = self.blocks(x)
        return h.flatten(1) if self.pool else h.mean(dim=(2, 3))


def conv_per_task_unfolded(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int) -> torch.Tensor:
    """Each task's images through its own kernels as one batched matmul over unfolded patches (im2col), no grouped call.

    ``x (T, n, C, H, W)`` (already padded), ``weight (T, out, C, k, k)``,
    ``bias (T, out)`` -> ``(n, T*out, H', W')``: the channel-block layout of
    :meth:`ConvNet.forward_batched` (task ``t`` in block ``t``). Its
    derivatives of every order are batched matmuls and folds.
    """
    tasks, n, channels = x.shape[:3]
    out, k = weight.shape[1], weight.shape[-1]
    out_h, out_w = (x.shape[3] - k) // stride + 1, (x.shape[4] - k) // stride + 1
    cols = F.unfold(x.reshape(tasks * n, channels, *x.shape[3:]), k, stride=stride)  # (T*n, C*k*k, H'*W')
    cols = cols.view(tasks, n, channels * k * k, -1).transpose(1, 2).reshape(tasks, channels * k * k, -1)
    y = torch.baddbmm(bias.unsqueeze(-1), weight.reshape(tasks, out, -1), cols)  # (T, out, n*H'*W')
    return y.view(tasks, out, n, out_h, out_w).permute(2, 0, 1, 3, 4).reshape(n, tasks * out, out_h, out_w)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``padding='SAME'``: ``(before, after)`` so the output has ``ceil(size / stride)`` positions.

    The extra pixel, when the total is odd, goes *after*: for a stride-2 3x3
    conv on 28 pixels TF pads ``(0, 1)`` where PyTorch's ``padding=1`` pads
    ``(1, 1)``; both give 14 outputs, sampled at different places.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


#: the blocks' nonlinearity: ReLU (MAML's, Reptile's code) or leaky ReLU with PyTorch's slope 0.01 (MAML++'s and ALFA's
#: ``meta_neural_network_architectures.py``: ``F.leaky_relu`` after each BatchNorm); both monotone, so pooling first is exact
ACTIVATIONS = {"relu": F.relu, "leaky_relu": F.leaky_relu}


class _NormAffine(nn.Module):
    """BatchNorm's learnable offset (and scale, unless ``scale=False``) as plain parameters; ``higher`` patches modules, not ParameterLists."""

    def __init__(self, channels: int, scale: bool):
        super().__init__()
        self.scale = scale
        self.bias = nn.Parameter(torch.zeros(channels))
        if scale:
            self.weight = nn.Parameter(torch.ones(channels))


class ConvNet(nn.Module):
    """Conv-4 classifier of the gradient-based methods, evaluated per task with its own fast weights.

    Four blocks of [3x3 conv (TF 'SAME' padding) -> BatchNorm with batch
    statistics -> (2x2 max-pool) -> ReLU], then a linear head on the spatial
    mean (``features="mean"``) or the flattened last block (``"flatten"``).

    * MAML on Omniglot (Finn et al. 2017, sec. 5.2; cbfinn/maml ``maml.py``):
      ``ConvNet(1, ways, 64, pool=False, features="mean", bn_scale=False,
      head_init="normal")``: strided convs, ``tf.contrib.layers.batch_norm``
      defaults (offset only, no scale; eps 1e-3), head ``N(0, 1)``.
    * Reptile on Omniglot (Nichol et al. 2018; openai/supervised-reptile
      ``models.py``): ``ConvNet(1, ways, 64, pool=False,
      features="flatten")``: ``tf.layers.batch_normalization`` (scale and
      offset, eps 1e-3), Glorot-uniform dense head on the 2x2x64 block.

    * ALFA on mini-ImageNet (baiksung/ALFA ``experiment_config/alfa+maml.json`` on MAML++'s
      ``meta_neural_network_architectures.py``): ``ConvNet(3, ways, 48,
      pool=True, features="flatten", image_size=84, activation="leaky_relu")``:
      conv biases, stride-1 convs with 2x2 max-pooling, scale and offset,
      Xavier-uniform kernels and zero biases, the head on the flattened
      5x5x48 block; its BatchNorm stays out of the inner loop (``frozen``).

    BatchNorm never keeps running statistics: both codes normalise with the
    statistics of the batch at hand, at training and at test time.

    :meth:`forward_batched` runs ``T`` tasks in one grouped computation: task
    ``t``'s channels occupy channel block ``t`` of a ``(n, T*C, H, W)``
    tensor, so a grouped convolution applies each task's own kernels and
    ``batch_norm`` over that tensor computes exactly the per-task,
    per-channel statistics. A test holds it equal to a per-task loop, second
    derivatives included, and to float64 finite differences.

    Numerics (measured 2026-11-30, torch 2.13 CPU): oneDNN's grouped
    convolution with *one* input channel per group (the first layer on
    greyscale Omniglot) loses accuracy in second-order meta-gradients: on
    finn2017-table1's 20-way 1-shot workload (16 tasks, 5 steps) the
    grouped form was 1.4e-3 (relative) from the per-task loop where the
    loop is 5e-5 from float64. Replacing only that layer's grouped call by
    per-task calls brings it to 1e-7, so a single-channel first layer runs as
    one batched matmul over unfolded patches (:func:`conv_per_task_unfolded`;
    it replaced a block-diagonal ordinary convolution that was as accurate
    but did T x that layer's FLOPs: 5-way 1-shot meta-iteration 0.245 ->
    0.221 s, one thread). The other layers stay grouped: an unfolded form of
    all four was as fast at 5-way and 1.2-1.3x slower at 20-way, and a grouped
    convolution with a hand-written double backward (native calls, no
    per-group loop in ``_convolution_double_backward``) was exact but only
    1.03-1.11x faster. ``torch.compile`` of the meta-gradient was
    rejected: inductor fails on BatchNorm's double backward without a scale;
    with BatchNorm written out it took 104 s to compile, ran 1.26x slower
    and its meta-gradient was wrong (1.76 relative).
    """

    def __init__(self, in_channels: int = 1, ways: int = 5, filters: int = 64, pool: bool = False, features: str = "mean",
                 image_size: int = 28, bn_scale: bool = True, bn_eps: float = 1e-3, head_init: str = "glorot",
                 activation: str = "relu"):
        super().__init__()
        if features not in ("mean", "flatten"):
            raise ValueError(f"features must be 'mean' or 'flatten', got {features!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.in_channels, self.filters, self.pool, self.features, self.bn_eps = in_channels, filters, pool, features, bn_eps
        self.activation = activation
        self.convs = nn.ModuleList(nn.Conv2d(in_channels if i == 0 else filters, filters, 3) for i in range(4))
        self.norms = nn.ModuleList(_NormAffine(filters, bn_scale) for _ in range(4))
        size = image_size
        for _ in range(4):
            size = size // 2 if pool else -(-size // 2)
        self.final_size = size
        self.head = nn.Linear(filters if features == "mean" else filters * size * size, ways)
        for conv in self.convs:  # tf glorot-uniform kernels, zero biases (both reference codes)
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        if head_init == "normal":  # cbfinn/maml: tf.random_normal([dim_hidden, dim_output]) for non-miniimagenet conv nets
            nn.init.normal_(self.head.weight)
        elif head_init == "glorot":
            nn.init.xavier_uniform_(self.head.weight)
        else:
            raise ValueError(f"head_init must be 'normal' or 'glorot', got {head_init!r}")
        nn.init.zeros_(self.head.bias)

    def own_parameters(self) -> dict[str, torch.Tensor]:
        """Parameters by name, read by attribute (so ``higher``'s patched fast weights are seen)."""
        out = {}
        for i in range(4):
            out[f"convs.{i}.weight"], out[f"convs.{i}.bias"] = self.convs[i].weight, self.convs[i].bias
            out[f"norms.{i}.bias"] = self.norms[i].bias
            if self.norms[i].scale:
                out[f"norms.{i}.weight"] = self.norms[i].weight
        out["head.weight"], out["head.bias"] = self.head.weight, self.head.bias
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (n, C, H, W) -> logits (n, ways)``."""
        params = {k: v.unsqueeze(0) for k, v in self.own_parameters().items()}
        return self.forward_batched(params, x.unsqueeze(0))[0]

    def forward_batched(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``params[name] (T, *shape)``, ``x (T, n, C, H, W) -> logits (T, n, ways)``."""
        feats = self.features_batched(params, x)
        return torch.baddbmm(params["head.bias"].unsqueeze(1), feats, params["head.weight"].transpose(1, 2))

    def features_batched(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``params[name] (T, *shape)``, ``x (T, n, C, H, W) -> (T, n, d)``, the head's inputs."""
        tasks, n = x.shape[:2]
        stride = 1 if self.pool else 2
        unfold_first = x.shape[2] == 1 and tasks > 1  # see the class docstring's numerics
        h = x if unfold_first else x.transpose(0, 1).reshape(n, tasks * x.shape[2], *x.shape[3:])  # (n, T*C, H, W)
        for i in range(4):
            weight, bias = params[f"convs.{i}.weight"], params[f"convs.{i}.bias"]
            pad_h, pad_w = same_padding(h.shape[-2], 3, stride), same_padding(h.shape[-1], 3, stride)
            if i == 0 and unfold_first:
                h = conv_per_task_unfolded(F.pad(x, (*pad_w, *pad_h)), weight, bias, stride)
            else:
                h = F.conv2d(F.pad(h, (*pad_w, *pad_h)), weight.reshape(-1, *weight.shape[2:]), bias.reshape(-1), stride=stride,
                             groups=tasks)
            scale = params.get(f"norms.{i}.weight")
            h = F.batch_norm(h, None, None, None if scale is None else scale.reshape(-1), params[f"norms.{i}.bias"].reshape(-1),
                             training=True, eps=self.bn_eps)
            if self.pool:  # before the (monotone) activation: equal, and cheaper (see conv_block)
                h = F.max_pool2d(h, 2)
            h = ACTIVATIONS[self.activation](h)
        if self.features == "mean":
            feats = h.mean(dim=(2, 3)).view(n, tasks, -1).transpose(0, 1)  # (T, n, filters)
        else:  # (c, h, w) order; TF's (h, w, c) is a permutation of the head's inputs, the same model
            feats = h.reshape(n, tasks, -1).transpose(0, 1)
        return feats
