"""Classical (non-episodic) training of a feature extractor, as Goldblum et al. train their baselines ("Unraveling
Meta-Learning", ICML 2020, sec. 3 and Appendix A.2): cross-entropy over all training classes at once, then the backbone
is frozen and few-shot tasks are solved by a head on its features (:mod:`methods.svm_head`, :mod:`methods.ridge_head`,
:class:`methods.head_classifier.ProtoHead`, :mod:`methods.linear_head`).

Appendix A.2: SGD with Nesterov momentum 0.9, weight decay 1e-4, batches of 128 (CIFAR-FS) or 256 (mini-ImageNet), 300
epochs; learning rate 0.1 for the first 100 epochs, then divided by 10 every 50 epochs; on mini-ImageNet 15 warm-up
epochs at 0.01 first (:func:`classical_lr_factor`). The paper does not say whether the 300 epochs include the
warm-up, nor how the kept model is chosen; here the warm-up counts within the 300 and the kept model is chosen on
validation episodes by the benchmark (the released script chooses on training accuracy: REFERENCE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LabelledBatch:
    """A classical minibatch: ``x (N, C, H, W)`` images, ``y (N,)`` labels over all training classes."""

    x: torch.Tensor
    y: torch.Tensor

    def to(self, device) -> LabelledBatch:
        return LabelledBatch(self.x.to(device), self.y.to(device))


def classical_lr_factor(epoch: int, warmup_epochs: int = 0, warmup_factor: float = 0.1, constant_epochs: int = 100,
                        decay_every: int = 50) -> float:
    """Multiplier of the base rate (0.1) in ``epoch`` (0-based): ``warmup_factor`` (0.01 / 0.1) during the warm-up, 1 until
    ``constant_epochs``, then a tenth per ``decay_every`` epochs (Appendix A.2)."""
    if epoch < warmup_epochs:
        return warmup_factor
    if epoch < constant_epochs:
        return 1.0
    return 0.1 ** ((epoch - constant_epochs) // decay_every + 1)


def classical_schedule(iterations_per_epoch: int, **kwargs) -> Callable[[int], float]:
    """:func:`classical_lr_factor` per iteration, for :func:`metarepro.trainer.train`'s ``lr_schedule``."""
    return lambda iteration: classical_lr_factor(iteration // iterations_per_epoch, **kwargs)


def nesterov_sgd(parameters, lr: float = 0.1, weight_decay: float = 1e-4) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


class ClassicalClassifier(nn.Module):
    """``backbone`` (images -> ``(N, d)`` features) and a linear layer over ``classes`` training classes."""

    PROTOCOL_VERSION = 1

    def __init__(self, backbone: nn.Module, feature_dim: int, classes: int):
        super().__init__()
        self.backbone, self.classifier = backbone, nn.Linear(feature_dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, classes)``."""
        return self.classifier(self.backbone(x))

    def outer_loss(self, batch: LabelledBatch) -> torch.Tensor:
        return F.cross_entropy(self(batch.x), batch.y)
