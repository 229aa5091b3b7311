"""Guiroy, Verma & Pal 2019 on mini-ImageNet: the run family behind Figures 3 to 7
(``../shared/papers/guiroy-generalization-gradient-based-meta-learning.txt``, sec. 5 and appendix A).

Rows: MAML, first-order MAML and the finetuning baseline (:class:`methods.finetune_baseline.FinetuneBaseline`); columns
5-way 1-shot and 5-shot; three training seeds (the paper runs five). The protocol, appendix A.1 and A.3:

* Conv-4 with max-pooling, 48 filters ("we used fewer filters to reduce overfitting, but used 48 while MAML used 32"),
  84 x 84 images; as MAML's code otherwise (``finn2017-table1``'s network: batch statistics, BatchNorm offsets without
  scale and out of the inner loop, Glorot head on the flattened last block as cbfinn/maml does for mini-ImageNet).
* MAML and first-order MAML: five inner steps of full-batch gradient descent at lr 0.01 ("except for Section 5.3 where
  T = 1": ``guiroy-fig7`` trains its own models with one step), the same number at test, meta-batch 4 (1-shot) / 2
  (5-shot), Adam 1e-3 without schedule, epochs of 500 iterations; 15 query images per class (MAML's code) [choice].
* Finetuning baseline: mini-batches of 64 images and 25 iterations per epoch at 1 shot, 128 and 12 at 5 shots, Adam
  1e-3, "100 epochs each"; tested by MAML's procedure on a new Xavier-initialised head.
* 100 epochs for every row [choice: the finetuning runs' and Fig. 3's axis; Fig. 3's "extra epochs" are not given].

Each epoch is probed by :func:`benchmarks.guiroy.omniglot.landscape_measure` (its table: target accuracy on meta-train
and meta-test tasks, sharpness and support loss at 60 adapted meta-test solutions, trajectory and gradient coherence
over 500 tasks); the finetuning baseline is probed through its test learner. ``smoke`` runs on generated files in
mini-ImageNet's real layout (5-way 1-shot cells only); ``paper`` needs the data under ``data/`` and, in practice, a GPU
(``--device cuda``; ``metarepro plan`` projects the hours).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.anchors.finn2017_table1 import maml_task_loss
from benchmarks.families.omniglot_gbml import chunked_scores
from benchmarks.families.unraveling_images import image_pools, labelled_images
from benchmarks.guiroy.omniglot import PROBES, draw_probe_curves, landscape_measure, probe_sets, probe_settings
from benchmarks.harness.base import Benchmark, Cell, CellResult, CorrelationClaim, LevelClaim, and_their_changes
from metarepro import results as R
from metarepro.data.store import DataError
from metarepro.episodes import Episode, task_rng
from metarepro.results import config_hash
from metarepro.timing import now
from metarepro.trainer import Probes, train
from methods.backbones import ConvNet
from methods.classical import LabelledBatch
from methods.finetune_baseline import FinetuneBaseline
from methods.maml import MAML

RUNS_HOME = "guiroy-miniimagenet"
ROWS = ("MAML", "First-Order MAML", "Finetune baseline")
COLUMNS = ("5-way 1-shot", "5-way 5-shot")
MINI_TRAIN_CLASSES = 64
FROZEN = tuple(f"norms.{i}.bias" for i in range(4))  # MAML's code keeps BatchNorm offsets out of the fast weights
PROTOCOL = {"dataset": "mini_imagenet", "data": "mini_imagenet", "image_size": 84, "filters": 48, "ways": 5, "queries": 15,
            "test_queries": 15, "inner_lr": 0.01, "meta_lr": 1e-3, "epochs": 100, "test_tasks": 600, "test_seed": 2019,
            "head_seed": 2020, "invert": False, **PROBES}
SCALES = {"paper": {}, "quick": {"epochs": 5, "test_tasks": 100, "sharpness_tasks": 10, "coherence_tasks": 100, "train_tasks": 50},
          "smoke": {"data": "fixture", "image_size": 28, "filters": 8, "queries": 3, "test_queries": 3, "epochs": 3, "test_tasks": 8,
                    "sharpness_tasks": 2, "coherence_tasks": 6, "train_tasks": 4, "power_iterations": 5}}
TRAINING_KEYS = ("method", "shots", "image_size", "filters", "queries", "inner_lr", "inner_steps", "meta_batch", "meta_lr", "epoch",
                 "epochs", "classical_batch", "data", "train_seed")  # the probes' settings: omniglot.probe_settings
#: rough ms per meta-iteration (5 steps, second order) on one CPU thread at paper scale, until a record times its own
MS_PER_ITERATION = {1: 2500.0, 5: 6000.0}


class GuiroyMiniImageNet(Benchmark):
    """The run family; subclasses pick the figure (rows, claims, drawing)."""

    paper = "guiroy-generalization-gradient-based-meta-learning.txt"
    metric = "meta-test accuracy %"
    higher_is_better = True
    rows = ROWS
    columns = COLUMNS
    training_seeds = 3
    requires_data = "mini_imagenet"
    inner_steps = 5

    def data_available(self) -> bool:
        from metarepro.data.miniimagenet import mini_imagenet_dir

        try:
            folder = mini_imagenet_dir()
        except DataError:
            return False
        return folder.is_dir() and any(folder.iterdir())

    def cells(self, variants: list[str] | None = None, scale: str | None = None) -> list[Cell]:
        cells = super().cells(variants, scale)
        return [c for c in cells if c.column == "5-way 1-shot"] if scale == "smoke" else cells

    def config(self, cell: Cell, scale: str) -> dict:
        self.check_cell(cell)
        shots = int(cell.column.split()[1].split("-")[0])
        cfg = {"benchmark": self.id, "method": cell.row, "shots": shots, "scale": scale, **PROTOCOL, "inner_steps": self.inner_steps,
               "test_steps": self.inner_steps, "train_seed": cell.seed}
        if cell.row == "Finetune baseline":  # appendix A.3's batches and iterations per epoch
            cfg.update(classical_batch=64 if shots == 1 else 128, epoch=25 if shots == 1 else 12, meta_batch=None, first_order=None)
        else:
            cfg.update(classical_batch=None, meta_batch=4 if shots == 1 else 2, first_order=cell.row == "First-Order MAML")
        cfg.update(SCALES[scale])
        if scale == "smoke":
            cfg["epoch"] = 3
        cfg["iterations"] = cfg["epochs"] * cfg["epoch"]
        return cfg

    def training_key(self, cell: Cell, scale: str) -> str:
        cfg = self.config(cell, scale)
        name = {"MAML": "maml", "First-Order MAML": "fomaml", "Finetune baseline": "finetune"}[cell.row]
        return f"{name}-5w{cfg['shots']}s-seed{cell.seed}-" + config_hash({k: cfg[k] for k in TRAINING_KEYS})

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        return [f"{RUNS_HOME}/{scale}/{self.training_key(cell, scale)}"]

    def probe_settings(self, cfg: dict) -> str:
        return probe_settings(cfg)

    def trivial_score(self, cell: Cell, scale: str) -> float:
        return 100.0 / 5

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        cfg = self.config(cell, scale)
        size = (cfg["image_size"] / 84) ** 2 * cfg["filters"] / 48
        if cfg["method"] == "Finetune baseline":
            per_iteration = 0.004 * cfg["classical_batch"] * size
        else:
            per_iteration = MS_PER_ITERATION[cfg["shots"]] / 1000 * cfg["inner_steps"] / 5 * size
        probe = (cfg["coherence_tasks"] * 3 + cfg["sharpness_tasks"] * cfg["power_iterations"]) * 0.2 * size
        return cfg["iterations"] * per_iteration + cfg["epochs"] * probe + cfg["test_tasks"] * 0.2 * size

    # -- models and data -----------------------------------------------------------------------------------------------
    def network(self, cfg: dict, ways: int) -> ConvNet:
        return ConvNet(3, ways, cfg["filters"], pool=True, features="flatten", image_size=cfg["image_size"], bn_scale=False,
                       bn_eps=1e-3, head_init="glorot")

    def build_model(self, cfg: dict, engine: str = "func") -> torch.nn.Module:
        torch.manual_seed(cfg["train_seed"])
        loss = maml_task_loss(cfg["shots"])
        if cfg["method"] == "Finetune baseline":
            return FinetuneBaseline(lambda ways: self.network(cfg, ways), self.train_classes(cfg), loss, cfg["inner_lr"],
                                    cfg["test_steps"], frozen=FROZEN)
        return MAML(self.network(cfg, cfg["ways"]), loss, cfg["inner_lr"], cfg["inner_steps"], test_steps=cfg["test_steps"],
                    first_order=cfg["first_order"], engine=engine, frozen=FROZEN)

    @staticmethod
    def train_classes(cfg: dict) -> int:
        from benchmarks.families.unraveling_images import FIXTURE_CLASSES

        return FIXTURE_CLASSES["train"] if cfg["data"] == "fixture" else MINI_TRAIN_CLASSES

    def sample(self, pool, rng: np.random.Generator, ways: int, shots: int, queries: int, invert: bool = False) -> Episode:
        return pool.sample(rng, ways, shots, queries)

    def train_batch(self, pool, cfg: dict, index: int):
        rng = task_rng(cfg["train_seed"], "train", index)
        if cfg["method"] == "Finetune baseline":
            classes = rng.integers(len(pool), size=cfg["classical_batch"])
            return LabelledBatch(labelled_images(pool, classes, rng.integers(pool.counts[classes])), torch.from_numpy(classes))
        return Episode.stack([pool.sample(rng, cfg["ways"], cfg["shots"], cfg["queries"]) for _ in range(cfg["meta_batch"])])

    def learner(self, model: torch.nn.Module, cfg: dict) -> MAML:
        """What is tested and probed: the MAML model itself, or the finetuning baseline's test learner."""
        return model.test_learner(cfg["ways"], cfg["head_seed"]) if isinstance(model, FinetuneBaseline) else model

    def test_scores(self, model: torch.nn.Module, pool, cfg: dict, device: str, progress: bool) -> np.ndarray:
        learner = self.learner(model, cfg)

        def chunk(start: int, stop: int) -> np.ndarray:
            batch = Episode.stack([pool.sample(task_rng(cfg["test_seed"], "test", i), cfg["ways"], cfg["shots"], cfg["test_queries"])
                                   for i in range(start, stop)]).to(device)
            return 100.0 * (learner.predict(batch).argmax(-1) == batch.query_y).double().mean(1).cpu().numpy()

        return chunked_scores(chunk, cfg["test_tasks"], 20, progress, "test tasks")

    # -- running -------------------------------------------------------------------------------------------------------
    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        cfg, key = self.config(cell, scale), self.training_key(cell, scale)
        home = Path(runs_dir).parent.parent / RUNS_HOME / Path(runs_dir).name
        pools = image_pools(cfg, home)
        model = self.build_model(cfg, engine).to(device)
        measure = landscape_measure(probe_sets(self, pools, cfg), cfg, device)
        state = train(model, torch.optim.Adam(model.parameters(), lr=cfg["meta_lr"]),
                      lambda i: self.train_batch(pools["train"], cfg, i).to(device), cfg["iterations"], home / key / "checkpoint.pt", key,
                      checkpoint_every=cfg["epoch"], log_every=cfg["epoch"], progress=progress, desc=f"{cell.label} [{scale}]",
                      meta={"benchmark": self.id, "cell": cell.__dict__, "scale": scale}, progress_position=progress_position,
                      probes=Probes(cfg["epoch"], lambda m, i: measure(self.learner(m, cfg), i), snapshots=home / key / "probes",
                                    settings=probe_settings(cfg)))
        started = now(device)
        scores = self.test_scores(model, pools["test"], cfg, device, progress)
        return CellResult(scores=scores, deviations=[], wall_time_s=state.elapsed_s + now(device) - started,
                          train_wall_time_s=state.elapsed_s,
                          extra={"loss_curve": state.loss_curve, "probe_curve": state.probe_curve, "checkpoint_key": key})

    def evaluate_checkpoint(self, checkpoint: Path, cell: Cell, scale: str, device: str = "cpu") -> np.ndarray:
        cfg, model = self.load_trained(checkpoint, cell, scale)
        pools = image_pools(cfg, Path(checkpoint).parent.parent)
        return self.test_scores(model.to(device), pools["test"], cfg, device, progress=True)

    # -- figures -------------------------------------------------------------------------------------------------------
    def draw(self, scale: str, key: str, label: str) -> list[Path]:
        records = [r for r in R.load_records(self.id) if r["scale"] == scale and r["variant"] == "main" and r.get("probe_curve")]
        return draw_probe_curves(self, records, scale, key, label, "mini-ImageNet")


class GuiroyFig3(GuiroyMiniImageNet):
    id = "guiroy-fig3"
    title = ("MAML: meta-test target accuracy, support loss and curvature of solutions, mini-ImageNet (Guiroy et al. 2019, Fig. 3), "
             "meta-test accuracy %")
    rows = ("MAML", "First-Order MAML")

    def correlation_claims(self) -> list[CorrelationClaim]:
        return [claim for row in self.rows for claim in (
            CorrelationClaim(f"{row}: after meta-test accuracy peaks, the solutions keep getting flatter (sec. 5.1)", row, "iteration",
                             "sharpness", expected_sign=-1, after_peak_of="target_accuracy_meta_test", skip_untrained=True),
            CorrelationClaim(f"{row}: the meta-test support loss falls along meta-training (sec. 5.1)", row, "iteration",
                             "support_loss", expected_sign=-1, skip_untrained=True))]

    def render_figures(self, scale: str) -> list[Path]:
        return (self.draw(scale, "target_accuracy_meta_test", "target accuracy on meta-test tasks %")
                + self.draw(scale, "support_loss", "meta-test support loss") + self.draw(scale, "sharpness", "E[||H(D_i; theta_i)||]"))


class GuiroyFig4(GuiroyMiniImageNet):
    id = "guiroy-fig4"
    title = ("Finetune baseline: meta-test target accuracy, support loss and curvature, mini-ImageNet (Guiroy et al. 2019, Fig. 4), "
             "meta-test accuracy %")
    rows = ("Finetune baseline",)

    def correlation_claims(self) -> list[CorrelationClaim]:
        return and_their_changes([CorrelationClaim("Finetune baseline: flatness of solutions follows the support loss (sec. 5.1)",
                                                   "Finetune baseline", "support_loss", "sharpness", skip_untrained=True)])

    render_figures = GuiroyFig3.render_figures


class GuiroyFig5(GuiroyMiniImageNet):
    id = "guiroy-fig5"
    title = "Coherence of adaptation trajectories vs meta-test accuracy, mini-ImageNet (Guiroy et al. 2019, Fig. 5), meta-test accuracy %"
    rows = ("MAML", "First-Order MAML")

    def correlation_claims(self) -> list[CorrelationClaim]:
        return and_their_changes([CorrelationClaim(f"{row}: meta-test accuracy rises with the coherence of adaptation trajectories "
                                                   "(sec. 5.2)", row, "trajectory_coherence", "target_accuracy_meta_test",
                                                   skip_untrained=True) for row in self.rows])

    def render_figures(self, scale: str) -> list[Path]:
        return self.draw(scale, "trajectory_coherence", "E[theta_i . theta_j] (unit directions)") + self.draw(
            scale, "target_accuracy_meta_test", "target accuracy on meta-test tasks %")


#: Fig. 6's panels (a, b): (panel, measure, probe key)
FIG6_LEVELS = (("a", "trajectory coherence", "trajectory_coherence"), ("b", "gradient coherence", "gradient_coherence"))


class GuiroyFig6(GuiroyMiniImageNet):
    id = "guiroy-fig6"
    title = ("Trajectory and gradient coherence of the finetune baseline, distances travelled, mini-ImageNet (Guiroy et al. 2019, "
             "Fig. 6), meta-test accuracy %")
    # (c, d) the distances travelled by all algorithms: drawn, no claim

    def level_claims(self) -> list[LevelClaim]:
        # (a, b): "the coherence of adaptation trajectories [and of meta-test gradients] for the finetuning baseline is much
        # closer to zero" than MAML's (sec. 5.2 and 5.3, Fig. 6): the mean |coherence| over the epochs, per seed
        return [LevelClaim(f"the finetune baseline's {name} is closer to zero than {row}'s (Fig. 6{panel})", row, "Finetune baseline",
                           key, absolute=True, expected_sign=-1)
                for panel, name, key in FIG6_LEVELS for row in ("MAML", "First-Order MAML")]

    def render_figures(self, scale: str) -> list[Path]:
        return (self.draw(scale, "trajectory_coherence", "E[theta_i . theta_j] (unit directions)")
                + self.draw(scale, "gradient_coherence", "E[g_i . g_j] at theta_s") + self.draw(scale, "trajectory_distance",
                                                                                                  "E[||theta_i - theta_s||]"))


class GuiroyFig7(GuiroyMiniImageNet):
    id = "guiroy-fig7"
    title = "Coherence of meta-test gradients vs meta-test accuracy, mini-ImageNet (Guiroy et al. 2019, Fig. 7), meta-test accuracy %"
    rows = ("MAML", "First-Order MAML")
    inner_steps = 1  # appendix A.3: "except for Section 5.3 where T = 1"

    def correlation_claims(self) -> list[CorrelationClaim]:
        return and_their_changes([CorrelationClaim(f"{row}: meta-test accuracy rises with E[g_i.g_j] at the meta-train solution "
                                                   "(sec. 5.3)", row, "gradient_coherence", "target_accuracy_meta_test",
                                                   skip_untrained=True) for row in self.rows])

    def render_figures(self, scale: str) -> list[Path]:
        return self.draw(scale, "gradient_coherence", "E[g_i . g_j] at theta_s") + self.draw(
            scale, "target_accuracy_meta_test", "target accuracy on meta-test tasks %")


FIG3, FIG4, FIG5, FIG6, FIG7 = GuiroyFig3(), GuiroyFig4(), GuiroyFig5(), GuiroyFig6(), GuiroyFig7()
