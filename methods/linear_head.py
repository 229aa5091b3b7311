"""The linear "NN" fine-tuning head Goldblum et al. evaluate classically trained (and meta-learned) feature extractors
with ("Unraveling Meta-Learning", Appendix A.2: "we train two classification heads, a linear NN layer and SVM"): a
fresh linear layer trained on an episode's frozen support features, then applied to its queries. Not differentiable
(a test-time head).

The paper gives no fitting details; here they are those of the standard baseline of Chen et al. ("A Closer Look at
Few-shot Classification", ICLR 2019; wyharveychen/CloserLookFewShot ``methods/baselinefinetune.py``): ``nn.Linear``
with PyTorch's default initialisation, SGD (lr 0.01, momentum 0.9, dampening 0.9, weight decay 1e-3), 100 epochs over
the support set in shuffled minibatches of 4, cross-entropy. The initialisation and shuffles come from ``seed``, so an
episode's logits are reproducible.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LR, MOMENTUM, DAMPENING, WEIGHT_DECAY, EPOCHS, BATCH = 0.01, 0.9, 0.9, 1e-3, 100, 4


def initial_layer(dim: int, ways: int, seed: int) -> nn.Linear:
    """``nn.Linear(dim, ways)`` with its default initialisation drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(dim, ways)


def minibatch_orders(n: int, seed: int, epochs: int = EPOCHS) -> list[np.ndarray]:
    """Each epoch's permutation of the ``n`` support examples."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(epochs)]


def fit_linear(support: torch.Tensor, labels: torch.Tensor, ways: int, seed: int = 0, epochs: int = EPOCHS) -> nn.Linear:
    """Train the layer on one episode's ``support (n, d)`` features and ``labels (n,)`` (module docstring)."""
    layer = initial_layer(support.shape[1], ways, seed).to(support.device, support.dtype)
    optimizer = torch.optim.SGD(layer.parameters(), lr=LR, momentum=MOMENTUM, dampening=DAMPENING, weight_decay=WEIGHT_DECAY)
    features = support.detach()
    with torch.enable_grad():
        for order in minibatch_orders(len(labels), seed, epochs):
            for start in range(0, len(order), BATCH):
                picked = torch.as_tensor(order[start:start + BATCH], device=support.device)
                optimizer.zero_grad()
                F.cross_entropy(layer(features[picked]), labels[picked]).backward()
                optimizer.step()
    return layer


class LinearHead(nn.Module):
    """``support (B, n, d)``, ``labels (B, n)``, ``query (B, q, d)`` -> logits ``(B, q, ways)`` (no gradient to the
    features)."""

    PROTOCOL_VERSION = 1

    def __init__(self, seed: int = 0, epochs: int = EPOCHS):
        super().__init__()
        self.seed, self.epochs = seed, epochs  # epochs: Chen et al.'s 100; fewer only for smoke runs

    def forward(self, support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([fit_linear(s, y, ways, self.seed, self.epochs)(q.detach()) for s, y, q in zip(support, labels, query)])
