"""A backbone with a differentiable base-learner head, meta-trained on batches of episodes as MetaOptNet trains its
heads (Lee et al., CVPR 2019; kjunelee/MetaOptNet ``train.py``): the SVM (:mod:`methods.svm_head`), ridge
(:mod:`methods.ridge_head`) or prototype head on any backbone.

As in the authors' ``train.py``: the support images of all episodes of a meta-batch pass the backbone together, then
the query images (two passes, so in training mode BatchNorm normalises support and query with their own batch
statistics). ``joint_pass=True`` is R2-D2's code instead (bertinetto/r2d2, ``fewshots/models/r2d2.py``: one pass over
``cat(support, query)``, so BatchNorm's batch statistics span both). The loss is the query cross-entropy against MetaOptNet's label smoothing,
``onehot (1 - eps) + (1 - onehot) eps / (ways - 1)`` (``--eps``, default 0; the README uses 0.1 on mini-ImageNet).

:class:`ProtoHead` is MetaOptNet's ``ProtoNetHead``: Snell et al.'s negative squared distances to the class means
(the maths of :mod:`methods.protonet`), divided by the feature dimension (``normalize=True``, the code's default).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metarepro.episodes import Episode
from methods.protonet import prototypes, squared_euclidean


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> torch.Tensor:
    """Mean cross-entropy against MetaOptNet's smoothed targets: ``logits (N, ways)``, ``labels (N,)``; ``eps = 0`` is
    plain cross-entropy. (torch's ``label_smoothing`` spreads ``eps / ways`` to every class instead.)"""
    ways = logits.shape[-1]
    onehot = F.one_hot(labels, ways).to(logits.dtype)
    target = onehot * (1 - eps) + (1 - onehot) * eps / (ways - 1)
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


class ProtoHead(nn.Module):
    """Prototype head on features: ``support (B, n, d)``, ``labels (B, n)``, ``query (B, q, d)`` -> ``(B, q, ways)``, times
    a learnable scale initialised at 1 (MetaOptNet's ``ClassificationHead(enable_scale=True)`` wraps every head).
    Version 2: the scale (version 1 had none)."""

    PROTOCOL_VERSION = 2

    def __init__(self, normalize: bool = True, learn_scale: bool = True):
        super().__init__()
        self.normalize = normalize
        self.scale = nn.Parameter(torch.ones(1), requires_grad=learn_scale)

    def forward(self, support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        logits = torch.stack([-squared_euclidean(q, prototypes(s, y, ways)) for s, y, q in zip(support, labels, query)])
        return self.scale * (logits / support.shape[-1] if self.normalize else logits)


class HeadClassifier(nn.Module):
    """``backbone`` (images -> features) and ``head`` (support features, labels, query features, ways -> logits)."""

    PROTOCOL_VERSION = 1

    def __init__(self, backbone: nn.Module, head: nn.Module, label_smoothing: float = 0.0, joint_pass: bool = False):
        super().__init__()
        self.backbone, self.head, self.label_smoothing, self.joint_pass = backbone, head, label_smoothing, joint_pass

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, n, C, H, W)`` -> ``(B, n, d)`` in one backbone pass."""
        return self.backbone(images.flatten(0, 1)).reshape(images.shape[0], images.shape[1], -1)

    def episode_logits(self, batch: Episode) -> torch.Tensor:
        """Query logits ``(B, q, ways)`` of a batched episode (``support_x (B, n, C, H, W)``, labels ``0..ways-1``)."""
        ways = int(batch.support_y.max()) + 1
        if self.joint_pass:
            n = batch.support_x.shape[1]
            both = self.features(torch.cat([batch.support_x, batch.query_x], dim=1))
            return self.head(both[:, :n], batch.support_y, both[:, n:], ways)
        return self.head(self.features(batch.support_x), batch.support_y, self.features(batch.query_x), ways)

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        logits = self.episode_logits(batch)
        return smoothed_cross_entropy(logits.flatten(0, 1), batch.query_y.flatten(), self.label_smoothing)

    @torch.no_grad()
    def score(self, batch: Episode) -> torch.Tensor:
        """Query accuracy of each episode, ``(B,)``."""
        return (self.episode_logits(batch).argmax(-1) == batch.query_y).float().mean(-1)


@torch.no_grad()
def head_accuracies_from_embeddings(head: nn.Module, embeddings: torch.Tensor, episodes: list[tuple[np.ndarray, np.ndarray]],
                                    shots: int, chunk: int = 100) -> torch.Tensor:
    """Query accuracy of each episode with ``head`` on images embedded once, ``chunk`` episodes per head call.

    ``embeddings (n_classes, n_drawings, d)``: every image of a split through the fixed, eval-mode backbone. Each episode
    is ``(classes (ways,), drawings (ways, shots+queries))``, the first ``shots`` drawings of a class its support, all
    episodes of one size. Returns ``(n_episodes,)`` accuracies in [0, 1] (what embedding each episode's images gives, as
    eval-mode features do not depend on the batch).
    """
    out = []
    for start in range(0, len(episodes), chunk):
        part = episodes[start:start + chunk]
        device = embeddings.device
        classes = torch.as_tensor(np.stack([c for c, _ in part]), device=device)  # (B, ways)
        drawings = torch.as_tensor(np.stack([d for _, d in part]), device=device)  # (B, ways, shots + queries)
        picked = embeddings[classes[..., None], drawings]  # (B, ways, shots + queries, d)
        batch, ways, per_class, dim = picked.shape
        support = picked[:, :, :shots].reshape(batch, ways * shots, dim)
        query = picked[:, :, shots:].reshape(batch, ways * (per_class - shots), dim)
        support_y = torch.arange(ways, device=device).repeat_interleave(shots).expand(batch, -1)
        query_y = torch.arange(ways, device=device).repeat_interleave(per_class - shots)
        logits = head(support, support_y, query, ways)  # (B, q, ways)
        out.append((logits.argmax(-1) == query_y).float().mean(-1))
    return torch.cat(out)
