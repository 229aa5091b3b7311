"""Hyper-Representation on mini-ImageNet: Franceschi et al. 2017, Table 1
(``../shared/papers/franceschi-bridge-hpo-learning-to-learn.txt``, sec. 4).

A Conv-4 representation of 32 filters (conv, batch norm, ReLU, 2x2 max-pool)
is learned across episodes; each episode's logistic regressor starts from 0
and takes ``T`` gradient steps of a learned step size on the support set;
the hypergradient goes through the steps (:mod:`methods.hyper_representation`).
"Mini-batches of 4 episodes", "Adam with decaying learning rate" (1e-3 /
(1 + 1e-5 step), the authors' FAR-HO example), "early stopping during
meta-training" and ``T`` "optimized ... based on the mean accuracy on the
test sets of episodes in D_val" (Figure 1, ``hyperrepr-fig1``).

Here a cell trains one model for each ``T`` of :data:`T_GRID` (each selected
on validation accuracy), keeps the ``T`` whose selected model has the best
validation accuracy, and tests it on 600 episodes of the test classes (15
queries per class); the paper gives the episode count for neither [choice:
600, as MAML's and L2G's protocols]. It is one run, so the interval is over
test episodes, as the paper's "95% confidence intervals, computed on
episodes from D_test". The grid is not in the paper (its Figure 1's axis
is not in the text) [choice: 1, 2, 5 (the authors' later code's default)
and 10]. Training length: 40K meta-iterations, validation every 2K [choice].

The other rows (fine-tuning, nearest neighbour, Matching Nets, Meta-learner
LSTM, MAML) are the paper's cited baselines from Ravi & Larochelle (2017)
and Finn et al. (2017): shown, not trained here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from benchmarks.families.fewshot_metric import FewShotMetricTable
from benchmarks.harness.base import Cell, CellResult
from benchmarks.l2g.table1 import QUICK, SMOKE
from metarepro.selection import best_finite
from metarepro.timing import now

T_GRID = (1, 2, 5, 10)


class HyperReprTable1(FewShotMetricTable):
    id = "hyperrepr-table1"
    title = "Hyper-Representation, mini-ImageNet 5-way (Franceschi et al. 2017, Table 1), accuracy %"
    paper = "franceschi-bridge-hpo-learning-to-learn.txt"
    dataset = "mini_imagenet"
    rows = ("Hyper-Representation",)
    columns = ("5-way 1-shot", "5-way 5-shot")
    cited_rows = ("Fine-tuning", "Nearest-neighbor", "Matching nets", "Meta-learner LSTM", "MAML")
    runs = 1
    t_grid = T_GRID
    scale_overrides = {"smoke": {**SMOKE, "test_episodes": 10, "t_grid": [1, 3]},
                       "quick": {**QUICK, "runs": 1, "test_episodes": 600}}

    def adjust_config(self, cfg: dict, cell: Cell, scale: str) -> dict:
        cfg.setdefault("t_grid", list(self.t_grid))
        cfg["meta_lr_decay"] = 1e-5  # Adam lr 1e-3 / (1 + 1e-5 step), FAR-HO's inverse_time_decay
        return cfg

    def lr_schedule(self, cfg: dict):
        return lambda step: 1.0 / (1.0 + cfg["meta_lr_decay"] * step)

    def candidates(self, cell: Cell, scale: str) -> list[dict]:
        """One training config per ``T`` of the grid (their training keys are those of ``hyperrepr-fig1``'s cells)."""
        base = self.config(cell, scale)
        return [{**base, "ground_steps": t} for t in base["t_grid"]]

    def key_of(self, cfg: dict) -> str:
        from metarepro.results import config_hash

        shots = cfg["train_shots"][0]
        return f"hyperrepr-{cfg['train_ways'][0]}w{shots}s-T{cfg['ground_steps']}-" + config_hash(
            {k: v for k, v in cfg.items() if k not in (*self.TEST_KEYS, "t_grid")})

    def training_key(self, cell: Cell, scale: str) -> str:
        return self.key_of(self.config(cell, scale)).replace(f"-T{self.config(cell, scale)['ground_steps']}-", "-Tgrid-")

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        """One folder per ``T`` of the grid (run 0 of each)."""
        home = self.runs_home(Path(self.id) / scale, self.config(cell, scale))
        return [f"{home}/{self.key_of(cfg)}-run0" for cfg in self.candidates(cell, scale)]

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        self.check_cell(cell)
        home = self.runs_home(runs_dir, self.config(cell, scale))
        trained, train_s, iterations = [], 0.0, 0
        for cfg in self.candidates(cell, scale):
            cfg = {**cfg, "_key": self.key_of(cfg)}
            model, state, pools = self.train_run(cfg, 0, home, progress, device, progress_position,
                                                 f"{cell.label} T={cfg['ground_steps']} [{scale}]")
            train_s, iterations = train_s + state.elapsed_s, iterations + state.iteration
            # the validation value of the selected checkpoint is its error %, on the fixed validation episodes
            trained.append((100.0 - state.best_value, cfg, model, state))
        chosen = best_finite(dict(enumerate(t[0] for t in trained)), f"{cell.label}: the choice of T")  # ties: the smaller T
        val_acc, cfg, model, state = trained[chosen]
        started = now(device)
        scores, _ = self.score_run(model, pools, cfg, device, state)
        test_s = now(device) - started
        return CellResult(scores=scores, deviations=self.deviations(cfg), wall_time_s=train_s + test_s, train_wall_time_s=train_s,
                          extra={"checkpoint_key": self.training_key(cell, scale), "selected_T": cfg["ground_steps"],
                                 "validation_accuracy_by_T": {str(c["ground_steps"]): 100.0 - s.best_value for _, c, _, s in trained},
                                 "learned_eta": float(model.eta.detach()), "loss_curves": [state.loss_curve],
                                 "timing": {"ms_per_iteration": 1000 * train_s / max(iterations, 1), "iterations_timed": iterations,
                                            "test_s": test_s, "threads": torch.get_num_threads(), "device": device,
                                            "load_average_1min": os.getloadavg()[0]}})

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        return float(np.sum([super(HyperReprTable1, self).estimated_seconds(cell, scale) * t / 5 for t in self.config(cell, scale)["t_grid"]]))


BENCHMARK = HyperReprTable1()
