"""Loss-landscape measures of Guiroy, Verma & Pal ("Towards Understanding Generalization in Gradient-Based
Meta-Learning", 2019, sec. 4): sharpness of meta-test solutions, coherence of adaptation trajectories, coherence of
meta-test gradients. Pure functions of parameters, losses and vectors; each is tested against an independent oracle
(tests/test_landscape.py: the full float64 Hessian's eigenvalues, numpy loops over task pairs).

* Sharpness (eq. 3-4): the spectral norm of the Hessian of a task's support loss at its adapted parameters. The paper
  writes it ``lambda_max(H)`` "since H is real and symmetric"; the spectral norm of a symmetric matrix is its largest
  *absolute* eigenvalue, which is what power iteration on Hessian-vector products converges to and what is computed
  here (a Hessian at a non-minimum can have a larger negative eigenvalue than positive).
* Trajectory coherence (eq. 5): the mean inner product of the unit adaptation directions
  ``(theta_i - theta_s) / ||theta_i - theta_s||`` over pairs of distinct tasks [choice: ``i != j``; the paper's
  expectation over ``T_i, T_j ~ p(T)`` would add ``1/T`` for drawing the same task twice], and each task's distance
  travelled ``||theta_i - theta_s||``.
* Gradient coherence (eq. 6): the mean inner product of the meta-test gradients ``g_i = -grad L(D_i; theta_s)`` over
  pairs of distinct tasks (the vectors themselves, not their directions, as the paper found more predictive).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from metarepro.inner import BatchedForward, TaskLoss


def mean_pairwise_inner(vectors: torch.Tensor) -> torch.Tensor:
    """Mean of ``v_i . v_j`` over ordered pairs ``i != j``: ``vectors (T, P)``, ``T >= 2`` -> scalar, in O(T P)."""
    tasks = vectors.shape[0]
    if tasks < 2:
        raise ValueError("coherence needs at least two tasks")
    total = vectors.sum(0)
    return (total @ total - (vectors * vectors).sum()) / (tasks * (tasks - 1))


def trajectory_coherence(adapted: torch.Tensor, initial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(coherence, distances)``: ``adapted (T, P)`` flattened adapted parameters, ``initial (P,)`` the meta-train
    solution -> the mean pairwise inner product of the unit directions (scalar) and ``||theta_i - theta_s|| (T,)``."""
    displacement = adapted - initial
    distances = displacement.norm(dim=1)
    return mean_pairwise_inner(displacement / distances.clamp_min(1e-30).unsqueeze(1)), distances


def gradient_coherence(gradients: torch.Tensor) -> torch.Tensor:
    """The mean pairwise inner product of the meta-test gradients ``(T, P)`` (signs cancel: ``g_i = -grad`` or
    ``grad`` give the same value)."""
    return mean_pairwise_inner(gradients)


class PowerIteration(NamedTuple):
    """A spectral norm by power iteration: ``value``, the Hessian-vector products it took, and whether it met its
    tolerance (``False``: stopped at its cap, an estimate from below)."""

    value: float
    products: int
    converged: bool


def hessian_power_iteration(loss_fn: Callable[[list[torch.Tensor]], torch.Tensor], params: list[torch.Tensor], iterations: int = 200,
                            tolerance: float = 1e-6, generator: torch.Generator | None = None) -> PowerIteration:
    """``max |eigenvalue|`` of the Hessian of ``loss_fn(params)`` at ``params``, by power iteration on Hessian-vector
    products (double backward; the Hessian is never formed). Stops when the estimate changes by less than
    ``tolerance`` (relative) or after ``iterations``; starts from a seeded random direction."""
    leaves = [p.detach().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss_fn(leaves), leaves, create_graph=True)
    vector = [torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device) for p in leaves]
    norm = torch.sqrt(sum((v * v).sum() for v in vector))
    vector = [v / norm for v in vector]
    estimate = 0.0
    for product in range(1, iterations + 1):
        hv = torch.autograd.grad(grads, leaves, grad_outputs=vector, retain_graph=True)
        norm = torch.sqrt(sum((h * h).sum() for h in hv)).item()
        if norm == 0.0:
            return PowerIteration(0.0, product, True)
        vector = [h / norm for h in hv]
        if abs(norm - estimate) <= tolerance * max(norm, 1e-30):
            return PowerIteration(norm, product, True)
        estimate = norm
    return PowerIteration(estimate, iterations, False)


def hessian_spectral_norm(loss_fn: Callable[[list[torch.Tensor]], torch.Tensor], params: list[torch.Tensor], iterations: int = 200,
                          tolerance: float = 1e-6, generator: torch.Generator | None = None) -> float:
    """:func:`hessian_power_iteration`'s value alone."""
    return hessian_power_iteration(loss_fn, params, iterations, tolerance, generator).value


def flatten_tasks(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-task parameter dicts ``name -> (T, *shape)`` as one ``(T, P)`` matrix, in the dict's order."""
    return torch.cat([p.reshape(p.shape[0], -1) for p in params.values()], 1)


def support_gradients(forward: BatchedForward, task_loss: TaskLoss, params: dict[str, torch.Tensor], support_x: torch.Tensor,
                      support_y: torch.Tensor) -> torch.Tensor:
    """Each task's gradient of its own support loss at the shared parameters ``params`` (unbatched shapes), as ``(T, P)``
    in ``params`` order: ``support_x (T, n, ...)``, ``support_y (T, n, ...)``. One backward: every task gets its own copy
    of the parameters and the losses are summed, so each copy's gradient is its task's alone (as in the inner loop)."""
    tasks = support_x.shape[0]
    copies = {n: p.detach().unsqueeze(0).expand(tasks, *p.shape).clone().requires_grad_(True) for n, p in params.items()}
    with torch.enable_grad():
        loss = task_loss(forward(copies, support_x), support_y).sum()
        grads = torch.autograd.grad(loss, list(copies.values()))
    return torch.cat([g.reshape(tasks, -1) for g in grads], 1)


def pearson(x: list[float] | torch.Tensor, y: list[float] | torch.Tensor) -> float:
    """Pearson's correlation coefficient of two equal-length series (NaN when either is constant)."""
    a, b = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if a.shape != b.shape or a.ndim != 1 or a.numel() < 2:
        raise ValueError(f"pearson needs two 1-D series of the same length >= 2, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a - a.mean(), b - b.mean()
    denominator = a.norm() * b.norm()
    # clamped: rounding can put a collinear series' R a few ulps past +-1, where Fisher's z is undefined
    return float((a @ b / denominator).clamp(-1.0, 1.0)) if denominator > 0 else float("nan")
