"""Hyper-Representation Figure 1: meta-validation accuracy against the number of ground-model steps ``T``, 1-shot
(``../shared/papers/franceschi-bridge-hpo-learning-to-learn.txt``, sec. 4: "we ... optimize the number of gradient descent
updates (see Figure 1) based on the mean accuracy on the test sets of episodes in D_val").

One model per ``T`` of ``hyperrepr-table1``'s grid, trained as there (the
same training keys: ``hyperrepr-table1``'s 5-way 1-shot cell reuses these
models and keeps the best ``T``). A cell is the selected checkpoint's
accuracy on the fixed meta-validation episodes (15 queries per class). The
paper's curve is not printed as numbers; the figure is
``results/figures/hyperrepr-fig1--<scale>.png`` (mean and 95% CI).
"""

from __future__ import annotations

from benchmarks.families.fewshot_metric import FewShotMetricTable
from benchmarks.harness.base import Cell
from benchmarks.hyperrepr.table1 import BENCHMARK as TABLE1
from benchmarks.hyperrepr.table1 import T_GRID
from metarepro import results as R


class HyperReprFig1(FewShotMetricTable):
    id = "hyperrepr-fig1"
    title = "Hyper-Representation, meta-validation accuracy against T, mini-ImageNet 5-way 1-shot (Franceschi et al. 2017, Fig. 1), accuracy %"
    paper = "franceschi-bridge-hpo-learning-to-learn.txt"
    metric = "meta-validation accuracy %"
    dataset = "mini_imagenet"
    rows = ("Hyper-Representation",)
    columns = tuple(f"T = {t}" for t in T_GRID)

    def config(self, cell: Cell, scale: str) -> dict:
        cfg = TABLE1.config(Cell(cell.row, "5-way 1-shot"), scale)
        return {**cfg, "benchmark": self.id, "column": cell.column, "trained_by": TABLE1.id,
                "ground_steps": int(cell.column.split("=")[1])}

    def training_key(self, cell: Cell, scale: str) -> str:
        return TABLE1.key_of(self.config(cell, scale))

    def lr_schedule(self, cfg: dict):
        return TABLE1.lr_schedule(cfg)

    def trivial_score(self, cell: Cell, scale: str) -> float:
        return 20.0

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        return TABLE1.estimated_seconds(Cell(cell.row, "5-way 1-shot"), scale) / len(T_GRID)

    def score_run(self, model, pools, cfg, device, state=None):
        return self.accuracies(model, self.fixed_episodes(pools["val"], cfg, "val", cfg["val_episodes"]), device), {}

    def render_figures(self, scale: str) -> list:
        from metarepro.figures import line_figure

        records = sorted((r for r in R.load_records(self.id) if r["scale"] == scale), key=lambda r: int(r["column"].split("=")[1]))
        if not records:
            return []
        t = [int(r["column"].split("=")[1]) for r in records]
        series = {"Hyper-Representation": list(zip(t, [r["mean"] for r in records]))}
        bands = {"Hyper-Representation": [(x, r["mean"] - r["ci95"], r["mean"] + r["ci95"]) for x, r in zip(t, records)]}
        return [line_figure(series, self.figure_path(scale), f"meta-validation, 5-way 1-shot ({scale} scale)", "T (ground steps)",
                            "accuracy %", bands=bands)]


BENCHMARK = HyperReprFig1()
