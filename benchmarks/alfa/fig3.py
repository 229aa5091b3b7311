"""ALFA Fig. 3 (Baik et al., NeurIPS 2020, ``../shared/papers/alfa-adaptive-hyperparameters.txt``, sec. 4.6): the
learning rate alpha and weight-decay term beta that ALFA generates at each inner step, drawn for each layer.

The paper draws them for the 4th convolutional layer of its mini-ImageNet / CUB 4-CONV models. Here, on real data, they
are those of the Omniglot ALFA + MAML models that ``alfa-omniglot`` trains (the same trainings, shared: its protocol,
3 seeds), measured on the first ``trace_tasks`` of its test tasks as test-time adaptation applies them. alpha and beta
are the effective values of the code's update, ``theta <- (1 - beta) theta - alpha g`` with ``alpha = alpha0[j, l]
alpha1`` and ``beta = beta0[j, l] beta1`` (``methods.alfa``, form ``code``): per step ``j``, layer ``l`` and task.

Each record carries, per layer and step, the 5 / 25 / 50 / 75 / 95 % quantiles over the traced tasks; the figures
(``results/figures/alfa-fig3--<scale>--alpha.png``, ``--beta.png``, and ``--conv4.png``, the paper's panel) draw the
median with the 25-75 % and 5-95 % bands, one colour per seed. The paper's claim, that the values are generated "in a
dynamic range for each inner-loop step", is what the figures show; there is no number to compare.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from benchmarks.alfa.images import ALFAImages
from benchmarks.alfa.omniglot import BENCHMARK as OMNIGLOT
from benchmarks.harness.base import Cell
from metarepro import results as R
from metarepro.episodes import Episode, task_rng
from metarepro.inner import adapt_tasks
from methods.alfa import ALFA

QUANTILES = (5, 25, 50, 75, 95)


def generated_hyperparameters(model: ALFA, batch: Episode) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, beta)``, each ``(steps, layers, T)``: the learning rate and weight-decay term of each inner step, for
    each of ``model.names`` and each task of ``batch``, as test-time adaptation applies them."""
    trace: list[tuple[list, list]] = []

    def recording(step: int, params, grads):
        lr, decay = model.hyperparameters(step, params, grads)
        trace.append(([lr[n] for n in model.names], [decay[n] for n in model.names]))
        return lr, decay

    tasks = batch.support_x.shape[0]

    def per_task(value) -> np.ndarray:  # a float, a shared 0-d / (1, 1, ...) value, or one per task (T, 1, ...)
        return np.broadcast_to(torch.as_tensor(value).detach().reshape(-1).cpu().numpy(), (tasks,))

    # the batched engine: the recorder reads one call per step holding every task (the "loop" engine calls it per task)
    loop = dataclasses.replace(model.inner_loop(training=False), hyper_fn=recording, engine="func")
    with torch.enable_grad():
        adapt_tasks(model.backbone, model.meta_parameters(), batch.support_x, batch.support_y, model.task_loss, loop)
    alpha = np.array([[per_task(v) for v in lrs] for lrs, _ in trace])
    beta = np.array([[per_task(v) for v in decays] for _, decays in trace])
    return alpha, beta


def quantile_table(values: np.ndarray) -> list[list[list[float]]]:
    """``(steps, layers, T) -> [layer][step] = [q05, q25, q50, q75, q95]`` over the tasks."""
    q = np.percentile(values, QUANTILES, axis=2)  # (5, steps, layers)
    return [[q[:, j, layer].tolist() for j in range(values.shape[0])] for layer in range(values.shape[1])]


class ALFAFig3(ALFAImages):
    id = "alfa-fig3"
    title = ("ALFA Fig. 3: generated learning rate and weight decay per inner step and layer, on Omniglot ALFA + MAML "
             "models (alfa-omniglot's, claim budget of 4,000 meta-iterations), test-task accuracy %")
    rows = ("ALFA + MAML",)
    columns = ("Omniglot 5-way 1-shot",)
    requires_data = "omniglot"

    def config(self, cell, scale: str) -> dict:
        return {**super().config(cell, scale), "trace_tasks": 4 if scale == "smoke" else 100}

    def protocol_deviations(self, cell, scale: str) -> list[str]:
        return OMNIGLOT.protocol_deviations(cell, scale)

    def measure_trained(self, model: ALFA, pools: dict, cfg: dict, device: str) -> dict:
        rngs = [task_rng(cfg["test_seed"], "test", i) for i in range(cfg["trace_tasks"])]
        batch = self.task_batch(pools["test"], cfg, rngs, cfg["test_queries"]).to(device)
        alpha, beta = generated_hyperparameters(model, batch)
        return {"generated": {"layers": list(model.names), "quantiles": list(QUANTILES), "tasks": cfg["trace_tasks"],
                              "alpha": quantile_table(alpha), "beta": quantile_table(beta)}}

    def render_figures(self, scale: str) -> list[Path]:
        from metarepro.figures import quantile_panels

        records = sorted((r for r in R.load_records(self.id) if r["scale"] == scale and r["variant"] == "main" and r.get("generated")),
                         key=lambda r: r.get("seed", 0))
        if not records:
            return []
        layers = records[0]["generated"]["layers"]

        def panel(key: str, layer: int) -> dict:
            series = {f"seed {r.get('seed', 0)}": [(j + 1, *q) for j, q in enumerate(r["generated"][key][layer])] for r in records}
            return {"title": layers[layer], "ylabel": ylabel[key], "series": series}

        cfg = self.config(Cell(self.rows[0], self.columns[0]), scale)
        budget = f"claim budget, {cfg['epochs'] * cfg['epoch']:,} meta-iterations per model" if scale == "paper" else f"{scale} scale"
        caption = f"ALFA + MAML, Omniglot 5-way 1-shot ({budget}): median, 25-75 % and 5-95 % over test tasks"
        ylabel = {"alpha": "alpha", "beta": "beta (code: theta <- (1 - beta) theta - alpha g)"}
        paths = [quantile_panels([panel(key, i) for i in range(len(layers))], self.figure_path(scale, key),
                                 f"generated {key} per inner step, {caption}", "inner step", ncols=5) for key in ("alpha", "beta")]
        conv4 = layers.index("convs.3.weight")
        paths.append(quantile_panels([panel("alpha", conv4), panel("beta", conv4)], self.figure_path(scale, "conv4"),
                                     f"4th conv layer (the paper's Fig. 3 panel), {caption}", "inner step", ncols=2))
        return paths


BENCHMARK = ALFAFig3()
