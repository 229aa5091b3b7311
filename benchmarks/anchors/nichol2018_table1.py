"""Reptile on Omniglot: Nichol, Achiam & Schulman 2018, Table 1 (Omniglot rows).

Anchor table (not one of the five seed papers; numbers from REFERENCE.md).
Rows: MAML + transduction and first-order MAML + transduction (numbers Nichol
et al. quote from Finn et al.; run here with ``finn2017-table1``'s protocol,
second and first order), Reptile, Reptile + transduction.

Reptile's protocol is its README's commands (openai/supervised-reptile
@5d5589cc; ``docs/protocols/omniglot.md``):

* Conv-4, 64 filters, stride-2 3x3 convs ('SAME'), ``tf.layers`` BatchNorm
  (scale and offset, eps 1e-3, batch statistics), flatten (2x2x64), dense
  head; Glorot initialisation; images not inverted.
* Training tasks of 10 examples per class (``--train-shots 10``); inner Adam
  (beta1 = 0), lr 1e-3 (5-way) / 5e-4 (20-way), 5 / 10 inner iterations of
  mini-batches of 10 / 20; meta-batch 5; meta step 1 annealed linearly to 0;
  100,000 (5-way) / 200,000 (20-way) meta-iterations.
* Training characters: 1200 x 4 rotations; test characters: the other 423,
  unrotated. Test: 50 inner iterations, mini-batches of 5 (5-way) / 10
  (20-way) from the support set, one query per class; non-transductive
  prediction classifies each query in its own forward pass with the support
  set, transductive all queries in one pass. 10,000 test tasks; the code
  reports the mean only, the suite adds 1.96 std / sqrt(n) over tasks.

The transductive and non-transductive rows evaluate the same trained model
(the README trains once; ``--transductive`` is an evaluation flag).

Variant ``code-split`` (Reptile rows, 5-way): the same protocol on the
characters the code itself draws (``seeded_character_split``, seed 0:
1200 train, 423 test; its test alphabets are all among its training
alphabets, where 12 of the Vinyals test file's 13 are not). It tests whether
the split explains the 5-way cells' gap (``_REPTILE_5WAY_FINDING``); post hoc,
compared with the same published cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.anchors.finn2017_table1 import BENCHMARK as FINN
from benchmarks.anchors.finn2017_table1 import MAML_SPLIT_DEVIATION, maml_training_key
from benchmarks.families.omniglot_gbml import SMOKE_DATA, OmniglotGBML, chunked_scores, minibatch_order, test_episodes
from benchmarks.harness.base import Cell, way_shot
from metarepro.episodes import Episode, task_rng
from metarepro.results import config_hash
from metarepro.trainer import lr_schedule_linear
from methods.backbones import ConvNet
from methods.reptile import Reptile

MAML_ROWS = {"MAML + Transduction": False, "1st-order MAML + Transduction": True}  # row -> first order
REPTILE_ROWS = {"Reptile": False, "Reptile + Transduction": True}  # row -> transductive
REPTILE_SETTINGS = {5: {"inner_lr": 1e-3, "inner_iters": 5, "inner_batch": 10, "iterations": 100_000, "eval_batch": 5},
                    20: {"inner_lr": 5e-4, "inner_iters": 10, "inner_batch": 20, "iterations": 200_000, "eval_batch": 10}}
REPTILE_PROTOCOL = {"train_shots": 10, "meta_batch": 5, "meta_step": 1.0, "meta_step_final": 0.0, "eval_iters": 50, "test_queries": 1,
                    "test_tasks": 10_000, "filters": 64, "invert": False, "test_rotations": [0], "data": "omniglot", "train_seed": 0,
                    "test_seed": 2018, "checkpoint_every": 1000, "log_every": 100}
REPTILE_SCALES = {"paper": {}, "quick": {"test_tasks": 300, "checkpoint_every": 100, "log_every": 50},
                  # smoke: an 8-filter net on fixtures does not move in 20 Adam steps of 1e-3 (chance after 40 meta-iterations,
                  # measured); a 10x inner step makes it learn within 20 meta-iterations, which is what smoke must show
                  "smoke": {"iterations": 20, "inner_lr": 1e-2, "test_tasks": 20, "eval_iters": 20, "checkpoint_every": 5, "log_every": 5,
                            **SMOKE_DATA}}
QUICK_ITERATIONS = {5: 1000, 20: 300}  # a few minutes on one thread
#: for `reproduce`'s estimate of a cell without a timed record (a variant) only; `list --timings` reads the records.
#: Measured here (1 thread): 5-way from the paper-scale records of 2026-11-30 (beside another training job), 20-way from
#: the quick ones; per test task, the slower non-transductive evaluation (50 inner iterations)
MS_PER_ITERATION = {5: 118.0, 20: 307.0}
MS_PER_TEST_TASK = {5: 180.0, 20: 390.0}
TRAINING_KEYS = ("ways", "train_shots", "meta_batch", "inner_lr", "inner_iters", "inner_batch", "iterations", "meta_step", "meta_step_final",
                 "filters", "invert", "data", "train_seed")


#: what the paper-scale Reptile 5-way model (run of 2026-11-30) gives and what was ruled out; the four cells share it
_REPTILE_5WAY_FINDING = (
    "paper scale, one model for the four 5-way cells (100,000 meta-iterations, 3.3 h on one thread; 10,000 test tasks per "
    "cell): Reptile 93.35 +/- 0.22 (1-shot) and 97.91 +/- 0.13 (5-shot), + Transduction 95.96 +/- 0.18 and 98.83 +/- 0.10, "
    "against 95.39, 98.90, 97.68, 99.48: 0.65 to 2.04 points below, most at 1-shot. Ruled out, measured: the inner loss "
    "reduction. The code minimises TF's unreduced loss vector (the gradient of the *sum* over the mini-batch) where this "
    "suite uses the mean; Adam makes training invariant to that scale, but the second moments carried from training "
    "(sums over 10 examples) into test fine-tuning (sums over 5) make the code's test steps half of ours. Evaluated the "
    "code's way on the same 600 test tasks, the model gives -0.37 +/- 0.46 (Reptile) and -0.23 +/- 0.30 (+ Transduction) "
    "points paired: no gain. Open, the likely cause: the split. The code shuffles all 1623 characters with Python's "
    "random.seed(0) (supervised-reptile omniglot.py split_dataset, run_omniglot.py) and tests on the last 423, which come "
    "from 49 alphabets, all 49 also in its training set (computed here from the same sorted listing); this suite tests on "
    "the Vinyals test file (REFERENCE.md's file-based equivalent), 13 alphabets of which 12 are never trained on, a harder "
    "test (117 of its 423 characters are in the code's test set). The code's split is reproducible exactly: the variant "
    "code-split trains and tests on it (4.4 h here: training plus four 10,000-task tests).")


REPTILE_SPLIT_DEVIATION = (
    "split: Vinyals et al.'s trainval (1200 characters) and test (423) files; supervised-reptile draws its own split with "
    "random.seed(0) (omniglot.py split_dataset), whose 423 test characters come from 49 alphabets all seen in training "
    "(the variant code-split runs on it; the 5-way finding names the split as the likely cause of the gap)")


class Nichol2018Table1(OmniglotGBML):
    id = "nichol2018-table1"
    title = "Reptile on Omniglot (Nichol et al. 2018, Table 1), accuracy %"
    paper = ""  # not among ../shared/papers; numbers from REFERENCE.md
    rows = (*MAML_ROWS, *REPTILE_ROWS)
    known_deviations = {(row, column): _REPTILE_5WAY_FINDING for row in REPTILE_ROWS for column in ("5-way 1-shot", "5-way 5-shot")}
    variants = {"code-split": "Reptile rows (5-way) trained and tested on supervised-reptile's own character split (random.seed(0) shuffle "
                              "of the sorted listing, 1200 / 423) instead of the Vinyals files; tests the split as the cause of "
                              "the 5-way gap"}

    def variant_applies(self, row: str, column: str, variant: str) -> bool:
        return row in REPTILE_ROWS and column.startswith("5-way")  # where the gap was measured (20-way: 18 h a model here)

    def config(self, cell: Cell, scale: str) -> dict:
        if cell.row in MAML_ROWS:
            cfg = FINN.config(Cell("MAML", cell.column), scale)
            return {**cfg, "benchmark": self.id, "method": cell.row, "first_order": MAML_ROWS[cell.row]}
        ways, shots = way_shot(cell.column)
        return {"benchmark": self.id, "method": cell.row, "ways": ways, "shots": shots, "scale": scale, "transductive": REPTILE_ROWS[cell.row],
                **REPTILE_PROTOCOL, **REPTILE_SETTINGS[ways], **REPTILE_SCALES[scale],
                **({"iterations": QUICK_ITERATIONS[ways]} if scale == "quick" else {}),
                **({"split": "seeded", "split_seed": 0} if cell.variant == "code-split" else {}),  # run_omniglot.py --seed 0
                "ms_per_iteration_estimate": MS_PER_ITERATION[ways], "ms_per_test_task_estimate": MS_PER_TEST_TASK[ways]}

    def split_deviations(self, cfg: dict) -> list[str]:
        if cfg["data"] != "omniglot" or cfg.get("split") == "seeded":  # fixtures, or the code's own split (code-split)
            return []
        if cfg["method"] in MAML_ROWS:
            return [MAML_SPLIT_DEVIATION]
        return [REPTILE_SPLIT_DEVIATION]

    def training_key(self, cell: Cell, scale: str) -> str:
        cfg = self.config(cell, scale)
        if cell.row in MAML_ROWS:
            return maml_training_key(cfg)
        # shots only matter at test: one Reptile model per way count serves both shots and both evaluation modes
        # the split keys exist only in the code-split variant: the main models keep their keys (and checkpoints)
        split = {k: cfg[k] for k in ("split", "split_seed") if k in cfg}
        return f"reptile-{cfg['ways']}w-" + config_hash({**{k: cfg[k] for k in TRAINING_KEYS}, **split})

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        if cell.row in MAML_ROWS and not MAML_ROWS[cell.row]:  # finn2017-table1's training (see train_and_test)
            return [f"{FINN.id}/{scale}/{self.training_key(cell, scale)}"]
        return super().run_directories(cell, scale)

    def train_and_test(self, cell: Cell, cfg: dict, key: str, runs_dir: Path, *args, **kwargs):
        """Second-order MAML is finn2017-table1's model to the letter (same training key): train it once, under that table."""
        if self._is_maml(cfg) and not cfg["first_order"]:
            runs_dir = Path(runs_dir).parent.parent / FINN.id / Path(runs_dir).name
        return super().train_and_test(cell, cfg, key, runs_dir, *args, **kwargs)

    def _is_maml(self, cfg: dict) -> bool:
        return cfg["method"] in MAML_ROWS

    def build_model(self, cfg: dict, engine: str = "func") -> torch.nn.Module:
        if self._is_maml(cfg):
            return FINN.build_model(cfg, engine)
        net = ConvNet(1, cfg["ways"], cfg["filters"], pool=False, features="flatten", bn_scale=True, bn_eps=1e-3, head_init="glorot")
        return Reptile(net, cfg["inner_lr"], cfg["inner_batch"], cfg["eval_iters"], cfg["eval_batch"], transductive=cfg["transductive"])

    def make_optimizer(self, model, cfg: dict) -> torch.optim.Optimizer:
        if self._is_maml(cfg):
            return super().make_optimizer(model, cfg)
        return torch.optim.SGD(model.backbone.parameters(), lr=cfg["meta_step"])

    def lr_schedule(self, cfg: dict):
        if self._is_maml(cfg):
            return None
        return lr_schedule_linear(cfg["iterations"], cfg["meta_step_final"] / cfg["meta_step"])

    def train_batch(self, pool, cfg: dict, index: int) -> Episode:
        if self._is_maml(cfg):
            return FINN.train_batch(pool, cfg, index)
        rng = task_rng(cfg["train_seed"], "train", index)
        tasks = []
        for _ in range(cfg["meta_batch"]):
            e = self.sample(pool, rng, cfg["ways"], cfg["train_shots"], 0, cfg["invert"])
            order = minibatch_order(rng, len(e.support_y), cfg["inner_batch"], cfg["inner_iters"]).reshape(-1)
            tasks.append(Episode(e.support_x[order], e.support_y[order], e.query_x, e.query_y))
        return Episode.stack(tasks)

    def test_scores(self, model, pool, cfg: dict, device: str, progress: bool) -> np.ndarray:
        if self._is_maml(cfg):
            return FINN.test_scores(model, pool, cfg, device, progress)

        def chunk(start: int, stop: int) -> np.ndarray:
            batch = test_episodes(self, pool, cfg, start, stop).to(device)
            n_support = batch.support_y.shape[1]
            order = torch.from_numpy(np.stack([minibatch_order(task_rng(cfg["test_seed"], "test-order", i), n_support, cfg["eval_batch"],
                                                               cfg["eval_iters"]) for i in range(start, stop)]))
            correct = (model.predict(batch, order).argmax(-1) == batch.query_y).double().mean(1)
            return 100.0 * correct.cpu().numpy()

        return chunked_scores(chunk, cfg["test_tasks"], 100, progress, "test tasks")


BENCHMARK = Nichol2018Table1()
