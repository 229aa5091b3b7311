"""Differentiable inner loops, written once for every gradient-based method.

The loop works on *parameter dicts* whose tensors carry a leading task
dimension ``T``: ``params[name]`` has shape ``(T, *param_shape)``. One step is

    theta <- (1 - decay) * theta - lr * grad L_support(theta)

which is plain SGD (MAML), SGD with weight decay (``decay = lr * lambda``,
ALFA eq. 3 with ``beta = 1 - decay``), or ALFA's generated per-step,
per-layer, per-task hyperparameters (eq. 4 with ``beta = 1 - decay``).
``lr`` and ``decay`` are inputs: a number, a per-parameter dict of tensors
broadcastable against ``(T, *param_shape)``, a per-step sequence of either, or
the output of a ``hyper_fn(step, params, grads)`` that generates them.

Engines (what evaluates the network on a parameter dict):

* ``"func"`` (default): all ``T`` tasks run as one batched computation
  through the model's own ``forward_batched`` where it has one (batched
  matmuls for MLPs, grouped convolutions for ``ConvNet``, each tested against
  a per-task loop), else ``torch.func.vmap`` for nets without norm layers.
  Other nets with BatchNorm/InstanceNorm run task by task: vmap over tasks
  gives wrong second-order gradients with affine norm layers (REFERENCE.md,
  measured 0.8-11% relative error in float64).
* ``"loop"``: tasks one by one (``T = 1`` at a time through the same
  ``forward_batched``, or ``functional_call``). The same arithmetic as
  ``"func"``; on a CPU it is the faster one once a task's own batch fills the
  convolutions (``metarepro time``: Omniglot 5-shot and 20-way cells).
* ``"higher"``: the same loop, tasks one by one, with the network evaluated
  through ``higher.monkeypatch`` (Grefenstette et al. 2019). It exists as an
  independent second implementation; tests hold the two equal.

Second order is the default; ``first_order=True`` computes the support
gradients without a graph, so ``d theta' / d theta = (1 - decay)`` and the
Hessian term of the meta-gradient is dropped (first-order MAML).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
#: ``(params (T, ...), x (T, n, ...)) -> predictions (T, n, ...)``
BatchedForward = Callable[[Params, torch.Tensor], torch.Tensor]
#: ``(predictions (T, n, ...), targets (T, n, ...)) -> per-task loss (T,)``
TaskLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Rate = float | torch.Tensor | Mapping[str, torch.Tensor]
RateSchedule = Rate | Sequence[Rate]
#: ``(step, params, grads) -> (lr, decay)``: generated hyperparameters (ALFA)
HyperFn = Callable[[int, Params, Params], tuple[Rate, Rate]]
#: ``(params, grads) -> params``: each task's starting point from the support gradient at the initialisation (L2F)
StartFn = Callable[[Params, Params], Params]

ENGINES = ("func", "loop", "higher")


def sgd_step(param: torch.Tensor, grad: torch.Tensor, lr, decay) -> torch.Tensor:
    """One update ``(1 - decay) * param - lr * grad`` (pure, differentiable)."""
    if isinstance(decay, (int, float)) and decay == 0:
        return param - lr * grad
    return (1 - decay) * param - lr * grad


def _rate_at(schedule: RateSchedule, step: int, name: str):
    """Resolve a rate schedule to the value for ``step`` and parameter ``name``."""
    rate = schedule
    if isinstance(rate, Sequence) and not isinstance(rate, (str, torch.Tensor)):
        rate = rate[step]
    if isinstance(rate, Mapping):
        rate = rate[name]
    return rate


@dataclass(frozen=True)
class InnerLoop:
    """How to adapt: step count, rates, order, and the engine to run it on.

    ``lr``/``decay`` follow the schedule conventions in the module docstring;
    ``hyper_fn``, when given, replaces both at every step. ``start_fn``, when
    given, maps the initialisation and its support gradient to each task's
    starting point before the first step (L2F's attenuation); that gradient
    carries a graph only with ``start_graph`` (and never first order).
    """

    steps: int
    lr: RateSchedule = 0.01
    decay: RateSchedule = 0.0
    first_order: bool = False
    hyper_fn: HyperFn | None = None
    engine: str = "func"
    #: parameters the inner loop leaves alone (meta-learned by the outer loop only, e.g. MAML's BatchNorm offsets)
    frozen: frozenset[str] = frozenset()
    start_fn: StartFn | None = None
    start_graph: bool = False

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"unknown inner-loop engine {self.engine!r}; choose one of {ENGINES}")
        if self.steps < 0:
            raise ValueError(f"inner-loop steps must be >= 0, got {self.steps}")


def run_inner_loop(
    forward: BatchedForward,
    task_loss: TaskLoss,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    loop: InnerLoop,
) -> Params:
    """Adapt ``params (T, ...)`` on the support sets; return the adapted dict.

    The support loss is summed over tasks, so each task's parameter slice
    receives exactly its own task's gradient.
    """
    names = [n for n in params if n not in loop.frozen]

    def support_gradients(at: Params, graph: bool) -> Params:
        loss = task_loss(forward(at, support_x), support_y).sum()
        return dict(zip(names, torch.autograd.grad(loss, [at[n] for n in names], create_graph=graph)))

    if loop.start_fn is not None:
        params = loop.start_fn(params, support_gradients(params, loop.start_graph and not loop.first_order))
    for step in range(loop.steps):
        grads = support_gradients(params, not loop.first_order)
        if loop.hyper_fn is not None:
            lr, decay = loop.hyper_fn(step, params, grads)
        else:
            lr, decay = loop.lr, loop.decay
        params = {
            **params, **{n: sgd_step(params[n], grads[n], _rate_at(lr, step, n), _rate_at(decay, step, n)) for n in names}
        }
    return params


def has_batch_statistics(model: nn.Module) -> bool:
    """True when the model has BatchNorm/InstanceNorm layers (no task batching)."""
    return any(isinstance(m, nn.modules.batchnorm._NormBase) for m in model.modules())


def batched_forward(model: nn.Module) -> BatchedForward:
    """All tasks in one computation: ``model.forward_batched`` or vmap."""
    own = getattr(model, "forward_batched", None)
    if own is not None:
        return own

    def single(p: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (x,))

    return torch.func.vmap(single)


def _single_task_forward(model: nn.Module, engine: str) -> BatchedForward:
    """A forward over ``T = 1`` parameter dicts, through ``engine``."""
    if engine == "higher":
        import higher  # optional engine: imported only when asked for

        # copy_initial_weights is irrelevant here: we always pass params explicitly.
        fmodel = higher.monkeypatch(model, copy_initial_weights=False, track_higher_grads=True)
        order = [n for n, _ in model.named_parameters()]

        def forward(p: Params, x: torch.Tensor) -> torch.Tensor:
            fast = [p[n][0] for n in order]
            # higher refills a submodule's weights only when that submodule's own forward runs; ConvNet reads its
            # layers' weights and calls F.conv2d itself, so every module is refilled here (the graph is kept)
            fmodel.update_params(fast)
            return fmodel(x[0], params=fast).unsqueeze(0)

        return forward

    own = getattr(model, "forward_batched", None)
    if own is not None:
        return own

    def forward(p: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {n: v[0] for n, v in p.items()}, (x[0],)).unsqueeze(0)

    return forward


@dataclass(frozen=True)
class AdaptedTasks:
    """Adapted fast weights of ``T`` tasks and the forward that uses them.

    ``params[name]`` is ``(T, *shape)``; :meth:`predict` maps ``x (T, n,
    ...)`` to ``(T, n, ...)``. A value: nothing is stored on the model.
    """

    params: Params
    forward: BatchedForward
    batched: bool

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        if self.batched:
            return self.forward(self.params, x)
        return torch.cat(
            [self.forward({n: v[t : t + 1] for n, v in self.params.items()}, x[t : t + 1]) for t in range(x.shape[0])]
        )


def adapt_tasks(
    model: nn.Module,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    task_loss: TaskLoss,
    loop: InnerLoop,
) -> AdaptedTasks:
    """Adapt the meta-parameters ``params`` (unbatched shapes) to ``T`` tasks.

    ``support_x (T, n, ...)``, ``support_y (T, n, ...)``. The returned fast
    weights stay differentiable w.r.t. ``params`` (and whatever ``loop``
    depends on) unless ``loop.first_order``.
    """
    n_tasks = support_x.shape[0]
    if loop.engine == "func" and (hasattr(model, "forward_batched") or not has_batch_statistics(model)):
        forward = batched_forward(model)
        expanded = {n: p.unsqueeze(0).expand(n_tasks, *p.shape) for n, p in params.items()}
        return AdaptedTasks(run_inner_loop(forward, task_loss, expanded, support_x, support_y, loop), forward, True)

    forward = _single_task_forward(model, loop.engine)
    per_task = []
    for t in range(n_tasks):
        start = {n: p.unsqueeze(0) for n, p in params.items()}
        per_task.append(run_inner_loop(forward, task_loss, start, support_x[t : t + 1], support_y[t : t + 1], loop))
    stacked = {n: torch.cat([p[n] for p in per_task]) for n in params}
    return AdaptedTasks(stacked, forward, False)


def mse_per_task(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each task: ``(T, n, d) -> (T,)``."""
    return (pred - target).pow(2).flatten(1).mean(1)


def cross_entropy_per_task(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each task: ``logits (T, n, ways)``, ``labels (T, n)`` -> ``(T,)``."""
    t, n, ways = logits.shape
    return nn.functional.cross_entropy(logits.reshape(t * n, ways), labels.reshape(t * n), reduction="none").view(t, n).mean(1)
