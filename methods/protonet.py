"""Prototypical Networks for few-shot learning (Snell, Swersky & Zemel, NeurIPS 2017).

Each class is the mean of its embedded support examples (eq. 1); a query is
classified by a softmax over negative squared Euclidean distances to the
prototypes (eq. 2). The maths are the pure functions below, tested against
numpy loops.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metarepro.episodes import Episode


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
    """Class means: ``embeddings (n, d)``, ``labels (n,)`` in ``0..ways-1`` -> ``(ways, d)``."""
    sums = torch.zeros(ways, embeddings.shape[1], dtype=embeddings.dtype, device=embeddings.device)
    sums.index_add_(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=ways).to(embeddings.dtype).unsqueeze(1)
    if (counts == 0).any():
        raise ValueError("every class needs at least one support example")
    return sums / counts


def squared_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a_i - b_j||^2``: ``a (m, d)``, ``b (k, d)`` -> ``(m, k)``."""
    return (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)


class ProtoNet(nn.Module):
    """Prototypical Networks around an embedding network (Conv-4 in the paper)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> torch.Tensor:
        """The adapted state is the prototypes, ``(ways, d)``; nothing is stored."""
        ways = int(support_y.max()) + 1
        return prototypes(self.backbone(support_x), support_y, ways)

    def logits(self, protos: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
        """``(n_query, ways)`` negative squared distances."""
        return -squared_euclidean(self.backbone(query_x), protos)

    def episode_logits(self, episode: Episode) -> torch.Tensor:
        """Query logits ``(n_query, ways)`` with support and query embedded in *one* forward pass.

        Snell et al.'s code concatenates support and query before the encoder
        (``protonets/models/few_shot.py``), so in training mode BatchNorm's
        batch statistics cover both sets; two separate passes would normalise
        each with its own statistics, a different model.
        """
        n_support = len(episode.support_y)
        z = self.backbone(torch.cat([episode.support_x, episode.query_x]))
        protos = prototypes(z[:n_support], episode.support_y, int(episode.support_y.max()) + 1)
        return -squared_euclidean(z[n_support:], protos)

    def forward(self, episode: Episode) -> torch.Tensor:
        """Query cross-entropy of one episode (the loss bilevel wrappers such as L2G call functionally)."""
        return F.cross_entropy(self.episode_logits(episode), episode.query_y)

    def loss_terms(self, episode: Episode) -> int:
        """How many terms :meth:`forward` averages: one per query (eq. 8 of L2G sums them)."""
        return len(episode.query_y)

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        """Mean query cross-entropy over the episode(s) of ``batch``."""
        return torch.stack([self(e) for e in batch.image_tasks()]).mean()

    @torch.no_grad()
    def score(self, batch: Episode) -> torch.Tensor:
        """Query accuracy of each episode, ``(T,)`` (``(1,)`` for one episode)."""
        accs = [(self.episode_logits(e).argmax(1) == e.query_y).float().mean() for e in batch.image_tasks()]
        return torch.stack(accs)


@torch.no_grad()
def episode_accuracies_from_embeddings(
    embeddings: torch.Tensor, episodes: list[tuple[np.ndarray, np.ndarray]], shots: int
) -> torch.Tensor:
    """ProtoNet accuracy of many episodes from images embedded once.

    ``embeddings (n_classes, n_drawings, d)``: every image of the split through
    the (fixed, eval-mode) backbone. Each episode is ``(classes (ways,),
    drawings (ways, shots+queries))`` as sampled; the first ``shots`` drawings
    of each class are its support. Returns ``(n_episodes,)`` accuracies, the
    same as embedding each episode's images separately (a test checks it).
    """
    accs = []
    for classes, drawings in episodes:
        ways = len(classes)
        picked = embeddings[torch.as_tensor(classes)[:, None], torch.as_tensor(drawings)]  # (ways, s+q, d)
        protos = picked[:, :shots].mean(1)  # (ways, d)
        queries = picked[:, shots:].reshape(-1, picked.shape[-1])  # (ways*q, d)
        labels = torch.arange(ways).repeat_interleave(drawings.shape[1] - shots)
        accs.append((squared_euclidean(queries, protos).argmin(1) == labels).float().mean())
    return torch.stack(accs)
