"""MAML + X: a metric-based learner (ProtoNet, RelationNet) trained in the MAML framework, L2G's baseline row 6.

``../shared/papers/l2g-learning-to-generalize.txt``, sec. 4: "MAML + Prototypical
Networks and MAML + Relation Networks which are basically Prototypical
Networks and Relation Networks trained in MAML framework", "not trained to
generalize to another task". The paper does not say which loss the inner
step takes; the choice here (issue #5 asks it written down):

* inner step on the task's *support set only*: the support set classifies
  itself against its own prototypes (``Episode(S, S)``); the query set stays
  unseen by the inner step, as in MAML;
* outer loss: the task's queries against its support set, at the adapted
  weights (``Episode(S, Q)`` at ``theta'``), second order;
* at test time the same inner step is taken on the test task's support set
  before classifying its queries (MAML's protocol; L2G, in contrast, tests
  without any step).

Step size and optimiser as L2G's (``inner_lr`` 1e-2). Shares the bilevel
objective with :mod:`methods.l2g`: only the first task differs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from metarepro.episodes import Episode
from methods.l2g import l2g_objective


def support_only(episode: Episode) -> Episode:
    """The inner task: the support set as both support and query."""
    return Episode(episode.support_x, episode.support_y, episode.support_x, episode.support_y)


class MAMLMetric(nn.Module):
    """MAML + X around a metric learner ``model`` (``forward(episode) -> loss``, ``score(episode)``)."""

    def __init__(self, model: nn.Module, inner_lr: float = 1e-2, first_order: bool = False):
        super().__init__()
        self.model, self.inner_lr, self.first_order = model, inner_lr, first_order

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        params = dict(self.model.named_parameters())
        return torch.stack([l2g_objective(self.model, params, support_only(e), e, self.inner_lr, self.first_order)
                            for e in batch.image_tasks()]).mean()

    def score(self, batch: Episode) -> torch.Tensor:
        """Query accuracy after one inner step on each test task's support set, ``(T,)``."""
        accs = []
        params = dict(self.model.named_parameters())
        for e in batch.image_tasks():
            with torch.enable_grad():
                inner = torch.func.functional_call(self.model, params, (support_only(e),))
                grads = torch.autograd.grad(inner, list(params.values()))
            adapted = copy.deepcopy(self.model)  # the adapted state lives in a copy; self.model is never changed
            with torch.no_grad():
                for (name, p), g in zip(params.items(), grads):
                    adapted.get_parameter(name).copy_(p - self.inner_lr * g)
                accs.append(adapted.score(e)[0])
        return torch.stack(accs)
