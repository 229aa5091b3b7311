"""Reptile with weight-clustering regularisation (Goldblum et al., "Unraveling Meta-Learning", ICML 2020, sec. 5.1 and
Algorithm 2), and the filter-normalised distance it and Fig. 3 measure with.

Algorithm 2: the ``m`` tasks of a meta-batch are adapted in lock step from the initialisation ``theta``; at inner step
``j`` task ``i`` takes a plain SGD step of size ``eta`` on its loss plus ``alpha R_i``, where
``R_i = d(theta_i, mean_p theta_p)^2`` is the squared filter-normalised distance of its weights to the batch's
consensus, both at step ``j - 1``; then ``theta`` moves toward the mean adapted weights. With ``alpha = 0`` this is
Reptile with a plain-SGD inner loop (tested: the same as adapting each task alone with ``torch.optim.SGD``).

Choices where the paper is silent or inconsistent, each marked in the code:

* The printed outer update ``theta <- theta - gamma/m sum_i g_i`` with ``g_i = theta_i^k - theta_i^0`` moves *away*
  from the adapted weights; Reptile, which the paper says Algorithm 2 equals at ``alpha = 0``, moves toward them:
  ``theta <- theta + gamma (mean_i theta_i^k - theta)``. The sign is taken as a typo.
* The consensus is held fixed when differentiating ``R_i`` (its own ``1/m`` share included), so
  ``grad R_i = 2 (theta_i - mean) / ||mean_f||^2`` per filter ``f``: the "constant term collected from the gradient of
  the regulariser" the paper multiplies with ``alpha`` (best at ``5e-5``) is this 2.
* Filter normalisation (Li et al., NeurIPS 2018, Note 1): each output filter (first-axis slice) of a weight tensor with
  two or more axes is measured relative to the reference filter's norm,
  ``d(a, b)^2 = sum_f ||a_f - b_f||^2 / ||b_f||^2``; biases and BatchNorm parameters (one axis) are left out, as Li et
  al. leave them out of their directions.

How this relates to ``methods.reptile.Reptile`` (Nichol et al.'s code): that one adapts tasks one after another with
Adam (``beta1 = 0``) whose moments carry over between tasks; this one adapts them together with plain SGD, so at
``alpha = 0`` the two differ by the inner optimiser. Compare ``alpha > 0`` with this class at ``alpha = 0``.
"""

from __future__ import annotations

import torch
from torch import nn

from metarepro.episodes import Episode
from metarepro.inner import cross_entropy_per_task


def filter_normalized_sq_distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], eps: float = 1e-12) -> torch.Tensor:
    """``sum_f ||a_f - b_f||^2 / ||b_f||^2`` over the output filters of every weight with two or more axes (module
    docstring). ``a[name] (T, *shape)`` (a batch of weight sets), ``b[name] (*shape)`` or ``(T, *shape)`` -> ``(T,)``."""
    total = None
    for name, wa in a.items():
        wb = b[name]
        if wa.dim() - 1 < 2:  # a bias or BatchNorm parameter (one axis besides the task axis)
            continue
        ref = wb if wb.dim() == wa.dim() else wb.unsqueeze(0)
        diff = (wa - ref).flatten(2).pow(2).sum(-1)  # (T, filters)
        norm = ref.flatten(2).pow(2).sum(-1).clamp_min(eps)  # (1 or T, filters)
        term = (diff / norm).sum(-1)
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no weight with two or more axes to measure")
    return total


def filter_normalized_distance(adapted: dict[str, torch.Tensor], initial: dict[str, torch.Tensor]) -> torch.Tensor:
    """Fig. 3's distance travelled in fine-tuning: ``sqrt`` of :func:`filter_normalized_sq_distance` from ``initial``."""
    return filter_normalized_sq_distance(adapted, initial).sqrt()


class WeightClusteredReptile(nn.Module):
    """Algorithm 2 around a backbone with ``forward_batched`` (e.g. ``ConvNet``); ``alpha = 0`` is plain-SGD Reptile.

    Args:
        inner_lr: ``eta``. inner_batch: examples per inner step (a task's support is consumed in order).
        alpha: the regularisation coefficient. eval_iters, eval_batch: plain-SGD fine-tuning on a test task.
    """

    PROTOCOL_VERSION = 1

    def __init__(self, backbone: nn.Module, inner_lr: float, inner_batch: int, alpha: float, eval_iters: int = 50, eval_batch: int = 5):
        super().__init__()
        self.backbone, self.inner_lr, self.inner_batch, self.alpha = backbone, inner_lr, inner_batch, alpha
        self.eval_iters, self.eval_batch = eval_iters, eval_batch

    def inner_steps(self, params: dict[str, torch.Tensor], batches: list[tuple[torch.Tensor, torch.Tensor]], alpha: float):
        """Lock-step SGD of ``T`` tasks: ``params[name] (T, *shape)``, each batch ``(x (T, b, ...), y (T, b))``; returns the
        adapted params and the last step's mean task loss (nothing kept for the outer step: Reptile is first order)."""
        loss = torch.zeros(())
        for x, y in batches:
            consensus = {n: p.detach().mean(0) for n, p in params.items()}  # held fixed in R_i (module docstring)
            with torch.enable_grad():
                leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
                task_losses = cross_entropy_per_task(self.backbone.forward_batched(leaves, x), y)
                objective = task_losses.sum()
                if alpha:
                    objective = objective + alpha * filter_normalized_sq_distance(leaves, consensus).sum()
                grads = torch.autograd.grad(objective, list(leaves.values()))
            params = {n: p.detach() - self.inner_lr * g for (n, p), g in zip(leaves.items(), grads)}
            loss = task_losses.detach().mean()
        return params, loss

    def _batches(self, x: torch.Tensor, y: torch.Tensor, size: int):
        return [(x[:, i:i + size], y[:, i:i + size]) for i in range(0, x.shape[1], size)]

    def train_step(self, batch: Episode, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One meta-iteration on ``batch.support_x (T, steps*inner_batch, ...)``; the optimizer is SGD whose rate is
        ``gamma``: its gradient is ``theta - mean_i theta_i^k`` (Reptile's direction; the module docstring on the sign)."""
        tasks = batch.n_tasks
        theta = {n: p.detach().unsqueeze(0).expand(tasks, *p.shape).clone() for n, p in self.backbone.named_parameters()}
        adapted, loss = self.inner_steps(theta, self._batches(batch.support_x, batch.support_y, self.inner_batch), self.alpha)
        optimizer.zero_grad(set_to_none=True)
        for n, p in self.backbone.named_parameters():
            p.grad = p.detach() - adapted[n].mean(0)
        optimizer.step()
        return loss

    @torch.no_grad()
    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fine-tuned weights of ``T`` test tasks (plain SGD, no regulariser, ``eval_iters`` steps cycling over the
        support in batches of ``eval_batch``)."""
        tasks = support_x.shape[0]
        params = {n: p.detach().unsqueeze(0).expand(tasks, *p.shape).clone() for n, p in self.backbone.named_parameters()}
        chunks = self._batches(support_x, support_y, self.eval_batch)
        return self.inner_steps(params, [chunks[i % len(chunks)] for i in range(self.eval_iters)], 0.0)[0]

    @torch.no_grad()
    def predict(self, batch: Episode) -> torch.Tensor:
        """Query logits ``(T, q, ways)`` after fine-tuning (all queries in one pass: transductive BatchNorm)."""
        return self.backbone.forward_batched(self.adapt(batch.support_x, batch.support_y), batch.query_x)
