"""Guiroy, Verma & Pal 2019 on Omniglot: one instrumented run family behind Figures 2, 10, 11 and 12
(``../shared/papers/guiroy-generalization-gradient-based-meta-learning.txt``, sec. 5 and appendix B).

MAML and first-order MAML are trained as the paper's appendix A.3 says ("We follow the same experimental setup as (Finn
et al., 2017)", with its own numbers): the strided Omniglot Conv-4 of ``finn2017-table1`` (64 filters, batch statistics,
its data and 600 test tasks), five inner steps of full-batch gradient descent at lr 0.1 "except for Section 5.3 where
T = 1" (so ``guiroy-fig12`` trains its own models with one step), test adaptation with "the same number of steps", a
meta-batch of 16 tasks at 1 shot and 8 at 5 shots, Adam 1e-3 without schedule, epochs of 500 iterations. Three training
seeds per cell (the paper runs five; three is the suite's minimum for a claim). After
every epoch (and at five points inside the first: :data:`WITHIN_FIRST_EPOCH`, read only by the claims before and after
a peak) the run measures, on fixed task sets (:func:`landscape_measure`), what the figures plot:

=====================  =======================================================  ==========================================
probe key              what                                                     paper
=====================  =======================================================  ==========================================
target_accuracy_*      accuracy on the query set after test adaptation, on      Fig. 10 (meta-train and meta-test)
                       ``coherence_tasks`` meta-test / ``train_tasks`` meta-
                       train tasks
sharpness              mean spectral norm of the support-loss Hessian at the    sec. 5.1, Fig. 2: "a fixed set of 60
                       adapted weights, on the first ``sharpness_tasks``        randomly sampled meta-test tasks"
support_loss           mean support loss at the adapted weights, same tasks     Figs. 3b, 4b
trajectory_coherence   mean inner product of unit adaptation directions         sec. 5.2, Fig. 11: "500 tasks after each
trajectory_distance    mean ``||theta_i - theta_s||``                          meta-training epoch"
gradient_coherence     mean inner product of the support gradients at theta_s   sec. 5.3, Fig. 12 (same 500 tasks)
=====================  =======================================================  ==========================================

Choices where the paper is silent [choice]: 100 epochs (50,000 iterations; the paper's Fig. 3 axis and its finetuning
runs' "100 epochs each"); adaptation for the probes is the test procedure (``test_steps``, as the target accuracy is measured);
the Hessian is over the weights the inner loop adapts (BatchNorm offsets, which MAML's code keeps out of the fast
weights, are left out), by power iteration on Hessian-vector products (``power_iterations``, relative tolerance 1e-3;
at most 50 iterations: on the first 12 probe tasks of a 5-way 1-shot model after 150 meta-iterations, a cap of 20 left
one task 4.3% short of its value at 300 (2.057 against 2.148; power iteration only ever falls short) and 50 matched all
12, for 14% more time, 8.3 -> 9.5 s; each point keeps how it ended, ``sharpness_products_mean`` and
``sharpness_tasks_at_cap``, since a stop on a small change can still fall short where the top two eigenvalues are
close); the gradient coherence is over the same adapted weights (the offsets left
out again); the task sets are drawn once and probed at every epoch (the paper samples 500 tasks "after each epoch":
fixed sets take the sampling noise out of the curves); the meta-train probe set has 100 tasks; the inner loss is
finn2017's (MAML's code: summed over the support set and divided by K, ``ways`` times the mean cross-entropy), and so
are the probes' losses: sharpness and support loss are ``ways`` times, and gradient coherence ``ways**2`` times, those of
a mean cross-entropy. Correlations within a run do not see that factor; levels across the 5- and 20-way columns do.

Each benchmark (``guiroy-fig2``, ``-fig10``, ``-fig11``, ``-fig12``) reads the same runs under
``runs/guiroy-omniglot/<scale>/``, scores the last model on 600 meta-test tasks, and checks its figure's claim
(:class:`benchmarks.harness.base.CorrelationClaim`); none prints numbers to compare. Paper scale of the 5-way 1-shot
cells: several CPU hours per run here plus ~20 s of probes per epoch; ``metarepro plan`` projects every cell
(from finn2017-table1's measured iterations, scaled by steps and meta-batch, until a record times its own).

The probes' settings (task counts, power iterations, seed) are not part of the training key: the weights of every
probed epoch are kept (``probes/probe-<iteration>.pt``, ~0.45 MB each), and a run whose probe settings changed re-takes
its points from them on the next ``reproduce`` (:func:`metarepro.trainer.reprobe`) instead of training again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.anchors.finn2017_table1 import BENCHMARK as FINN
from benchmarks.anchors.finn2017_table1 import maml_training_key
from benchmarks.families.omniglot_gbml import OmniglotGBML
from benchmarks.harness.base import Cell, CorrelationClaim, LevelClaim, and_their_changes
from metarepro import results as R
from metarepro.data.omniglot import ClassPool
from metarepro.episodes import Episode, task_rng
from metarepro.inner import batched_forward
from metarepro.landscape import (
    PowerIteration,
    flatten_tasks,
    gradient_coherence,
    hessian_power_iteration,
    support_gradients,
    trajectory_coherence,
)
from metarepro.results import config_hash
from metarepro.trainer import Probes
from methods.maml import MAML

RUNS_HOME = "guiroy-omniglot"
ROWS = {"MAML": False, "First-Order MAML": True}  # row -> first order
PROBES = {"epoch": 500, "sharpness_tasks": 60, "coherence_tasks": 500, "train_tasks": 100, "power_iterations": 50,
          "probe_seed": 2020, "probe_chunk": 50}
#: the code of a probe point (:func:`landscape_measure` and the :mod:`metarepro.landscape` metrics it calls): bump it when
#: a fix changes what a point measures, and every run re-takes its points from its snapshots (:func:`probe_settings`)
#: instead of keeping points of two definitions on one curve
PROBE_VERSION = 1
#: settings outside :data:`PROBES` that a probe point depends on (:func:`probe_settings`)
PROBE_TEST_SETTINGS = ("test_queries", "test_steps", "inner_lr", "invert", "head_seed")
#: points probed inside the first epoch besides the per-epoch ones, as fractions of an epoch [choice, not the paper's: its
#: axes start after epoch 1, but a run that learns fast may turn a curve (sharpness's peak, sec. 5.1) inside it, and a
#: claim read before a peak needs points there]; the claims over whole curves and the levels read the per-epoch points
WITHIN_FIRST_EPOCH = (0.1, 0.2, 0.4, 0.6, 0.8)
SCALE_PROBES = {"paper": {}, "quick": {"sharpness_tasks": 10, "coherence_tasks": 100, "train_tasks": 50},
                "smoke": {"epoch": 3, "sharpness_tasks": 2, "coherence_tasks": 6, "train_tasks": 4, "power_iterations": 5}}


def probe_settings(cfg: dict) -> str:
    """What a probe point measures (:class:`metarepro.trainer.Probes` ``settings``): a hash of every setting the probe
    reads, :data:`PROBES` but the epoch and those of the test adaptation it runs (queries, steps, the finetuning
    baseline's head seed), and of :data:`PROBE_VERSION`. Not part of the training key: a run whose probes change keeps
    its training and re-takes its points from the snapshots; the epoch is (it decides which weights are snapshotted)."""
    read = [k for k in PROBES if k != "epoch"] + [k for k in PROBE_TEST_SETTINGS if k in cfg]
    return config_hash({**{k: cfg[k] for k in read}, "probe_version": PROBE_VERSION})


def probe_sets(benchmark: OmniglotGBML, pools: dict[str, ClassPool], cfg: dict) -> dict[str, Episode]:
    """The fixed probe tasks: ``coherence_tasks`` meta-test tasks (the first ``sharpness_tasks`` of them also give the
    sharpness) and ``train_tasks`` meta-train tasks, drawn from ``(probe_seed, split, index)``."""
    def draw(split: str, count: int) -> Episode:
        return Episode.stack([benchmark.sample(pools[split], task_rng(cfg["probe_seed"], split, i), cfg["ways"], cfg["shots"],
                                               cfg["test_queries"], cfg["invert"]) for i in range(count)])

    return {"test": draw("test", cfg["coherence_tasks"]), "train": draw("train", cfg["train_tasks"])}


def adapted_sharpness(model: MAML, adapted: dict[str, torch.Tensor], support_x: torch.Tensor, support_y: torch.Tensor,
                      iterations: int, generator: torch.Generator) -> list[PowerIteration]:
    """Per task, the spectral norm of the Hessian of its support loss at its adapted weights ``adapted (T, ...)``, over
    the weights the inner loop adapts (the others held at their values), with the products power iteration took."""
    forward, frozen = batched_forward(model.backbone), model.train_loop.frozen
    names = [n for n in adapted if n not in frozen]
    out = []
    for t in range(support_x.shape[0]):
        fixed = {n: v[t : t + 1].detach() for n, v in adapted.items()}

        def loss(leaves: list[torch.Tensor], t=t, fixed=fixed) -> torch.Tensor:
            params = {**fixed, **{n: leaf.unsqueeze(0) for n, leaf in zip(names, leaves)}}
            return model.task_loss(forward(params, support_x[t : t + 1]), support_y[t : t + 1]).sum()

        out.append(hessian_power_iteration(loss, [fixed[n][0] for n in names], iterations=iterations, tolerance=1e-3, generator=generator))
    return out


def landscape_measure(sets: dict[str, Episode], cfg: dict, device: str):
    """The per-epoch probe of the family (the table in the module docstring), in chunks of ``probe_chunk`` tasks.

    Each meta-test task is adapted once: its target accuracy is read off the same adapted weights as its trajectory
    (``model.predict`` would adapt it again; that was a third of a probe's time on 5-way 1-shot, 8.4 of 25.9 s)."""

    def measure(model: MAML, iteration: int) -> dict:
        start = {n: p.detach() for n, p in model.meta_parameters().items()}
        names = [n for n in start if n not in model.train_loop.frozen]
        chunk = cfg["probe_chunk"]
        correct_test, displacements, gradients, sharpness, support = [], [], [], [], []
        generator = torch.Generator(device).manual_seed(cfg["probe_seed"])  # power iteration's start vectors, on the model's device
        for offset, e in zip(range(0, cfg["coherence_tasks"], chunk), sets["test"].to(device).chunks(chunk)):
            with torch.enable_grad():
                tasks = model.adapt(e.support_x, e.support_y, training=False)
                correct_test.append((tasks.predict(e.query_x).detach().argmax(-1) == e.query_y).double().mean(1))
            adapted = {n: v.detach() for n, v in tasks.params.items()}
            displacements.append(flatten_tasks({n: adapted[n] for n in names}))
            per_task = support_gradients(batched_forward(model.backbone), model.task_loss, start, e.support_x, e.support_y)
            gradients.append(per_task[:, _fast_columns(start, names)])
            sharp = max(0, min(chunk, cfg["sharpness_tasks"] - offset))
            if sharp:
                sharpness += adapted_sharpness(model, {n: v[:sharp] for n, v in adapted.items()}, e.support_x[:sharp],
                                               e.support_y[:sharp], cfg["power_iterations"], generator)
                with torch.no_grad():
                    support.append(model.task_loss(batched_forward(model.backbone)({n: v[:sharp] for n, v in adapted.items()},
                                                                                    e.support_x[:sharp]), e.support_y[:sharp]))
        coherence, distances = trajectory_coherence(torch.cat(displacements), torch.cat([start[n].flatten() for n in names]))
        correct_train = [(model.predict(e).argmax(-1) == e.query_y).double().mean(1) for e in sets["train"].to(device).chunks(chunk)]
        accuracy = {"target_accuracy_meta_test": 100.0 * float(torch.cat(correct_test).mean()),
                    "target_accuracy_meta_train": 100.0 * float(torch.cat(correct_train).mean())}
        # how power iteration ended, per point: an estimate stopped at its cap falls short (module docstring)
        flatness = {"sharpness": float(np.mean([s.value for s in sharpness])), "support_loss": float(torch.cat(support).mean()),
                    "sharpness_products_mean": float(np.mean([s.products for s in sharpness])),
                    "sharpness_tasks_at_cap": sum(not s.converged for s in sharpness)} if sharpness else {}
        return {**accuracy, **flatness, "trajectory_coherence": float(coherence), "trajectory_distance": float(distances.mean()),
                "gradient_coherence": float(gradient_coherence(torch.cat(gradients)))}

    return measure


def _fast_columns(params: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """Indices, in :func:`flatten_tasks` order over all of ``params``, of the columns of the adapted weights ``names``."""
    keep, offset = [], 0
    for n, p in params.items():
        if n in names:
            keep.append(torch.arange(offset, offset + p.numel()))
        offset += p.numel()
    return torch.cat(keep)


class GuiroyOmniglot(OmniglotGBML):
    """The run family: ``rows`` x the four Omniglot settings x 3 seeds, probed every epoch; subclasses pick the figure."""

    paper = "guiroy-generalization-gradient-based-meta-learning.txt"
    rows = tuple(ROWS)
    training_seeds = 3
    metric = "meta-test accuracy %"

    #: inner steps in training and test (appendix A.3: five, "except for Section 5.3 where T = 1")
    inner_steps = 5

    def config(self, cell: Cell, scale: str) -> dict:
        self.check_cell(cell)
        finn = FINN.config(Cell("MAML", cell.column), scale)
        meta_batch = 16 if finn["shots"] == 1 else 8
        # finn2017's timing scaled to these steps and meta-batch (until a record of this benchmark times its own)
        ms = finn["ms_per_iteration_estimate"] * self.inner_steps / finn["inner_steps"] * meta_batch / finn["meta_batch"]
        cfg = {**finn, "benchmark": self.id, "method": cell.row, "first_order": ROWS[cell.row], "train_seed": cell.seed,
               "inner_lr": 0.1, "inner_steps": self.inner_steps, "test_steps": self.inner_steps, "meta_batch": meta_batch,
               "ms_per_iteration_estimate": ms,
               "ms_per_test_task_estimate": finn["ms_per_test_task_estimate"] * self.inner_steps / finn["test_steps"],
               **PROBES, **SCALE_PROBES[scale]}
        if scale == "paper":
            cfg["iterations"] = 100 * cfg["epoch"]
        if scale == "smoke" and self.inner_steps == 1:  # six iterations teach a one-step learner nothing (about chance);
            cfg.update(iterations=100, epoch=25, meta_lr=3e-3)  # 100 at 3e-3 do (~0.03 s each on the fixture, one thread)
        if scale == "quick":  # finn2017's quick runs are 20 to 300 iterations: six epochs each
            cfg["epoch"] = max(1, cfg["iterations"] // 6)
        cfg["probe_also_at"] = sorted({int(f * cfg["epoch"]) for f in WITHIN_FIRST_EPOCH} - {0})
        return cfg

    def cells(self, variants: list[str] | None = None, scale: str | None = None) -> list[Cell]:
        """At smoke scale the 5-way 1-shot cells only: four benchmarks share the family, and CI runs each."""
        cells = super().cells(variants, scale)
        return [c for c in cells if c.column == "5-way 1-shot"] if scale == "smoke" else cells

    def training_key(self, cell: Cell, scale: str) -> str:
        cfg = self.config(cell, scale)
        # which weights are snapshotted is the training's (the probes' other settings: probe_settings)
        also = "-also" + "_".join(map(str, cfg["probe_also_at"])) if cfg["probe_also_at"] else ""
        return f"{maml_training_key(cfg)}-seed{cell.seed}-epoch{cfg['epoch']}{also}"

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        return [f"{RUNS_HOME}/{scale}/{self.training_key(cell, scale)}"]

    def runs_home(self, runs_dir: Path) -> Path:
        """``runs/<id>/<scale>`` -> ``runs/guiroy-omniglot/<scale>``: the four figures share the runs."""
        return Path(runs_dir).parent.parent / RUNS_HOME / Path(runs_dir).name

    def build_model(self, cfg: dict, engine: str = "func") -> MAML:
        return FINN.build_model(cfg, engine)

    def train_batch(self, pool, cfg: dict, index: int) -> Episode:
        return FINN.train_batch(pool, cfg, index)

    def test_scores(self, model: MAML, pool, cfg: dict, device: str, progress: bool) -> np.ndarray:
        return FINN.test_scores(model, pool, cfg, device, progress)

    def split_deviations(self, cfg: dict) -> list[str]:
        return FINN.split_deviations(cfg)

    def checkpoint_intervals(self, cfg: dict) -> tuple[int, int]:
        return cfg["epoch"], min(cfg["log_every"], cfg["epoch"])

    def estimated_train_test(self, cell: Cell, scale: str) -> tuple[float, float]:
        train, test = super().estimated_train_test(cell, scale)
        return train + self.estimated_training_overhead(cell, scale), test

    def estimated_training_overhead(self, cell: Cell, scale: str) -> float:
        """The probes after every epoch, rough: each probed task costs about a test task."""
        cfg = self.config(cell, scale)
        probe_tasks = cfg["coherence_tasks"] * 3 + cfg["train_tasks"] + cfg["sharpness_tasks"] * cfg["power_iterations"]
        points = cfg["iterations"] // cfg["epoch"] + 1 + len(cfg["probe_also_at"])
        return points * probe_tasks * cfg["ms_per_test_task_estimate"] / 1000

    def probe_settings(self, cfg: dict) -> str:
        return probe_settings(cfg)

    def probes(self, model: MAML, pools: dict[str, ClassPool], cfg: dict, device: str, folder: Path) -> Probes:
        # each epoch's weights kept (~0.45 MB each at paper scale): a probe fixed later is re-taken, not retrained
        return Probes(cfg["epoch"], landscape_measure(probe_sets(self, pools, cfg), cfg, device), snapshots=folder / "probes",
                      settings=probe_settings(cfg), also_at=tuple(cfg["probe_also_at"]))

    def curves(self, scale: str) -> list[dict]:
        return [r for r in R.load_records(self.id) if r["scale"] == scale and r["variant"] == "main" and r.get("probe_curve")]

    def draw(self, scale: str, key: str, label: str, rows: tuple[str, ...] | None = None) -> list[Path]:
        return draw_probe_curves(self, self.curves(scale), scale, key, label, "Omniglot", rows)


def draw_probe_curves(benchmark, records: list[dict], scale: str, key: str, label: str, dataset: str,
                      rows: tuple[str, ...] | None = None) -> list[Path]:
    """One figure per column of ``benchmark``: ``key`` per epoch, the mean over the runs (``records``) of each row."""
    from metarepro.figures import line_figure

    written = []
    for column in benchmark.columns:
        series = {}
        for row in rows or benchmark.rows:
            runs = [r for r in records if r["column"] == column and r["row"] == row]
            if runs:
                n, epoch = min(len(r["probe_curve"]) for r in runs), runs[0]["config"]["epoch"]
                series[row] = [(runs[0]["probe_curve"][i]["iteration"] / epoch, float(np.mean([r["probe_curve"][i][key] for r in runs])))
                               for i in range(n)]
        if series:
            written.append(line_figure(series, benchmark.figure_path(scale, f"{column} {key}"), f"{dataset} {column} ({scale} scale)",
                                       "epoch", label))
    return written


class GuiroyFig2(GuiroyOmniglot):
    id = "guiroy-fig2"
    title = "Flatness of meta-test solutions along meta-training, Omniglot (Guiroy et al. 2019, Fig. 2), meta-test accuracy %"

    def correlation_claims(self) -> list[CorrelationClaim]:
        # the untrained model's probe (iteration 0; far off every trained point) is left out: the paper's axes start at
        # epoch 1, and one outlier would decide each run's R (and a peak at 0 would make "falls after its peak" hold with no rise)
        return [claim for row in self.rows for claim in (
            CorrelationClaim(f"{row}: meta-test sharpness first rises to a peak (sec. 5.1)", row, "iteration", "sharpness",
                             expected_sign=1, until_peak_of="sharpness", skip_untrained=True),
            CorrelationClaim(f"{row}: after its peak, meta-test sharpness keeps falling (sec. 5.1)", row, "iteration", "sharpness",
                             expected_sign=-1, after_peak_of="sharpness", skip_untrained=True),
            CorrelationClaim(f"{row}: the meta-test support loss falls along meta-training (sec. 5.1)", row, "iteration",
                             "support_loss", expected_sign=-1, skip_untrained=True))]

    def render_figures(self, scale: str) -> list[Path]:
        return self.draw(scale, "sharpness", "E[||H(D_i; theta_i)||], meta-test") + self.draw(scale, "support_loss", "meta-test support loss")


class GuiroyFig10(GuiroyOmniglot):
    """Fig. 10 plots the two accuracies; the claim is sec. 6's reading of them: "a significant generalization gap between
    its performance on target set of the meta-train tasks and the target set of the meta-test task", as the mean over a
    run's probe points of meta-train minus meta-test target accuracy, paired by seed."""

    id = "guiroy-fig10"
    title = "Meta-train and meta-test accuracy along meta-training, Omniglot (Guiroy et al. 2019, Fig. 10), meta-test accuracy %"

    def level_claims(self) -> list[LevelClaim]:
        return [LevelClaim(f"{row}: target accuracy on meta-train tasks above that on meta-test tasks along training (sec. 6's "
                           "generalization gap)", row, row, "target_accuracy_meta_train", expected_sign=1,
                           baseline_key="target_accuracy_meta_test") for row in self.rows]

    def render_figures(self, scale: str) -> list[Path]:
        return (self.draw(scale, "target_accuracy_meta_train", "target accuracy on meta-train tasks %")
                + self.draw(scale, "target_accuracy_meta_test", "target accuracy on meta-test tasks %"))


class GuiroyFig11(GuiroyOmniglot):
    id = "guiroy-fig11"
    title = "Coherence of adaptation trajectories vs meta-test accuracy, Omniglot (Guiroy et al. 2019, Fig. 11), meta-test accuracy %"
    rows = ("MAML",)  # sec. 5.2: "for experiments on Omniglot, we drop the analyses with First-Order MAML"

    def correlation_claims(self) -> list[CorrelationClaim]:
        return and_their_changes([CorrelationClaim("meta-test accuracy rises with the coherence of adaptation trajectories (sec. "
                                                   "5.2; the paper's Omniglot panels are the 5-shot columns, the 1-shot ones "
                                                   "extend it)", "MAML", "trajectory_coherence", "target_accuracy_meta_test",
                                                   skip_untrained=True)])

    def render_figures(self, scale: str) -> list[Path]:
        return self.draw(scale, "trajectory_coherence", "E[theta_i . theta_j] (unit directions)") + self.draw(
            scale, "trajectory_distance", "E[||theta_i - theta_s||]")


class GuiroyFig12(GuiroyOmniglot):
    id = "guiroy-fig12"
    title = "Coherence of meta-test gradients vs meta-test accuracy, Omniglot (Guiroy et al. 2019, Fig. 12), meta-test accuracy %"
    inner_steps = 1  # appendix A.3: "except for Section 5.3 where T = 1"

    def config(self, cell: Cell, scale: str) -> dict:
        """No sharpness probe: Fig. 12 plots gradient coherence and accuracy only, and the 60 tasks' power iterations
        are half of a probe's time on these one-step models (an untrained 5-way 1-shot one, one thread beside two other
        jobs: 31-33 s with them, 16 s without). Its curves carry no ``sharpness`` or ``support_loss``."""
        return {**super().config(cell, scale), "sharpness_tasks": 0}

    def correlation_claims(self) -> list[CorrelationClaim]:
        return and_their_changes([CorrelationClaim(f"{row}: meta-test accuracy rises with E[g_i.g_j] at the meta-train solution (sec. 5.3"
                                                   + ("" if row == "MAML" else "; the paper's Omniglot panels are MAML's: this row extends it")
                                                   + "; its panels are 20-way, the 5-way columns extend it)", row,
                                                   "gradient_coherence", "target_accuracy_meta_test", skip_untrained=True)
                                  for row in self.rows])

    def render_figures(self, scale: str) -> list[Path]:
        return self.draw(scale, "gradient_coherence", "E[g_i . g_j] at theta_s, meta-test")


FIG2, FIG10, FIG11, FIG12 = GuiroyFig2(), GuiroyFig10(), GuiroyFig11(), GuiroyFig12()
