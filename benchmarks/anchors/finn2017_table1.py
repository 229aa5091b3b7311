"""MAML on Omniglot: Finn, Abbeel & Levine, ICML 2017, Table 1 (Conv-4 rows).

Anchor table (not one of the five seed papers; numbers from REFERENCE.md):
98.7 +- 0.4 / 99.9 +- 0.1 (5-way 1/5-shot), 95.8 +- 0.3 / 98.9 +- 0.2 (20-way).

Protocol, from the paper (sec. 5.2, appendix A.1) and its code (cbfinn/maml
``main.py``, ``maml.py``, ``utils.py``; ``docs/protocols/omniglot.md``):

* Conv-4, 64 filters, 3x3 convs with stride 2 and TF 'SAME' padding, spatial
  mean, linear head initialised ``N(0, 1)`` (``tf.random_normal``), Glorot
  convs; BatchNorm as ``tf.contrib.layers.batch_norm``'s defaults: offset,
  no scale, eps 1e-3, batch statistics always (transductive at test).
  BatchNorm offsets are not among MAML's fast weights: the inner loop leaves
  them, the outer loop learns them.
* 5-way: meta-batch 32, inner lr 0.4, 1 inner step; 20-way: meta-batch 16,
  inner lr 0.1, 5 steps; 60,000 iterations, Adam 1e-3; K support and K query
  examples per class (``update_batch_size * 2``), in training and at test.
* Inner loss as the code's ``xent``: softmax cross-entropy summed over the
  support set and divided by K (``tf.gradients`` of the per-example vector
  sums it), so the 0.4 step acts on ``ways x`` the mean loss. The outer loss
  is the same per task, averaged over the meta-batch.
* Test: 600 tasks on the 423 test characters, accuracy per task, mean and
  1.96 std / sqrt(600). Test steps: 3 for 5-way (REFERENCE.md, from the
  paper); the paper gives none for 20-way, so 20-way tests with its 5
  training steps [choice]; the code runs 10 (variant ``code-test-steps``).
  Measured on the paper-scale 5-way 1-shot model (2026-11-30): 10 steps
  change none of the 600 per-task scores (98.30 either way); on the first
  200 tasks the query logits move by at most 0.055 after step 3, as the
  support loss is already near zero. The choice does not matter there.
* The last model is tested (the code keeps no validation selection).

Which cells fit this machine: ``metarepro list --timings`` shows the measured
time per meta-iteration of each cell and the projected hours at paper scale.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.families.omniglot_gbml import SMOKE_DATA, OmniglotGBML, chunked_scores, test_episodes
from benchmarks.harness.base import Cell, way_shot
from metarepro.episodes import Episode, task_rng
from metarepro.inner import cross_entropy_per_task
from metarepro.results import config_hash
from methods.backbones import ConvNet
from methods.maml import MAML

SETTINGS = {5: {"meta_batch": 32, "inner_lr": 0.4, "inner_steps": 1, "test_steps": 3},
            20: {"meta_batch": 16, "inner_lr": 0.1, "inner_steps": 5, "test_steps": 5}}
PROTOCOL = {"iterations": 60_000, "meta_lr": 1e-3, "test_tasks": 600, "filters": 64, "invert": True, "test_rotations": [0, 90, 180, 270],
            "first_order": False, "transductive": True, "data": "omniglot", "train_seed": 0, "test_seed": 2017,
            "checkpoint_every": 500, "log_every": 100}
#: quick: a few minutes per cell on one thread (enough to time an iteration and see the trend, far from converged)
QUICK_ITERATIONS = {(5, 1): 300, (5, 5): 100, (20, 1): 60, (20, 5): 20}
SCALE_OVERRIDES = {"paper": {}, "quick": {"test_tasks": 200, "checkpoint_every": 20, "log_every": 10},
                   "smoke": {"iterations": 6, "test_tasks": 8, "checkpoint_every": 3, "log_every": 2, **SMOKE_DATA}}
#: for `reproduce`'s estimate of a cell without a timed record (a variant) only; `list --timings` reads the records.
#: Measured here: the quick records of 2026-11-30 (1 thread), per meta-iteration and per test task (3 / 5 test steps)
MS_PER_ITERATION = {(5, 1): 220.0, (5, 5): 940.0, (20, 1): 1520.0, (20, 5): 8000.0}
MS_PER_TEST_TASK = {(5, 1): 5.0, (5, 5): 21.0, (20, 1): 27.0, (20, 5): 140.0}
TRAINING_KEYS = ("ways", "shots", "meta_batch", "inner_lr", "inner_steps", "iterations", "meta_lr", "filters", "invert", "first_order",
                 "data", "train_seed", "test_rotations")


#: issue #14: the split is a deviation from the code, not only a documented equivalent
MAML_SPLIT_DEVIATION = (
    "split: Vinyals et al.'s trainval file (1200 characters) for meta-training and its test file (423), REFERENCE.md's "
    "file-based equivalent of MAML's split; MAML's code draws its own 1200 / 423 characters by a seeded shuffle "
    "(cbfinn/maml data_generator.py), so the characters trained and tested on differ from the paper's run")


def maml_task_loss(shots: int):
    """cbfinn/maml's ``xent``: cross-entropy summed over a task's examples, divided by K; ``(T, n, ways) -> (T,)``."""

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy_per_task(logits, labels) * labels.shape[1] / shots

    return loss


def maml_training_key(cfg: dict) -> str:
    """Cells whose training settings agree share one model (e.g. the main protocol and ``code-test-steps``)."""
    name = "fomaml" if cfg["first_order"] else "maml"
    return f"{name}-{cfg['ways']}w{cfg['shots']}s-" + config_hash({k: cfg[k] for k in TRAINING_KEYS})


class Finn2017Table1(OmniglotGBML):
    id = "finn2017-table1"
    title = "MAML on Omniglot (Finn et al. 2017, Table 1), accuracy %"
    paper = ""  # not among ../shared/papers; numbers from REFERENCE.md
    rows = ("MAML",)
    variants = {"code-test-steps": "10 test steps, as cbfinn/maml's main.py runs Omniglot (test_num_updates = 10)"}

    def split_deviations(self, cfg: dict) -> list[str]:
        return [MAML_SPLIT_DEVIATION] if cfg["data"] == "omniglot" else []  # smoke's fixtures have no code split to differ from

    def config(self, cell: Cell, scale: str) -> dict:
        ways, shots = way_shot(cell.column)
        cfg = {"benchmark": self.id, "method": cell.row, "ways": ways, "shots": shots, "test_queries": shots, "scale": scale,
               **PROTOCOL, **SETTINGS[ways], **SCALE_OVERRIDES[scale],
               "ms_per_iteration_estimate": MS_PER_ITERATION[(ways, shots)], "ms_per_test_task_estimate": MS_PER_TEST_TASK[(ways, shots)]}
        if scale == "quick":
            cfg["iterations"] = QUICK_ITERATIONS[(ways, shots)]
            cfg["test_tasks"] = 200 if ways == 5 else 100
        if cell.variant == "code-test-steps":
            cfg["test_steps"] = 10
        return cfg

    def training_key(self, cell: Cell, scale: str) -> str:
        return maml_training_key(self.config(cell, scale))

    def build_model(self, cfg: dict, engine: str = "func") -> MAML:
        net = ConvNet(1, cfg["ways"], cfg["filters"], pool=False, features="mean", bn_scale=False, bn_eps=1e-3, head_init="normal")
        return MAML(net, maml_task_loss(cfg["shots"]), cfg["inner_lr"], cfg["inner_steps"], test_steps=cfg["test_steps"],
                    first_order=cfg["first_order"], engine=engine, frozen=tuple(f"norms.{i}.bias" for i in range(4)))

    def train_batch(self, pool, cfg: dict, index: int) -> Episode:
        rng = task_rng(cfg["train_seed"], "train", index)
        return Episode.stack([self.sample(pool, rng, cfg["ways"], cfg["shots"], cfg["shots"], cfg["invert"])
                              for _ in range(cfg["meta_batch"])])

    def test_scores(self, model: MAML, pool, cfg: dict, device: str, progress: bool) -> np.ndarray:
        if not cfg["transductive"]:
            raise ValueError("MAML's protocol is transductive (batch statistics of the query set)")

        def chunk(start: int, stop: int) -> np.ndarray:
            batch = test_episodes(self, pool, cfg, start, stop).to(device)
            correct = (model.predict(batch).argmax(-1) == batch.query_y).double().mean(1)
            return 100.0 * correct.cpu().numpy()

        return chunked_scores(chunk, cfg["test_tasks"], 50, progress, "test tasks")


BENCHMARK = Finn2017Table1()
