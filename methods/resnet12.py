"""ResNet-12 with DropBlock, as MetaOptNet builds it (Lee et al., CVPR 2019; kjunelee/MetaOptNet
``models/ResNet12_embedding.py``, ``models/dropblock.py``), the backbone of Goldblum et al.'s ResNet rows.

Four residual blocks of 64, 160, 320, 640 channels. A block: three conv3x3 (no bias) - BatchNorm, LeakyReLU(0.1) after
the first two; the shortcut is a 1x1 conv (stride 1, no bias) - BatchNorm; LeakyReLU(0.1) after the sum, then 2x2
max-pool (stride 2). Regularisation on the block's output: blocks 1-2 plain dropout with ``drop_rate`` (0.1 in
``train.py``), blocks 3-4 DropBlock (Ghiasi et al., NeurIPS 2018) with block size 5 (mini-ImageNet, tiered) or 2
(CIFAR-FS, FC100). Convolutions are Kaiming-normal (fan-out, LeakyReLU gain with slope 0), BatchNorm 1 / 0. Features
are the flattened last block (``avg_pool=False`` in ``train.py``): 640 x 5 x 5 = 16000 at 84 px, 2560 at 32 px, 640 at
28 px. Parameters: 12,424,320 with 3 input channels.

DropBlock as the code computes it (:func:`dropblock_mask`): block seeds are Bernoulli(gamma) on the
``(H - b + 1) x (W - b + 1)`` positions where a whole block fits; a seed at ``(i, j)`` drops ``[i, i + b) x [j, j + b)``
(the code's offsets start at the seed, not centred on it); kept activations are scaled by (elements / kept elements).
Its rate ramps up linearly: ``keep = max(1 - drop_rate * t / 40000, 1 - drop_rate)`` with ``t`` the block's forward
calls so far (the code counts every call, evaluation included), and ``gamma = (1 - keep) / b^2 * H^2 / (H - b + 1)^2``.
The code keeps ``t`` in a Python attribute, lost on a restart; here it is a buffer, so a resumed run continues the ramp
(the code's behaviour across its own uninterrupted runs). Where no block fits (a 1x1 map: 28 px input, block size 2)
the block is left undropped; the code, never run at that size, would fail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: forward calls over which DropBlock's rate ramps from 0 to ``drop_rate`` (the code's ``20*2000``)
RAMP_CALLS = 40_000


def dropblock_mask(seeds: torch.Tensor, block_size: int) -> torch.Tensor:
    """Keep-mask ``(N, C, H, W)`` from 0/1 block seeds ``(N, C, H - b + 1, W - b + 1)``: 0 inside every block
    ``[i, i + b) x [j, j + b)`` of a seed at ``(i, j)``, 1 elsewhere."""
    pad = block_size - 1
    covered = F.max_pool2d(F.pad(seeds, (pad, pad, pad, pad)), block_size, stride=1)
    return 1.0 - covered


def dropblock_gamma(drop_rate: float, calls: int, feature_size: int, block_size: int) -> float:
    """The seed probability after ``calls`` forward calls (module docstring)."""
    keep = max(1.0 - drop_rate / RAMP_CALLS * calls, 1.0 - drop_rate)
    return (1 - keep) / block_size**2 * feature_size**2 / (feature_size - block_size + 1) ** 2


class ResBlock(nn.Module):
    """One residual block of ResNet-12 (module docstring)."""

    def __init__(self, in_channels: int, channels: int, drop_rate: float, drop_block: bool, block_size: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv3, self.bn3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.drop_rate, self.drop_block, self.block_size = drop_rate, drop_block, block_size
        self.register_buffer("forward_calls", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        out = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        out = F.leaky_relu(self.bn2(self.conv2(out)), 0.1)
        out = self.bn3(self.conv3(out))
        out = F.max_pool2d(F.leaky_relu(out + self.shortcut(x), 0.1), 2)
        if self.drop_rate <= 0 or not self.training:
            return out
        if not self.drop_block:
            return F.dropout(out, p=self.drop_rate, training=True)
        n, c, h, w = out.shape
        if h < self.block_size or w < self.block_size:  # no block fits (28 px inputs reach 1x1): the code would fail here
            return out
        gamma = dropblock_gamma(self.drop_rate, int(self.forward_calls), h, self.block_size)
        seeds = torch.bernoulli(torch.full((n, c, h - self.block_size + 1, w - self.block_size + 1), gamma,
                                           dtype=out.dtype, device=out.device))
        mask = dropblock_mask(seeds, self.block_size)
        return mask * out * (mask.numel() / mask.sum().clamp_min(1.0))


class ResNet12(nn.Module):
    """``(N, C, H, W)`` images -> ``(N, d)`` features (module docstring)."""

    PROTOCOL_VERSION = 1

    def __init__(self, in_channels: int = 3, channels: tuple[int, int, int, int] = (64, 160, 320, 640), drop_rate: float = 0.1,
                 dropblock_size: int = 5):
        super().__init__()
        widths = (in_channels, *channels)
        self.blocks = nn.Sequential(*(ResBlock(widths[i], widths[i + 1], drop_rate, i >= 2, dropblock_size) for i in range(4)))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(1)
