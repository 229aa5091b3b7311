"""The 96-192-384-512 conv net of R2-D2 (Bertinetto et al., ICLR 2019), in two forms that differ.

Each block is conv3x3 (padding 1, bias) - BatchNorm - max-pool - LeakyReLU(0.1) (conv-BN-pool-activation, the order
both codes use), and the features are the flattened outputs of blocks 3 and 4, concatenated.

* ``form="r2d2"``: Bertinetto et al.'s ``RRFeatures`` (bertinetto/r2d2, ``fewshots/models/load_model.py``): blocks 1-3
  pool 2x2 with stride 2, block 4 with stride 1; block 3's output enters the features through a further 2x2 stride-1
  max-pool; dropout ``drop`` (0.1 in ``conf/fewshots.yaml``) after blocks 3 and 4; BatchNorm momentum 0.1. Their
  Omniglot script also ships a 64-64-64-64 variant (``RRNet_small``): ``channels=(64, 64, 64, 64)``.
* ``form="metaoptnet"``: MetaOptNet's ``R2D2Embedding`` (kjunelee/MetaOptNet, ``models/R2D2_embedding.py``), which
  Goldblum et al.'s R2-D2 and MetaOptNet-with-R2-D2-backbone rows train: every block pools with stride 2, no further
  pool on block 3's output, dropout 0.1 after block 3 and 0.3 after block 4 (``keep_prob`` 0.9 / 0.7), and no
  activation after block 4 (Gidaris et al.'s trick, per the code's comment).

``bn_weight_init="uniform"``: BatchNorm's scales start uniform in [0, 1), as PyTorch 0.3 initialised them (its
``_BatchNorm.reset_parameters``: ``weight.data.uniform_()``; 1.x starts them at 1), the version R2-D2's code pins
(``environment.yml``). Convolutions start the same in both (weights and biases uniform within ``1/sqrt(fan_in)``).

Feature sizes (tests/test_backbones_unraveling.py checks them) for the 96-192-384-512 net:

====================  ======  ======  ======
input                 28 px   32 px   84 px
====================  ======  ======  ======
``r2d2``              3584    8064    72576
``metaoptnet``        3968    8192    51200
====================  ======  ======  ======

Parameters: 2,605,056 with 3 input channels (2,603,328 with 1), the same for both forms.
"""

from __future__ import annotations

import torch
from torch import nn

from methods.backbones import init_batchnorm_scales

FORMS = ("r2d2", "metaoptnet")


def _block(in_channels: int, out_channels: int, pool_stride: int, activation: bool, dropout: float) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels, momentum=0.1),
              nn.MaxPool2d(2, stride=pool_stride)]
    if activation:
        layers.append(nn.LeakyReLU(0.1))
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class R2D2Encoder(nn.Module):
    """``(N, C, H, W)`` images -> ``(N, d)`` features (module docstring for the two forms and their sizes)."""

    #: 2: computes in channels-last (NHWC) on CPU (version 1: NCHW); the same features up to float rounding
    PROTOCOL_VERSION = 2

    def __init__(self, in_channels: int = 3, channels: tuple[int, int, int, int] = (96, 192, 384, 512), form: str = "r2d2",
                 drop: float = 0.1, bn_weight_init: str = "ones"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"unknown R2-D2 encoder form {form!r}; choose one of {FORMS}")
        c1, c2, c3, c4 = channels
        self.form = form
        self.block1 = _block(in_channels, c1, 2, True, 0.0)
        self.block2 = _block(c1, c2, 2, True, 0.0)
        if form == "r2d2":
            self.block3 = _block(c2, c3, 2, True, drop)
            self.block4 = _block(c3, c4, 1, True, drop)
            self.pool3 = nn.MaxPool2d(2, stride=1)
        else:
            self.block3 = _block(c2, c3, 2, True, 0.1)
            self.block4 = _block(c3, c4, 2, False, 0.3)
        init_batchnorm_scales(self, bn_weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            # NHWC: oneDNN's convolutions, BatchNorm and max-pooling are faster in it on CPU (measured 2026-12-07, one
            # thread on a loaded machine, an R2-D2 64-channel Omniglot update of 600 images: 2.3-2.9 s against 4.4-4.7 s
            # in NCHW), as for methods.backbones.Conv4. ``.to``, not ``.contiguous``: a one-channel NCHW batch already
            # counts as channels-last contiguous and would keep the slow path. Unmeasured on CUDA, so left as it comes.
            x = x.to(memory_format=torch.channels_last)
        b3 = self.block3(self.block2(self.block1(x)))
        b4 = self.block4(b3)
        if self.form == "r2d2":
            b3 = self.pool3(b3)
        return torch.cat([b3.flatten(1), b4.flatten(1)], dim=1)
