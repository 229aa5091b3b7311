"""The ResNet-12 of ALFA's code (Baik et al., NeurIPS 2020; github.com/baiksung/ALFA ``meta_neural_network_architectures.py``:
``ResNet12`` of ``MetaMaxResLayerReLU`` blocks; facts read in session 13, file:line in ``logs/alfa_research.md``), a whole
classifier the inner loop adapts (MAML, ALFA, L2F), not MetaOptNet's ResNet-12 (``methods.resnet12``).

Differences from MetaOptNet's: widths 64-128-256-512 (not 64-160-320-640), plain ReLU (not leaky 0.1), no DropBlock or
dropout, 2x2 max-pooling after blocks 1-3 only (the third padded by 1: 84 px -> 42, 21, 11, 11), global average pooling
into a linear head that the inner loop adapts, Xavier-uniform kernels, and BatchNorm that always normalises with the
statistics of the batch at hand (no running statistics; ``F.batch_norm(..., training=True)`` at evaluation too), its
scale and offset meta-learned but left out of the inner loop (:attr:`ALFAResNet12.norm_names`).

Block: ``relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + bn_s(conv_s(x)))``, then the block's pooling; 3x3 convs
padded by 1, the shortcut a 1x1 conv, every conv without bias. 7,999,365 parameters at 5 ways (the test counts them by
hand).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (64, 128, 256, 512)
POOL_PADDING = (0, 0, 1, None)  # None: block 4 does not pool


class _Norm(nn.Module):
    """BatchNorm's scale and offset as plain parameters, applied with the batch's own statistics."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, pool_padding: int | None):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), _Norm(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _Norm(c_out)
        self.conv3, self.bn3 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _Norm(c_out)
        self.shortcut, self.bn_shortcut = nn.Conv2d(c_in, c_out, 1, bias=False), _Norm(c_out)
        self.pool_padding = pool_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = F.relu(self.bn3(self.conv3(h)) + self.bn_shortcut(self.shortcut(x)))
        return h if self.pool_padding is None else F.max_pool2d(h, 2, 2, padding=self.pool_padding)


class ALFAResNet12(nn.Module):
    """``x (n, C, H, W) -> logits (n, ways)``."""

    PROTOCOL_VERSION = 1

    def __init__(self, in_channels: int = 3, ways: int = 5, widths: tuple[int, ...] = WIDTHS):
        super().__init__()
        channels = (in_channels, *widths)
        self.blocks = nn.ModuleList(_Block(channels[i], channels[i + 1], POOL_PADDING[i]) for i in range(4))
        self.head = nn.Linear(widths[-1], ways)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def norm_names(self) -> tuple[str, ...]:
        """The BatchNorm parameters: meta-learned, left out of the inner loop (pass as ``frozen``)."""
        return tuple(n for n, _ in self.named_parameters() if ".bn" in n)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, C, H, W) -> (n, widths[-1])``: the blocks, then the spatial mean."""
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
