"""Backbone networks shared by the methods.

Only the sinusoid MLPs exist so far; the convolutional backbones of the image
tables (Conv-4, ResNet-12) join here with the image data layer.
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
