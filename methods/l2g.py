"""Learning to Generalize (L2G): bilevel training of a metric-based learner across tasks of disjoint classes.

``../shared/papers/l2g-learning-to-generalize.txt``, Algorithm 1 and eqs. 3-5:
one gradient step on the first task ``T_i``, ``theta' = theta - alpha *
grad L_{T_i}(theta)`` (eq. 3), then the loss of a second task ``T_j`` whose
classes are disjoint from ``T_i``'s, evaluated at ``theta'`` (eq. 4), is
minimised with respect to ``theta`` (eq. 5), differentiating through the
inner step (second order). At test time the model is used as it is, without
any inner step (sec. 3.3: "which do not need fine-tuning").

The metric learner (``methods.protonet.ProtoNet``, ``methods.relationnet.RelationNet``)
supplies ``forward(episode) -> loss`` of one episode; every parameter takes
the inner step (the paper adapts "the model parameters theta"). The paper
fixes ``alpha`` (1e-2 in its experiments, sec. 4) and averages the outer loss
over the task pairs of one backward pass (5 in its experiments).

Choices where the paper is silent or loose:

* the loss scale: the base learners' losses are *means* (over queries for
  ProtoNet, over query x class scores for RelationNet), as in Snell et al.'s
  and Sung et al.'s code; the paper writes them as sums (eqs. 8, 11). With
  ``alpha`` fixed the choice sets the real inner step: a sum would move
  ``theta'`` 75x (ProtoNet) / 375x (RelationNet) further on 5-way 1-shot
  with 15 queries. ``loss="sum"`` takes the paper's sums (eqs. 8, 11); the
  ``l2g-omniglot`` claim check runs both;
* BatchNorm: both passes of a pair (``theta`` on ``T_i``, ``theta'`` on
  ``T_j``) run in training mode, so the running statistics that the ProtoNet
  family tests with are updated by both, as a standard BatchNorm module would
  be by the paper's procedure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from metarepro.episodes import Episode


@dataclass
class TaskPairs:
    """``P`` pairs of episodes ``(T_i, T_j)``, ``first[p]`` and ``second[p]``; optionally the class ids each drew."""

    first: list[Episode]
    second: list[Episode]
    first_classes: list[np.ndarray] | None = None
    second_classes: list[np.ndarray] | None = None

    def __post_init__(self):
        if len(self.first) != len(self.second):
            raise ValueError(f"{len(self.first)} first tasks but {len(self.second)} second tasks")
        if self.first_classes is not None and self.second_classes is not None:
            for p, (a, b) in enumerate(zip(self.first_classes, self.second_classes)):
                shared = np.intersect1d(np.asarray(a), np.asarray(b))  # pool class ids (an Omniglot rotation is its own class)
                if len(shared):
                    raise ValueError(f"task pair {p}: T_i and T_j share {len(shared)} class(es); L2G needs disjoint classes")

    def to(self, device) -> TaskPairs:
        return TaskPairs([e.to(device) for e in self.first], [e.to(device) for e in self.second], self.first_classes, self.second_classes)


#: how a base learner's episode loss enters the objective: its own mean, or the sum the paper writes (eqs. 8, 11)
LOSSES = ("mean", "sum")


def episode_loss(model: nn.Module, params: dict[str, torch.Tensor], episode: Episode, loss: str = "mean") -> torch.Tensor:
    """The base learner's loss of ``episode`` at ``params``: its mean, or the sum over its ``model.loss_terms(episode)`` terms."""
    value = torch.func.functional_call(model, params, (episode,))
    return value * model.loss_terms(episode) if loss == "sum" else value


def l2g_objective(model: nn.Module, params: dict[str, torch.Tensor], first: Episode, second: Episode, inner_lr: float,
                  first_order: bool = False, loss: str = "mean") -> torch.Tensor:
    """``L_{T_j}(theta - alpha grad L_{T_i}(theta))`` (eq. 4) for ``params`` = theta, differentiable in theta."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    inner = episode_loss(model, params, first, loss)
    grads = torch.autograd.grad(inner, list(params.values()), create_graph=not first_order)
    adapted = {n: p - inner_lr * g for (n, p), g in zip(params.items(), grads)}
    return episode_loss(model, adapted, second, loss)


class L2G(nn.Module):
    """L2G around a metric learner ``model`` (``forward(episode) -> loss``; ``loss_terms(episode)`` for ``loss="sum"``)."""

    def __init__(self, model: nn.Module, inner_lr: float = 1e-2, first_order: bool = False, loss: str = "mean"):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        self.model, self.inner_lr, self.first_order, self.loss = model, inner_lr, first_order, loss

    def outer_loss(self, batch: TaskPairs) -> torch.Tensor:
        """Mean over the pairs of eq. 4."""
        params = dict(self.model.named_parameters())
        return torch.stack([l2g_objective(self.model, params, a, b, self.inner_lr, self.first_order, self.loss)
                            for a, b in zip(batch.first, batch.second)]).mean()

    @torch.no_grad()
    def score(self, batch: Episode) -> torch.Tensor:
        """Test as the base learner does: no inner step."""
        return self.model.score(batch)
