"""R2-D2's ridge-regression head (Bertinetto, Henriques, Torr & Vedaldi, "Meta-learning with differentiable closed-form
solvers", ICLR 2019): one-hot targets regressed on each episode's support features in closed form, differentiable
through the solution, batched over the episodes of a meta-batch.

As the authors' code computes it (bertinetto/r2d2, ``fewshots/models/r2d2.py``, ``adjust.py``; form ``"r2d2"``): a
column of ones is appended to the support features (the bias), features and one-hot targets are divided by
``sqrt(n)`` (``n`` support examples), and ::

    W = (X^T X + lambda I)^-1 X^T Y      (primal, when n > d + 1)
      = X^T (X X^T + lambda I)^-1 Y      (Woodbury, when n <= d + 1: an n x n system instead of (d+1) x (d+1))

with ``lambda = 50`` fixed (``base_learner.init_lambda: 50``, ``learn_lambda: False``); the query scores ``[f(q), 1] W``
are mapped by a learnable ``scale * s + bias`` (``AdjustLayer``: scale initialised 1e-4 in the mini-ImageNet
configuration, 10 for Omniglot and CIFAR-FS per REFERENCE.md; bias 0).

Form ``"metaoptnet"``: MetaOptNet's ``R2D2Head`` (kjunelee/MetaOptNet), which Goldblum et al.'s R2-D2 rows may have
used: no bias column, no ``1/sqrt(n)``, always Woodbury, ``lambda = 50``, logits times one learnable scale (init 1).
The two forms are the same ridge regression up to the bias column and ``lambda``'s effective size (``n lambda``); the
tests hold both to numpy's solve of the primal.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FORMS = ("r2d2", "metaoptnet")


def spd_solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``matrix^-1 rhs`` for symmetric positive definite ``matrix (B, m, m)``, ``rhs (B, m, k)``, by Cholesky: the
    authors invert (``torch.inverse``), the same solution; Cholesky needs no pivoting, so it is also safe where torch's
    threaded CPU LU is not (``metarepro.lapack``: R2-D2's 60-way training episodes have up to 600 support images)."""
    return torch.cholesky_solve(rhs, torch.linalg.cholesky(matrix))


def ridge_weights(features: torch.Tensor, targets: torch.Tensor, lam: float) -> torch.Tensor:
    """``argmin_W ||X W - Y||^2 + lam ||W||^2``: ``features (B, n, d)``, ``targets (B, n, k)`` -> ``(B, d, k)``, by the
    smaller linear system (Woodbury's ``n x n`` when ``n <= d``, else the ``d x d`` normal equations), both positive
    definite for ``lam > 0``."""
    _, n, d = features.shape
    xt = features.transpose(1, 2)
    if n <= d:
        gram = features @ xt + lam * torch.eye(n, dtype=features.dtype, device=features.device)
        return xt @ spd_solve(gram, targets)
    normal = xt @ features + lam * torch.eye(d, dtype=features.dtype, device=features.device)
    return spd_solve(normal, xt @ targets)


class RidgeHead(nn.Module):
    """The head: support and query features in, query logits out (module docstring for the forms and defaults)."""

    PROTOCOL_VERSION = 1

    def __init__(self, lam: float = 50.0, form: str = "r2d2", init_scale: float = 10.0, init_bias: float = 0.0):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"unknown ridge head form {form!r}; choose one of {FORMS}")
        self.lam, self.form = lam, form
        self.scale = nn.Parameter(torch.tensor([init_scale if form == "r2d2" else 1.0]))
        self.bias = nn.Parameter(torch.tensor([init_bias]), requires_grad=form == "r2d2")

    def solve(self, support: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
        """The ridge weights ``(B, d [+1 for the bias], ways)`` (the adapted state; nothing is stored)."""
        onehot = F.one_hot(labels, ways).to(support.dtype)
        if self.form == "metaoptnet":
            return ridge_weights(support, onehot, self.lam)
        n = support.shape[1]
        with_bias = torch.cat([support, torch.ones_like(support[..., :1])], dim=-1)
        return ridge_weights(with_bias / math.sqrt(n), onehot / math.sqrt(n), self.lam)

    def forward(self, support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        """``support (B, n, d)``, ``labels (B, n)``, ``query (B, q, d)`` -> logits ``(B, q, ways)``."""
        weights = self.solve(support, labels, ways)
        if self.form == "metaoptnet":
            return self.scale * (query @ weights)
        return self.scale * (query @ weights[:, :-1] + weights[:, -1:]) + self.bias
