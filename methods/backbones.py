"""Backbone networks shared by the methods.

The sinusoid MLPs and the Conv-4 of the image tables.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU network, e.g. ``MLP([1, 40, 40, 1])``.

    The sinusoid nets of MAML (Finn et al. 2017, sec. 5.1: two hidden layers
    of 40) and ALFA Table 8 (also three hidden layers of 80).

    Initialisation follows MAML's released code (``construct_fc_weights``):
    weights from a normal truncated at two standard deviations, std 0.01,
    biases zero. ``init="torch"`` keeps PyTorch's default instead.
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
        elif init != "torch":
            raise ValueError(f"unknown init {init!r}; choose 'maml' or 'torch'")

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
    """

    def __init__(self, in_channels: int = 1, filters: int = 64, pool: bool = True):
        super().__init__()
        self.pool = pool
        self.blocks = nn.Sequential(*(conv_block(in_channels if i == 0 else filters, filters, pool) for i in range(4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x)
        return h.flatten(1) if self.pool else h.mean(dim=(2, 3))
