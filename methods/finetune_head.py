"""MAML-style fine-tuning of a foreign backbone: Goldblum et al.'s "MAML" column ("Unraveling Meta-Learning", Table 1:
feature extractors trained one way, fine-tuned another). Every weight of the backbone and a new linear layer over its
features take ``steps`` plain gradient steps of size ``lr`` on the support cross-entropy (Finn et al.'s inner loop,
first order: nothing is differentiated through at test time), then the query is classified.

The paper gives neither the step size, the number of steps nor the new layer's initialisation; the benchmark chooses
``(lr, steps)`` on validation episodes (its module says which grid), the layer starts at zero (every class equally
likely, so the first step is driven by the features alone) [choice], and BatchNorm keeps the backbone's running
statistics (eval mode: a trained extractor's own normalisation) [choice]. Tested against a loop of ``torch.optim.SGD``
steps on a deep copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def finetune_trajectory(backbone: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, ways: int, lr: float,
                        at_steps) -> dict[int, tuple]:
    """The fine-tuned states of one episode after each step count in ``at_steps``, ``{steps: (params, buffers, weight,
    bias)}``, from one run of ``max(at_steps)`` SGD steps of ``lr`` (each state is the one :func:`finetune` returns for
    that count: the same operations in the same order). The backbone's weights, with the new layer ``weight (ways, d)``
    and ``bias (ways,)``, step on the support cross-entropy of ``support_x (n, C, H, W)``, ``support_y (n,)``; BatchNorm
    on running statistics. ``backbone`` is not modified (the states are returned)."""
    wanted = set(at_steps)
    was = backbone.training
    backbone.eval()
    try:
        params = {k: v.detach() for k, v in backbone.named_parameters()}
        buffers = dict(backbone.named_buffers())
        with torch.no_grad():
            dim = backbone(support_x[:1]).shape[1]
        weight = torch.zeros(ways, dim, dtype=support_x.dtype, device=support_x.device)
        bias = torch.zeros(ways, dtype=support_x.dtype, device=support_x.device)
        states = {0: (params, buffers, weight, bias)} if 0 in wanted else {}
        for step in range(1, max(wanted) + 1):
            with torch.enable_grad():
                tensors = [*params.values(), weight, bias]
                for t in tensors:
                    t.requires_grad_(True)
                features = functional_call(backbone, (params, buffers), (support_x,))
                loss = F.cross_entropy(F.linear(features, weight, bias), support_y)
                grads = torch.autograd.grad(loss, tensors)
            with torch.no_grad():
                updated = [t - lr * g for t, g in zip(tensors, grads)]
            params = dict(zip(params, updated[:-2]))
            weight, bias = updated[-2], updated[-1]
            if step in wanted:
                states[step] = (params, buffers, weight, bias)
        return states
    finally:
        backbone.train(was)


def finetune(backbone: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, ways: int, steps: int, lr: float):
    """The fine-tuned state of one episode, ``(params, buffers, weight, bias)``, after ``steps`` SGD steps of ``lr``
    (:func:`finetune_trajectory`)."""
    return finetune_trajectory(backbone, support_x, support_y, ways, lr, [steps])[steps]


def finetuned_features(backbone: nn.Module, state, x: torch.Tensor) -> torch.Tensor:
    """Features of ``x`` under a fine-tuned state from :func:`finetune` (eval-mode BatchNorm)."""
    params, buffers = state[0], state[1]
    was = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            return functional_call(backbone, (params, buffers), (x,))
    finally:
        backbone.train(was)


def finetune_logits(backbone: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, ways: int,
                    steps: int, lr: float) -> torch.Tensor:
    """One episode: ``support_x (n, C, H, W)``, ``support_y (n,)``, ``query_x (q, C, H, W)`` -> query logits ``(q, ways)``
    of the fine-tuned network and layer."""
    return finetuned_logits(backbone, finetune(backbone, support_x, support_y, ways, steps, lr), query_x)


def finetuned_logits(backbone: nn.Module, state, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(n, ways)`` of ``x`` under a fine-tuned state (its backbone weights and new layer)."""
    return F.linear(finetuned_features(backbone, state, x), state[2], state[3])


class FineTuneHead(nn.Module):
    """:func:`finetune_logits` over a batch of episodes: ``support_x (B, n, C, H, W)``, ``support_y (B, n)``,
    ``query_x (B, q, C, H, W)`` -> ``(B, q, ways)``. Holds no weights (``PROTOCOL_VERSION`` versions its numerics)."""

    PROTOCOL_VERSION = 1

    def __init__(self, steps: int = 10, lr: float = 0.1):
        super().__init__()
        self.steps, self.lr = steps, lr

    def forward(self, backbone: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor, ways: int) -> torch.Tensor:
        return torch.stack([finetune_logits(backbone, s, y, q, ways, self.steps, self.lr) for s, y, q in zip(support_x, support_y, query_x)])
