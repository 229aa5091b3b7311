"""The finetuning baseline of Guiroy, Verma & Pal ("Towards Understanding Generalization in Gradient-Based
Meta-Learning", 2019, sec. 5 and appendix A.3): MAML's network trained without meta-learning, then tested by MAML's own
meta-test procedure.

Training: plain mini-batch classification over all meta-training classes with Adam ("we kept the same hyperparameters
for the ADAM optimizer during meta-training"). Test: "we use Xavier initialization (Glorot and Bengio, 2010) to
initialize the weights of the final layer" of a ``ways``-way network whose other weights are the trained ones, then
"the adaptation during meta-test" is MAML's (:meth:`FinetuneBaseline.test_learner` returns that MAML learner, so every
measure of a MAML model applies to it unchanged). The new layer is drawn once per ``seed`` and shared by the tasks it
is evaluated on [choice: the paper does not say whether each task draws its own], its bias zero.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from metarepro.inner import TaskLoss
from methods.classical import LabelledBatch
from methods.maml import MAML


class FinetuneBaseline(nn.Module):
    """``make_network(ways)`` builds the architecture with a ``head`` layer of ``ways`` outputs (the ``Conv-4`` of MAML);
    the trained network has ``train_ways`` outputs (every meta-training class)."""

    def __init__(self, make_network: Callable[[int], nn.Module], train_ways: int, task_loss: TaskLoss, inner_lr: float,
                 test_steps: int, frozen: tuple[str, ...] = ()):
        super().__init__()
        self.make_network = make_network
        self.network = make_network(train_ways)
        self.task_loss, self.inner_lr, self.test_steps, self.frozen = task_loss, inner_lr, test_steps, frozen

    def outer_loss(self, batch: LabelledBatch) -> torch.Tensor:
        """Cross-entropy of ``batch.x (B, C, H, W)`` against ``batch.y (B,)`` over the training classes (scalar)."""
        return F.cross_entropy(self.network(batch.x), batch.y)

    def test_learner(self, ways: int, seed: int) -> MAML:
        """A MAML learner (first order: nothing is meta-learned at test) on a copy of the trained weights with a new
        ``ways``-way head, Xavier-uniform from ``seed``; the trained network is not modified."""
        network = self.make_network(ways).to(next(self.network.parameters()).device)
        trained = {k: v for k, v in self.network.state_dict().items() if not k.startswith("head.")}
        network.load_state_dict({**network.state_dict(), **trained})
        with torch.no_grad():
            nn.init.xavier_uniform_(network.head.weight, generator=torch.Generator(network.head.weight.device).manual_seed(seed))
            network.head.bias.zero_()
        return MAML(network, self.task_loss, self.inner_lr, self.test_steps, first_order=True, frozen=self.frozen)
