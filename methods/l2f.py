"""L2F: Learning to Forget for Meta-Learning (Baik, Hong & Lee, CVPR 2020).

Before adapting to a task, each layer of the meta-learned initialisation is scaled by a task-dependent attenuation
``gamma_l`` in (0, 1), generated from the task's support gradient at the initialisation; the inner loop then runs MAML's
plain SGD from the attenuated weights::

    gamma = g_psi( [mean(grad_1), ..., mean(grad_N)] )        (one layer-wise mean per parameter tensor)
    theta_task = gamma_l * theta_l   for every layer l,        then MAML's steps from theta_task

As the authors' code computes it (github.com/baiksung/L2F, ``few_shot_learning_system.py``; facts read in session 13):

* ``g_psi``: ``Linear(N, N) -> ReLU -> Linear(N, N) -> Sigmoid`` with PyTorch's default initialisation (so training
  starts with ``gamma`` near ``sigmoid(0) = 0.5``, not at 1);
* its input: the per-tensor mean of the support-loss gradient at ``theta``, taken without a graph
  (``create_graph=False``): the attenuator learns through ``gamma``'s effect on the adapted weights only. ALFA's code,
  which also implements ALFA + L2F, takes that gradient *with* a graph (``gradient_graph=True`` here);
* the "layers" are the parameter tensors the inner loop adapts (BatchNorm's are left out there: ``frozen``);
* one attenuation per task, before the first step; the inner rate is fixed (0.01 in their mini-ImageNet configuration);
* their meta-loss sums the tasks' query losses; MAML's here averages them (Adam's update is invariant to that constant
  factor up to its epsilon).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from metarepro.inner import Params, TaskLoss
from methods.maml import MAML


def layer_gradient_means(grads: Params, names: list[str]) -> torch.Tensor:
    """The attenuator's input: ``(T, N)``, the mean of each named gradient ``(T, *shape)`` over its elements."""
    return torch.stack([grads[n].flatten(1).mean(1) for n in names], dim=1)


def attenuate(params: Params, gamma: torch.Tensor, names: list[str]) -> Params:
    """``params[n] (T, *shape)`` times ``gamma[:, i] (T,)`` for the ``i``-th named layer; other entries unchanged."""
    out = dict(params)
    for i, n in enumerate(names):
        out[n] = params[n] * gamma[:, i].view((-1,) + (1,) * (params[n].dim() - 1))
    return out


class Attenuator(nn.Module):
    """``g_psi`` and its use: ``(params (T, ...), support grads at them) -> attenuated params`` (an inner loop's
    ``start_fn``). Nothing about a task is stored."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = list(names)
        width = len(self.names)
        self.net = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.Sigmoid())

    def gamma(self, grads: Params) -> torch.Tensor:
        """``(T, N)`` attenuations in (0, 1)."""
        return self.net(layer_gradient_means(grads, self.names))

    def forward(self, params: Params, grads: Params) -> Params:
        return attenuate(params, self.gamma(grads), self.names)


class L2F(MAML):
    """MAML whose tasks start from an attenuated initialisation (module docstring).

    Args are MAML's, plus ``gradient_graph``: differentiate through the attenuator's gradient input (ALFA's code: True;
    L2F's: False, the default).
    """

    PROTOCOL_VERSION = 1

    def __init__(self, backbone: nn.Module, task_loss: TaskLoss, inner_lr: float, inner_steps: int, test_steps: int | None = None,
                 first_order: bool = False, engine: str = "func", frozen: tuple[str, ...] = (), gradient_graph: bool = False):
        super().__init__(backbone, task_loss, inner_lr, inner_steps, test_steps=test_steps, first_order=first_order, engine=engine,
                         frozen=frozen)
        self.attenuator = Attenuator([n for n, _ in backbone.named_parameters() if n not in frozen])
        self.train_loop = dataclasses.replace(self.train_loop, start_fn=self.attenuator, start_graph=gradient_graph)
