"""Hyper-Representation: Franceschi, Frasconi, Salzo, Grazzi & Pontil, "A Bridge Between Hyperparameter
Optimization and Learning-to-Learn" (2017), sec. 4 (``../shared/papers/franceschi-bridge-hpo-learning-to-learn.txt``).

A representation ``h(x; lambda)`` is shared by all episodes; each episode
trains its own ground model, a multinomial logistic regressor ``g(z; w)``,
from ``w_0 = 0`` by ``T`` gradient-descent steps of a *learned* step size
``eta`` on its training set (eq. 2.1 with ``Phi_0 = 0``); the outer
objective is the ground model's loss on the episode's validation (query)
set, minimised over ``lambda`` and ``eta`` by differentiating through the
``T`` steps.

Choices, from the authors' code (lucfra/FAR-HO @42b303c5,
``far_ho/examples/hyper_representation.py``) where the paper is silent:
inner and outer losses are the *mean* cross-entropy (``tf.reduce_mean``);
``eta`` starts at 0.1 and is learned; the meta-optimiser is Adam with
``lr = 1e-3 / (1 + 1e-5 * step)`` (``inverse_time_decay``), meta-batch 4.
An optional L2 term on ``w`` (0 in the paper) makes the inner problem
strongly convex, which the tests use to compare ``w_T`` with an independent
solver. The support (training) and query (validation) sets are embedded in
separate passes, as the code feeds them (``tr_fd`` / ``val_fd``): with a
representation whose BatchNorm normalises with the batch at hand, one joint
pass would let the queries shape the support features (a transductive test).

Hypergradients, two ways, held equal by a test:

* ``reverse``: autograd through the unrolled steps (reverse-mode
  differentiation of the dynamics, Maclaurin et al. 2015; Franceschi et al.
  2017, RMD);
* ``forward``: Franceschi et al. 2017's forward-mode recursion (FMD),
  ``Z_t = A_t Z_{t-1} + B_t`` with ``A_t = dPhi_t/dw`` and ``B_t =
  dPhi_t/d(nu)``, for the inner problem's own hyperparameters ``nu`` = (the
  support features, ``eta``); the representation's weights then receive
  ``dE/dw_T Z_T`` through one vector-Jacobian product of the features (the
  representation is a shared input to all ``T`` steps, so carrying its
  millions of weights forward would cost ``|w| x |lambda|`` memory).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metarepro.episodes import Episode


def ground_loss(w: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of the logistic regressor ``w (ways, d + 1)`` (last column: bias) + ``l2/2 ||W||^2``."""
    logits = features @ w[:, :-1].T + w[:, -1]
    loss = F.cross_entropy(logits, labels)
    return loss + 0.5 * l2 * w[:, :-1].pow(2).sum() if l2 else loss


def ground_gradient(w: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
    """``grad_w`` of :func:`ground_loss` in closed form, ``(softmax - onehot)^T [features, 1] / n + l2 [W, 0]``.

    Written out (not autograd) so that every mode of differentiation, forward
    (``jacfwd``) included, can go through the steps; a test holds it to autograd.
    """
    n, ways = features.shape[0], w.shape[0]
    probs = torch.softmax(features @ w[:, :-1].T + w[:, -1], dim=1)
    residual = (probs - F.one_hot(labels, ways).to(probs.dtype)) / n  # (n, ways)
    grad = torch.cat([residual.T @ features, residual.sum(0).unsqueeze(1)], dim=1)
    if l2:
        grad = grad + l2 * torch.cat([w[:, :-1], torch.zeros_like(w[:, -1:])], dim=1)
    return grad


def ground_step(w: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, eta: torch.Tensor, l2: float = 0.0) -> torch.Tensor:
    """``Phi(w) = w - eta * grad_w L(w)``, differentiable in ``w``, ``features`` and ``eta``."""
    return w - eta * ground_gradient(w, features, labels, l2)


def train_ground_model(features: torch.Tensor, labels: torch.Tensor, ways: int, steps: int, eta: torch.Tensor,
                       l2: float = 0.0) -> torch.Tensor:
    """``w_T`` from ``w_0 = 0``: ``features (n, d)``, ``labels (n,)`` -> ``(ways, d + 1)``."""
    w = features.new_zeros(ways, features.shape[1] + 1)
    for _ in range(steps):
        w = ground_step(w, features, labels, eta, l2)
    return w


def forward_mode_tangents(features: torch.Tensor, labels: torch.Tensor, ways: int, steps: int, eta: torch.Tensor,
                          l2: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(w_T, Z_T^features, Z_T^eta)``: ``dw_T/dfeatures (|w|, n*d)`` and ``dw_T/deta (|w|,)`` by FMD's recursion."""
    n, d = features.shape
    w = features.new_zeros(ways, d + 1)
    z_feat = features.new_zeros(w.numel(), n * d)
    z_eta = features.new_zeros(w.numel())
    x, e = features.detach(), eta.detach()

    def phi(w_, x_, e_):
        return ground_step(w_, x_, labels, e_, l2)

    for _ in range(steps):
        a, b_feat, b_eta = torch.func.jacfwd(phi, argnums=(0, 1, 2))(w, x, e)
        a, b_feat, b_eta = a.reshape(w.numel(), w.numel()), b_feat.reshape(w.numel(), n * d), b_eta.reshape(w.numel())
        z_feat, z_eta = a @ z_feat + b_feat, a @ z_eta + b_eta
        w = phi(w, x, e).detach()
    return w, z_feat, z_eta


class HyperRepresentation(nn.Module):
    """Representation ``representation: x (n, C, H, W) -> (n, d)`` + logistic ground models; ``eta`` a learned parameter."""

    def __init__(self, representation: nn.Module, steps: int = 4, eta: float = 0.1, l2: float = 0.0, mode: str = "reverse"):
        super().__init__()
        if mode not in ("reverse", "forward"):
            raise ValueError(f"mode must be 'reverse' or 'forward', got {mode!r}")
        self.representation, self.l2, self.mode = representation, l2, mode
        self.eta = nn.Parameter(torch.tensor(float(eta)))
        # T is part of the model (a buffer, so a checkpoint restores the T it was trained and selected with)
        self.register_buffer("ground_steps", torch.tensor(int(steps)))
        self.steps = int(steps)  # the buffer's value as a Python int (no device sync per episode)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        if prefix + "ground_steps" not in state_dict:
            error_msgs.append("this Hyper-Representation checkpoint predates separate support/query embedding and stored T "
                              "(2026-11-30); it cannot be scored as it was trained: re-train it")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        self.steps = int(self.ground_steps)

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        """Outer loss of one episode (reverse mode: a graph through the ``T`` steps)."""
        ways = int(episode.support_y.max()) + 1
        support, query = self.embed(episode)
        w = train_ground_model(support, episode.support_y, ways, self.steps, self.eta, self.l2)
        return ground_loss(w, query, episode.query_y)

    def embed(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """``(support features (n_s, d), query features (n_q, d))``, each set in its own pass (module docstring)."""
        return self.representation(episode.support_x), self.representation(episode.query_x)

    def hypergradient(self, batch: Episode) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(mean outer loss, gradients of it w.r.t. self.parameters())`` by ``self.mode``."""
        params = list(self.parameters())
        episodes = batch.image_tasks()
        if self.mode == "reverse":
            loss = torch.stack([self.episode_loss(e) for e in episodes]).mean()
            return loss.detach(), list(torch.autograd.grad(loss, params, allow_unused=True))
        total = [torch.zeros_like(p) for p in params]
        losses = []
        for e in episodes:
            ways, n = int(e.support_y.max()) + 1, len(e.support_y)
            z_support, z_query = self.embed(e)
            w_t, z_feat, z_eta = forward_mode_tangents(z_support, e.support_y, ways, self.steps, self.eta, self.l2)
            w_t = w_t.requires_grad_()
            query = z_query.detach().requires_grad_()
            outer = ground_loss(w_t, query, e.query_y) / len(episodes)
            dw, dquery = torch.autograd.grad(outer, (w_t, query))
            dw = dw.reshape(-1)
            d_support = (dw @ z_feat).view(n, -1)
            grads = torch.autograd.grad((z_support, z_query), params, (d_support, dquery), allow_unused=True)
            for k, (p, g) in enumerate(zip(params, grads)):
                if p is self.eta:
                    total[k] = total[k] + dw @ z_eta
                elif g is not None:
                    total[k] = total[k] + g
            losses.append(outer.detach() * len(episodes))
        return torch.stack(losses).mean(), total

    def train_step(self, batch: Episode, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One meta-iteration (the trainer calls this): hypergradient by ``self.mode``, then the optimiser's step."""
        loss, grads = self.hypergradient(batch)
        optimizer.zero_grad(set_to_none=True)
        for p, g in zip(self.parameters(), grads):
            p.grad = None if g is None else g.detach()
        optimizer.step()
        return loss

    @torch.no_grad()
    def score(self, batch: Episode) -> torch.Tensor:
        """Query accuracy of each episode after training its ground model for ``steps`` steps."""
        accs = []
        for e in batch.image_tasks():
            ways = int(e.support_y.max()) + 1
            support, query = self.embed(e)
            w = train_ground_model(support, e.support_y, ways, self.steps, self.eta, self.l2)
            logits = query @ w[:, :-1].T + w[:, -1]
            accs.append((logits.argmax(1) == e.query_y).float().mean())
        return torch.stack(accs)
