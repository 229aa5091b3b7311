"""Relation Networks: "Learning to Compare" (Sung, Yang, Zhang, Xiang, Torr & Hospedales, CVPR 2018).

A class is the *sum* of its embedded support examples (L2G eq. 9; Sung et
al.'s code sums feature maps over shots); every (class, query) pair of
feature maps is concatenated along channels and scored in ``[0, 1]`` by a
learned relation module (L2G eq. 10); training regresses the scores on the
one-hot labels with a squared error (L2G eq. 11, Sung et al. eq. 3).

Architecture and initialisation as the authors' code
(floodsung/LearningToCompare_FSL @addd2c9f, ``omniglot/omniglot_train_few_shot.py``,
``miniimagenet/miniimagenet_train_few_shot.py``):

* encoder: four blocks of 3x3 conv (64 filters) -> BatchNorm -> ReLU, the
  first two unpadded and followed by 2x2 max-pooling, the last two padded
  and unpooled: 28x28 Omniglot -> 64x5x5, 84x84 mini-ImageNet -> 64x19x19;
* relation module: two blocks of [3x3 conv -> BatchNorm -> ReLU -> 2x2
  max-pool] on the 128-channel pair, then ``Linear(64*s*s, 8)`` -> ReLU ->
  ``Linear(8, 1)`` -> sigmoid; its convs are padded on Omniglot (5 -> 2 -> 1,
  ``s`` = 1) and unpadded on mini-ImageNet (19 -> 8 -> 3, ``s`` = 3):
  ``relation_padding`` 1 and 0;
  L2G describes the same module (sec. 5, "Implementation Details");
* convs ``N(0, 2 / (9 * out_channels))``, zero bias; BatchNorm weight 1, bias
  0; linear layers ``N(0, 0.01)`` with bias 1;
* BatchNorm ``momentum=1`` and never switched to eval mode in the code, so
  support, query and pairs are normalised by the statistics of the batch at
  hand, at training and at test time; the modules here use batch statistics
  always (no running statistics), the same computation;
* loss: ``nn.MSELoss()``, the mean over queries x classes of the squared
  error to the one-hot target (eq. 11 up to that constant factor).

Support and query are embedded in separate forward passes, as in the code
(so BatchNorm statistics differ between the two sets).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from metarepro.episodes import Episode


def _block(in_channels: int, out_channels: int, padding: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=padding),
              nn.BatchNorm2d(out_channels, track_running_stats=False), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2)) if pool else nn.Sequential(*layers)


def _init_like_the_code(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.ones_(m.bias)


class RelationEncoder(nn.Module):
    """Embedding ``f``: ``x (n, C, H, W) -> (n, 64, H', W')`` (28 -> 5, 84 -> 19)."""

    def __init__(self, in_channels: int = 1, filters: int = 64):
        super().__init__()
        self.blocks = nn.Sequential(_block(in_channels, filters, 0, True), _block(filters, filters, 0, True),
                                    _block(filters, filters, 1, False), _block(filters, filters, 1, False))
        _init_like_the_code(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    @staticmethod
    def output_size(image_size: int) -> int:
        """Side of the feature map: two unpadded convs, each followed by a 2x2 pool."""
        for _ in range(2):
            image_size = (image_size - 2) // 2
        return image_size


class RelationModule(nn.Module):
    """Learned similarity ``d``: pairs ``(n, 2*filters, s, s) -> scores (n,)`` in ``[0, 1]``."""

    def __init__(self, feature_size: int, filters: int = 64, hidden: int = 8, padding: int = 1):
        super().__init__()
        self.blocks = nn.Sequential(_block(2 * filters, filters, padding, True), _block(filters, filters, padding, True))
        side = feature_size
        for _ in range(2):
            side = (side + 2 * padding - 2) // 2
        self.fc1 = nn.Linear(filters * side * side, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        _init_like_the_code(self)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        h = self.blocks(pairs).flatten(1)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(h)))).squeeze(1)


def class_sums(features: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Per-class sum of support feature maps: ``features (n, c, h, w)``, ``labels (n,)`` -> ``(ways, c, h, w)``."""
    out = torch.zeros(ways, *features.shape[1:], dtype=features.dtype, device=features.device)
    return out.index_add_(0, labels, features)


def relation_pairs(classes: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Every (query, class) pair, class first along channels as in the code:
    ``classes (k, c, h, w)``, ``queries (m, c, h, w)`` -> ``(m * k, 2c, h, w)``, row ``i * k + j`` = query ``i``, class ``j``."""
    m, k = queries.shape[0], classes.shape[0]
    return torch.cat([classes.unsqueeze(0).expand(m, *classes.shape), queries.unsqueeze(1).expand(m, k, *queries.shape[1:])],
                     dim=2).flatten(0, 1)


def relation_mse(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``nn.MSELoss`` of scores ``(m, k)`` against the one-hot of ``labels (m,)``: mean over all ``m * k`` entries."""
    target = torch.zeros_like(scores).scatter_(1, labels.unsqueeze(1), 1.0)
    return (scores - target).pow(2).mean()


class RelationNet(nn.Module):
    """Relation Networks over an encoder and a relation module (``filters`` 64, ``hidden`` 8 in the paper).

    Omniglot: ``RelationNet(1, 28)``; mini-ImageNet: ``RelationNet(3, 84, relation_padding=0)``.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, filters: int = 64, hidden: int = 8, relation_padding: int = 1,
                 clip_grad_norm: float | None = None):
        super().__init__()
        self.encoder = RelationEncoder(in_channels, filters)
        self.relation = RelationModule(RelationEncoder.output_size(image_size), filters, hidden, relation_padding)
        self.clip_grad_norm = clip_grad_norm

    def train_step(self, batch: Episode, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One training step; with ``clip_grad_norm`` each network's gradient norm is clipped separately (the code: 0.5)."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.outer_loss(batch)
        if not torch.isfinite(loss):
            return loss.detach()
        loss.backward()
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.encoder.parameters(), self.clip_grad_norm)
            nn.utils.clip_grad_norm_(self.relation.parameters(), self.clip_grad_norm)
        optimizer.step()
        return loss.detach()

    def episode_scores(self, episode: Episode) -> torch.Tensor:
        """Relation scores ``(n_query, ways)`` of one episode."""
        ways = int(episode.support_y.max()) + 1
        classes = class_sums(self.encoder(episode.support_x), episode.support_y, ways)
        pairs = relation_pairs(classes, self.encoder(episode.query_x))
        return self.relation(pairs).view(len(episode.query_y), ways)

    def forward(self, episode: Episode) -> torch.Tensor:
        """Relation MSE of one episode (the loss bilevel wrappers such as L2G call functionally)."""
        return relation_mse(self.episode_scores(episode), episode.query_y)

    def loss_terms(self, episode: Episode) -> int:
        """How many terms :meth:`forward` averages: one relation score per query and class (eq. 11 of L2G sums them)."""
        return len(episode.query_y) * (int(episode.support_y.max()) + 1)

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        """Mean over the episode(s) of ``batch`` of the relation MSE."""
        return torch.stack([self(e) for e in batch.image_tasks()]).mean()

    @torch.no_grad()
    def score(self, batch: Episode) -> torch.Tensor:
        """Query accuracy of each episode, ``(T,)``: the class of highest relation score."""
        return torch.stack([(self.episode_scores(e).argmax(1) == e.query_y).float().mean() for e in batch.image_tasks()])
