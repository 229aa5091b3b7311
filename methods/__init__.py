"""One file per method; ``METHODS`` registers each with default settings.

A factory takes ``(backbone, task_loss, inner_lr, inner_steps)`` and returns
the method. Registering one here enrols it in the smoke tests.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from metarepro.inner import TaskLoss
from methods.alfa import ALFA
from methods.l2f import L2F
from methods.maml import MAML
from methods.maml_plus_plus import MAMLPlusPlus
from methods.meta_sgd import MetaSGD

MethodFactory = Callable[[nn.Module, TaskLoss, float, int], nn.Module]

METHODS: dict[str, MethodFactory] = {
    "maml": lambda net, loss, lr, steps: MAML(net, loss, lr, steps),
    "fomaml": lambda net, loss, lr, steps: MAML(net, loss, lr, steps, first_order=True),
    "alfa+maml": lambda net, loss, lr, steps: ALFA(net, loss, lr, steps, form="paper"),
    "alfa+maml-code": lambda net, loss, lr, steps: ALFA(net, loss, lr, steps, form="code", generator_layers=2),
    "alfa+maml-bounded": lambda net, loss, lr, steps: ALFA(net, loss, lr, steps, form="bounded"),
    "alfa+random-init": lambda net, loss, lr, steps: ALFA(net, loss, lr, steps, form="code", learn_init=False),
    "maml++": lambda net, loss, lr, steps: MAMLPlusPlus(net, loss, lr, steps),
    "meta-sgd": lambda net, loss, lr, steps: MetaSGD(net, loss, lr, steps),
    "maml+l2f": lambda net, loss, lr, steps: L2F(net, loss, lr, steps),
    "alfa+maml+l2f": lambda net, loss, lr, steps: ALFA(net, loss, lr, steps, form="code", generator_layers=2, attenuate=True),
}
