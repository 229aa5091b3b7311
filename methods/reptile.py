"""Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms").

Each task of a meta-batch is trained from the current initialisation ``theta``
by a few steps of an inner optimiser; the initialisation then moves toward the
average of the adapted weights (Algorithm 2, batched version):

    theta <- theta + epsilon * (mean_i phi_i - theta)

As openai/supervised-reptile runs it (``reptile.py``, ``models.py``): the
inner optimiser is Adam with ``beta1 = 0``; its second-moment estimates and
step count are *not* reset between tasks (the code saves and restores only
the trainable variables around each task, so Adam's slots carry over, and
evaluation starts each test task from the slots training left); ``epsilon``
anneals linearly from ``meta_step`` to ``meta_step_final``. Here the outer
step is an SGD step on the surrogate ``0.5 * ||theta - stopgrad(mean phi)||^2``,
whose gradient is exactly ``theta - mean phi``, so the trainer's learning-rate
schedule is the annealing of ``epsilon``.

The maths are pure functions (:func:`adam_beta1_zero`), tested against a
float64 loop of TF's update rule.
"""

from __future__ import annotations

import torch
from torch import nn

from metarepro.episodes import Episode
from metarepro.inner import cross_entropy_per_task


def adam_beta1_zero(param: torch.Tensor, grad: torch.Tensor, second_moment: torch.Tensor, step: int, lr: float,
                    beta2: float = 0.999, eps: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of TensorFlow's Adam with ``beta1 = 0`` (``step`` counts from 1); returns ``(param, second_moment)``.

    ``v <- beta2 v + (1 - beta2) g^2``; ``param <- param - lr sqrt(1 - beta2^step) g / (sqrt(v) + eps)``
    (TF's bias correction folds into the rate; ``eps`` is added to the uncorrected ``sqrt(v)``).
    """
    second_moment = beta2 * second_moment + (1 - beta2) * grad * grad
    rate = lr * (1 - beta2**step) ** 0.5
    return param - rate * grad / (second_moment.sqrt() + eps), second_moment


class Reptile(nn.Module):
    """Reptile around a backbone that has ``forward_batched`` (e.g. ``ConvNet``).

    Args:
        backbone: the classifier whose initialisation is meta-learned.
        inner_lr: Adam learning rate of the inner loop (README: 1e-3 for 5-way, 5e-4 for 20-way).
        inner_batch: mini-batch size of a training task's inner loop.
        eval_iters: inner steps on a test task (README: 50).
        eval_batch: mini-batch size on a test task (README: 5 for 5-way, 10 for 20-way).
        transductive: test predictions with BatchNorm statistics of all queries at once; otherwise each query
            is classified in its own forward pass together with the support set (the code's non-transductive mode).
    """

    def __init__(self, backbone: nn.Module, inner_lr: float, inner_batch: int, eval_iters: int, eval_batch: int,
                 transductive: bool = False, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__()
        self.backbone = backbone
        self.inner_lr, self.inner_batch, self.eval_iters, self.eval_batch = inner_lr, inner_batch, eval_iters, eval_batch
        self.transductive, self.beta2, self.eps = transductive, beta2, eps
        # Adam's slots: part of the state dict, so a resumed run continues them exactly
        for name, p in backbone.named_parameters():
            self.register_buffer(_slot(name), torch.zeros_like(p))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))

    def _moments(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, _slot(n)) for n, _ in self.backbone.named_parameters()}

    def _inner_steps(self, params: dict, moments: dict, step0: int, batches: list[tuple[torch.Tensor, torch.Tensor]]):
        """Adam (beta1 = 0) over ``batches`` of ``(x (T, b, ...), y (T, b))``, every task its own weights; no graph kept."""
        loss = torch.zeros(())
        for k, (x, y) in enumerate(batches, start=1):
            with torch.enable_grad():
                leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
                loss = cross_entropy_per_task(self.backbone.forward_batched(leaves, x), y)
                grads = torch.autograd.grad(loss.sum(), list(leaves.values()))
            new = {n: adam_beta1_zero(params[n], g, moments[n], step0 + k, self.inner_lr, self.beta2, self.eps)
                   for n, g in zip(leaves, grads)}
            params = {n: v[0] for n, v in new.items()}
            moments = {n: v[1] for n, v in new.items()}
        return params, moments, loss.detach()

    def train_step(self, batch: Episode, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One meta-iteration. ``batch.support_x (T, iters*inner_batch, ...)``: each task's inner mini-batches in order.

        Tasks run one after another, Adam's slots carrying over (as in the code); the optimizer is SGD whose
        learning rate is the (annealed) meta step ``epsilon``.
        """
        theta = {n: p.detach().unsqueeze(0) for n, p in self.backbone.named_parameters()}
        moments = {n: v.unsqueeze(0) for n, v in self._moments().items()}
        steps = int(self.adam_steps)
        adapted, losses = [], []
        for t in range(batch.n_tasks):
            x, y = batch.support_x[t : t + 1], batch.support_y[t : t + 1]
            chunks = [(x[:, i : i + self.inner_batch], y[:, i : i + self.inner_batch]) for i in range(0, x.shape[1], self.inner_batch)]
            phi, moments, loss = self._inner_steps(theta, moments, steps, chunks)
            steps += len(chunks)
            adapted.append(phi)
            losses.append(loss)
        with torch.no_grad():
            for n, v in moments.items():
                getattr(self, _slot(n)).copy_(v[0])
            self.adam_steps.fill_(steps)
        optimizer.zero_grad(set_to_none=True)
        for n, p in self.backbone.named_parameters():
            p.grad = p.detach() - torch.stack([a[n][0] for a in adapted]).mean(0)  # d/dtheta 0.5||theta - mean phi||^2
        optimizer.step()
        return torch.stack(losses).mean()

    @torch.no_grad()
    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, order: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fast weights of ``T`` test tasks, trained together (independent: batched). ``order (T, eval_iters, eval_batch)``:
        which support examples form each inner mini-batch. Every task starts from the trained Adam slots."""
        tasks = support_x.shape[0]
        params = {n: p.detach().unsqueeze(0).expand(tasks, *p.shape).clone() for n, p in self.backbone.named_parameters()}
        moments = {n: v.unsqueeze(0).expand(tasks, *v.shape).clone() for n, v in self._moments().items()}
        rows = torch.arange(tasks).unsqueeze(1)
        batches = [(support_x[rows, order[:, k]], support_y[rows, order[:, k]]) for k in range(order.shape[1])]
        params, _, _ = self._inner_steps(params, moments, int(self.adam_steps), batches)
        return params

    @torch.no_grad()
    def predict(self, batch: Episode, order: torch.Tensor) -> torch.Tensor:
        """Query logits ``(T, n_query, ways)`` after adaptation, transductive or not (see the class docstring)."""
        params = self.adapt(batch.support_x, batch.support_y, order)
        if self.transductive:
            return self.backbone.forward_batched(params, batch.query_x)
        tasks, n_query = batch.query_x.shape[:2]
        queries = batch.query_x.reshape(tasks * n_query, 1, *batch.query_x.shape[2:])
        # one pseudo-task per (task, query): the support set plus that query, with the task's weights; in chunks
        # of at most PSEUDO_TASK_IMAGES images (all at once, 100 20-way 5-shot tasks took 24 GB and were OOM-killed)
        per_chunk = max(1, PSEUDO_TASK_IMAGES // (batch.support_x.shape[1] + 1))
        logits = []
        for start in range(0, tasks * n_query, per_chunk):
            pseudo = torch.arange(start, min(start + per_chunk, tasks * n_query), device=queries.device)
            owner = pseudo // n_query
            x = torch.cat([batch.support_x[owner], queries[pseudo]], dim=1)
            logits.append(self.backbone.forward_batched({n: v[owner] for n, v in params.items()}, x)[:, -1])
        return torch.cat(logits).view(tasks, n_query, -1)


#: images per batched forward of non-transductive prediction (~0.4 GB of first-layer activations at 28x28, 64 filters)
PSEUDO_TASK_IMAGES = 8192


def _slot(name: str) -> str:
    return "adam_v__" + name.replace(".", "__")
