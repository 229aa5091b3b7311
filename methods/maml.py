"""MAML: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017).

Meta-learns the initialisation ``theta`` of a network so that a few SGD steps
on a task's support set minimise the loss on its query set:

    min_theta  sum_i L_query_i( theta - lr * grad L_support_i(theta) )

Second order by default; ``first_order=True`` is first-order MAML (sec. 5.2
of the paper), which drops the Hessian term of the meta-gradient.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from metarepro.episodes import Episode
from metarepro.inner import AdaptedTasks, InnerLoop, TaskLoss, adapt_tasks


class MAML(nn.Module):
    """MAML around any backbone.

    Args:
        backbone: the network whose initialisation is meta-learned.
        task_loss: per-task loss, ``(T, n, ...) x (T, n, ...) -> (T,)``.
        inner_lr: inner SGD step size (MAML's ``alpha``).
        inner_steps: inner steps during meta-training.
        test_steps: inner steps at evaluation (default: ``inner_steps``).
        first_order: drop second-order terms (FOMAML).
        engine: inner-loop engine, ``"func"`` (tasks batched), ``"loop"`` or ``"higher"`` (task by task).
        frozen: backbone parameters the inner loop does not adapt (cbfinn/maml
            keeps BatchNorm's offsets out of its fast weights: they are
            meta-learned by the outer loop only).
    """

    def __init__(
        self,
        backbone: nn.Module,
        task_loss: TaskLoss,
        inner_lr: float,
        inner_steps: int,
        test_steps: int | None = None,
        first_order: bool = False,
        engine: str = "func",
        frozen: tuple[str, ...] = (),
    ):
        super().__init__()
        self.backbone = backbone
        self.task_loss = task_loss
        self.train_loop = InnerLoop(steps=inner_steps, lr=inner_lr, first_order=first_order, engine=engine, frozen=frozenset(frozen))
        self.test_steps = inner_steps if test_steps is None else test_steps

    def meta_parameters(self) -> dict[str, torch.Tensor]:
        """The initialisation being meta-learned, by backbone parameter name."""
        return dict(self.backbone.named_parameters())

    def inner_loop(self, training: bool) -> InnerLoop:
        """The loop used for meta-training, or for evaluation (no graph kept)."""
        if training:
            return self.train_loop
        return dataclasses.replace(self.train_loop, steps=self.test_steps, first_order=True)

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, training: bool = False) -> AdaptedTasks:
        """Fast weights for each task of a batched support set ``(T, n, ...)``."""
        return adapt_tasks(
            self.backbone, self.meta_parameters(), support_x, support_y, self.task_loss, self.inner_loop(training)
        )

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        """Mean query loss over the meta-batch after adaptation (scalar)."""
        adapted = self.adapt(batch.support_x, batch.support_y, training=True)
        return self.task_loss(adapted.predict(batch.query_x), batch.query_y).mean()

    def score(self, batch: Episode) -> torch.Tensor:
        """Per-task query loss after test-time adaptation, ``(T,)``, no graph."""
        with torch.enable_grad():  # the inner loop needs gradients even at test time
            adapted = self.adapt(batch.support_x, batch.support_y, training=False)
            pred = adapted.predict(batch.query_x)
        return self.task_loss(pred.detach(), batch.query_y)

    def predict(self, batch: Episode) -> torch.Tensor:
        """Query predictions after test-time adaptation, ``(T, n_query, ...)``, no graph."""
        with torch.enable_grad():
            adapted = self.adapt(batch.support_x, batch.support_y, training=False)
            return adapted.predict(batch.query_x).detach()
