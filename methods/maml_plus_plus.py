"""MAML++ (Antoniou, Edwards & Storkey, "How to train your MAML", ICLR 2019).

MAML with the paper's fixes, each a switch, as the authors' code runs them (AntreasAntoniou/HowToTrainYourMAMLPytorch
at 8696470; file:line facts read in session 15):

* **LSLR**, learned per-layer per-step inner rates: one rate per adapted parameter tensor and inner step, initialised
  to ``inner_lr`` and meta-learned (``inner_loop_optimizers.py`` l.87-113; the code allocates ``steps + 1`` rates per
  tensor and uses the first ``steps``, as here). Off: the fixed rate, as MAML.
* **BNWB / BNRS**, per-step BatchNorm weights and biases: each inner step ``s`` (its support pass and the query pass
  after its update) normalises with its own scale and offset, meta-learned and never adapted
  (``meta_neural_network_architectures.py`` l.176-247). The code's per-step *running statistics* are collected but
  never used: its ``F.batch_norm`` call passes ``training=True`` always, so every pass normalises with the batch's own
  statistics (l.246-247). They are therefore not kept here; nothing they could change is computed.
* **MSL**, the multi-step loss: for the first ``msl_epochs`` epochs the meta-loss is the weighted sum of the query
  losses after every inner step, with weights annealed from uniform towards the last step
  (:func:`step_loss_weights`; ``few_shot_learning_system.py`` l.83-103 and l.232-244); afterwards the last step's alone.
* **CA**, cosine annealing of the meta learning rate per epoch (``few_shot_learning_system.py`` l.70-71 and 346):
  :func:`cosine_meta_lr`, a schedule the training loop applies (``train(..., lr_schedule=...)``).
* **DA**, derivative-order annealing, is not built: every released configuration of the code sets
  ``first_order_to_second_order_epoch`` to -1 (second order from the first iteration).

At evaluation the loop runs first order (``evaluation_forward_prop``, l.318) and the prediction is the query pass
after the last step, with that step's normalisation. The epoch the multi-step loss needs is counted by the model
itself (``meta_iterations``, a buffer saved with it, as the code keeps ``current_epoch``), so a resumed run anneals
exactly as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from metarepro.episodes import Episode
from metarepro.inner import Params, TaskLoss
from methods.maml import MAML


def step_loss_weights(steps: int, epoch: int, msl_epochs: int) -> torch.Tensor:
    """MSL's importance of each step's query loss at ``epoch``, ``(steps,)``: uniform at epoch 0; the non-final weights
    fall by ``1 / (steps * msl_epochs)`` per epoch to a floor of ``0.03 / steps`` while the last one rises to keep the
    sum at 1 (the code's ``get_per_step_loss_importance_vector``)."""
    decay = 1.0 / steps / msl_epochs
    floor = 0.03 / steps
    weights = [max(1.0 / steps - epoch * decay, floor) for _ in range(steps - 1)]
    weights.append(min(1.0 / steps + epoch * (steps - 1) * decay, 1.0 - (steps - 1) * floor))
    return torch.tensor(weights, dtype=torch.float64)


def cosine_meta_lr(epoch: int, epochs: int, start: float, floor: float) -> float:
    """The meta learning rate at ``epoch`` of ``epochs`` (PyTorch's ``CosineAnnealingLR`` with ``T_max = epochs``,
    stepped once per epoch): ``floor + (start - floor) (1 + cos(pi epoch / epochs)) / 2``."""
    return floor + (start - floor) * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0


def norm_parameter_names(backbone: nn.Module) -> tuple[str, ...]:
    """Names of the parameters of the backbone's normalisation layers (a module whose class name has "Norm")."""
    names = []
    for module_name, module in backbone.named_modules():
        if "Norm" in type(module).__name__:
            names += [f"{module_name}.{n}" if module_name else n for n, _ in module.named_parameters(recurse=False)]
    return tuple(names)


def _key(name: str) -> str:
    return name.replace(".", "-")  # ParameterDict keys cannot hold dots


def adapt_per_step(forward, task_loss: TaskLoss, params: Params, norms_at, rates_at, support_x: torch.Tensor,
                   support_y: torch.Tensor, steps: int, graph: bool, query_x: torch.Tensor | None = None,
                   every_step: bool = False) -> tuple[Params, list[torch.Tensor]]:
    """MAML++'s inner loop on ``T`` tasks (pure: nothing is stored).

    ``params``: the adapted tensors ``(T, *shape)``; ``norms_at(step)``: the normalisation tensors of that step
    ``(T, *shape)``; ``rates_at(step)``: name -> the step's rate. At step ``s`` the support loss (summed over tasks) is
    taken with step ``s``'s normalisation and every adapted tensor moves by ``-rate * grad``. Returns the adapted
    tensors and the query predictions ``(T, n_query, ...)`` after every step (``every_step``) or after the last (a
    list of one; empty without ``query_x``)."""
    names = list(params)
    predictions = []
    for step in range(steps):
        at = {**params, **norms_at(step)}
        loss = task_loss(forward(at, support_x), support_y).sum()
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=graph)
        rates = rates_at(step)
        params = {n: params[n] - rates[n] * g for n, g in zip(names, grads)}
        if query_x is not None and (every_step or step == steps - 1):
            predictions.append(forward({**params, **norms_at(step)}, query_x))
    return params, predictions


class MAMLPlusPlus(MAML):
    """MAML++ around a backbone with a batched forward (``forward_batched(params, x)``, as :class:`methods.backbones.ConvNet`).

    Args:
        backbone, task_loss, inner_lr, inner_steps: as :class:`methods.maml.MAML` (``inner_steps`` at training and test).
        learn_step_rates: LSLR (else the fixed ``inner_lr``).
        per_step_norms: BNWB (else one scale and offset shared by the steps, as MAML).
        msl_epochs: epochs of the multi-step loss (0: off, the last step's query loss from the start).
        epoch_length: meta-iterations per epoch (what ``msl_epochs`` counts in).
        norm_names: the backbone's normalisation parameters (default: :func:`norm_parameter_names`); never adapted.
    """

    def __init__(self, backbone: nn.Module, task_loss: TaskLoss, inner_lr: float, inner_steps: int, *, learn_step_rates: bool = True,
                 per_step_norms: bool = True, msl_epochs: int = 10, epoch_length: int = 500, norm_names: tuple[str, ...] | None = None,
                 first_order: bool = False, engine: str = "func"):
        norm_names = norm_parameter_names(backbone) if norm_names is None else tuple(norm_names)
        super().__init__(backbone, task_loss, inner_lr, inner_steps, first_order=first_order, engine=engine, frozen=norm_names)
        if engine not in ("func", "loop"):
            raise ValueError(f"MAML++ runs on the 'func' or 'loop' engine, not {engine!r}")
        self.inner_steps, self.msl_epochs, self.epoch_length, self.engine = inner_steps, msl_epochs, epoch_length, engine
        self.norm_names = norm_names
        self.adapted_names = tuple(n for n, _ in backbone.named_parameters() if n not in norm_names)
        self.step_rates = nn.ParameterDict({
            _key(n): nn.Parameter(torch.full((inner_steps + 1,), float(inner_lr)), requires_grad=learn_step_rates)
            for n in self.adapted_names})
        own = dict(backbone.named_parameters())
        self.per_step_norms = per_step_norms
        # BNWB: a (steps, *shape) table per normalisation tensor, each row starting from the backbone's initial values;
        # the backbone's own copies are then unused and left out of the meta-parameters
        self.step_norms = nn.ParameterDict({
            _key(n): nn.Parameter(own[n].detach().clone().unsqueeze(0).repeat(inner_steps, *([1] * own[n].dim())))
            for n in norm_names} if per_step_norms else {})
        if per_step_norms:
            for n in norm_names:
                own[n].requires_grad_(False)
        self.register_buffer("meta_iterations", torch.zeros((), dtype=torch.long))

    # -- the pieces of one adaptation --------------------------------------------------------------------------------
    def epoch(self) -> int:
        return int(self.meta_iterations) // self.epoch_length

    def norms_at(self, step: int, tasks: int) -> Params:
        """Step ``step``'s normalisation tensors, ``(tasks, *shape)``."""
        own = dict(self.backbone.named_parameters())
        table = {n: self.step_norms[_key(n)][step] for n in self.norm_names} if self.per_step_norms else {n: own[n] for n in self.norm_names}
        return {n: v.unsqueeze(0).expand(tasks, *v.shape) for n, v in table.items()}

    def rates_at(self, step: int) -> dict[str, torch.Tensor]:
        return {n: self.step_rates[_key(n)][step] for n in self.adapted_names}

    def adapt_and_predict(self, batch: Episode, training: bool, every_step: bool) -> list[torch.Tensor]:
        """Query predictions ``(T, n_query, ...)`` after each step (``every_step``) or the last, adapting to ``batch``'s
        support sets: second order while training unless ``first_order``, first order at evaluation (as the code)."""
        own = dict(self.backbone.named_parameters())
        graph = training and not self.train_loop.first_order
        forward = self.backbone.forward_batched

        def run(support_x, support_y, query_x) -> list[torch.Tensor]:
            tasks = support_x.shape[0]
            params = {n: own[n].unsqueeze(0).expand(tasks, *own[n].shape) for n in self.adapted_names}
            _, predictions = adapt_per_step(forward, self.task_loss, params, lambda s: self.norms_at(s, tasks), self.rates_at,
                                            support_x, support_y, self.inner_steps, graph, query_x, every_step)
            return predictions

        if self.engine == "func":
            return run(batch.support_x, batch.support_y, batch.query_x)
        per_task = [run(batch.support_x[t : t + 1], batch.support_y[t : t + 1], batch.query_x[t : t + 1]) for t in range(batch.n_tasks)]
        return [torch.cat(step) for step in zip(*per_task)]

    # -- MAML's interface -------------------------------------------------------------------------------------------------
    def inner_loop(self, training: bool):
        raise NotImplementedError("MAML++ has no single inner loop: its rates and normalisation change per step (adapt_and_predict)")

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, training: bool = False):
        # MAML's adapt would run plain MAML steps (one fixed rate, shared normalisation) under MAML++'s name
        raise NotImplementedError("MAML++ adapts with per-step rates and normalisation tables: use adapt_and_predict")

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        """The meta-loss at the model's current epoch: MSL's weighted sum over steps while ``epoch < msl_epochs``, else
        the last step's query loss; averaged over the tasks (scalar)."""
        multi_step = self.epoch() < self.msl_epochs
        predictions = self.adapt_and_predict(batch, training=True, every_step=multi_step)
        losses = torch.stack([self.task_loss(p, batch.query_y).mean() for p in predictions])
        if not multi_step:
            return losses[-1]
        return (step_loss_weights(self.inner_steps, self.epoch(), self.msl_epochs).to(losses) * losses).sum()

    def train_step(self, batch: Episode, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One meta-update, then one more meta-iteration counted (what the multi-step loss anneals by)."""
        optimizer.zero_grad(set_to_none=True)
        loss = self.outer_loss(batch)
        if torch.isfinite(loss):
            loss.backward()
            optimizer.step()
            self.meta_iterations += 1
        return loss.detach()

    def predict(self, batch: Episode) -> torch.Tensor:
        with torch.enable_grad():
            return self.adapt_and_predict(batch, training=False, every_step=False)[-1].detach()

    def score(self, batch: Episode) -> torch.Tensor:
        return self.task_loss(self.predict(batch), batch.query_y)
