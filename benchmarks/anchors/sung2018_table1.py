"""Relation Networks on Omniglot: Sung et al. 2018 ("Learning to Compare"), Table 1 (Omniglot columns).

Anchor table (numbers from REFERENCE.md): the proof, on real data, of the
Relation Network that L2G builds on (issue #5). Protocol from the authors'
code (floodsung/LearningToCompare_FSL @addd2c9f: README commands,
``omniglot/omniglot_train_{one,few}_shot.py``, ``omniglot/task_generator.py``):

* characters are the classes (1200 for meta-training, 423 for test); each
  task is rotated as a whole by a random multiple of 90 degrees (the code's
  ``Rotate`` augmentation), at training and at test time;
* images: greyscale then LANCZOS to 28x28 (``convert('L')``, ``resize``),
  standardised with mean 0.92206 and std 0.08426;
* training episodes: ``N``-way ``K``-shot with 19 / 15 / 10 / 5 queries per
  class (5-way 1-shot, 5-way 5-shot, 20-way 1-shot, 20-way 5-shot: the
  README's ``-b``); Adam 1e-3 for both networks, halved every 100,000
  episodes; each network's gradient norm clipped at 0.5; MSE on one-hot;
* test: 1000 episodes of ``K`` queries per class; accuracy over them (the
  code prints the mean only; the suite adds a 95% CI over episodes).

Deviations, recorded in every record (REFERENCE.md, issue #5): the code
trains 1,000,000 episodes and keeps the checkpoint with the best *test*
accuracy (checked every 5,000 episodes). Here the paper scale trains a
documented budget and selects on *validation*: Vinyals' ``train`` (1028
characters) for training, ``val`` (172) for selection and ``test`` (423) for
the score, all unrotated with the per-task rotation above; the 1200 / 423
character split is the file-based form of the code's seeded shuffle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.families.omniglot_gbml import COLUMNS, OmniglotGBML
from benchmarks.harness.base import Cell, way_shot
from metarepro.data.fixtures import make_omniglot
from metarepro.data.omniglot import ClassPool, load_cache, read_split
from metarepro.data.store import DataError, data_root
from metarepro.episodes import Episode, task_rng
from metarepro.results import config_hash
from metarepro.trainer import EarlyStopping, step_decay
from methods.relationnet import RelationNet

QUERIES = {(5, 1): 19, (5, 5): 15, (20, 1): 10, (20, 5): 5}
MEAN, STD = 0.92206, 0.08426
PROTOCOL = {"lr": 1e-3, "decay_every": 100_000, "clip_grad_norm": 0.5, "code_episodes": 1_000_000, "test_tasks": 1000,
            "image_size": 28, "resample": "lanczos", "filters": 64, "hidden": 8, "data": "omniglot",
            "train_seed": 0, "val_seed": 1, "test_seed": 2018}
#: the budget this suite trains (the code's 1M episodes is out of reach here), validation every `val_every` episodes
SCALES = {"paper": {"iterations": 100_000, "val_every": 5000, "val_episodes": 500},
          "quick": {"iterations": 2000, "val_every": 500, "val_episodes": 100, "test_tasks": 300},
          # smoke: an 8-filter net on fixtures; 3x the step and 5 queries a class so that 200 episodes learn (measured: 1e-3
          # stays near chance on 20-way 5-shot after 200 episodes, 3e-3 reaches ~50%)
          "smoke": {"iterations": 200, "lr": 3e-3, "train_queries": 5, "val_every": 100, "val_episodes": 5, "test_tasks": 20,
                    "data": "fixture", "filters": 8}}
#: rough, for `reproduce`'s estimate (1 thread, ms per training episode); records carry measured times
MS_PER_EPISODE = {(5, 1): 40.0, (5, 5): 60.0, (20, 1): 150.0, (20, 5): 250.0}


def standardise(images: torch.Tensor) -> torch.Tensor:
    """The code's ``Normalize(0.92206, 0.08426)`` on images in ``[0, 1]``."""
    return (images - MEAN) / STD


def rotate_task(episode: Episode, quarter_turns: int) -> Episode:
    """The whole task turned by ``quarter_turns`` x 90 degrees (counter-clockwise, as PIL's ``rotate``)."""
    def turn(x: torch.Tensor) -> torch.Tensor:
        return torch.rot90(x, quarter_turns, dims=(-2, -1))

    return Episode(turn(episode.support_x), episode.support_y, turn(episode.query_x), episode.query_y)


class Sung2018Table1(OmniglotGBML):
    id = "sung2018-table1"
    title = "Relation Networks on Omniglot (Sung et al. 2018, Table 1), accuracy %"
    paper = ""  # not among ../shared/papers; numbers from REFERENCE.md
    rows = ("Relation Networks",)
    columns = COLUMNS
    known_deviations = {("Relation Networks", "5-way 1-shot"): (
        "paper scale, run of 2026-11-30 (158 min on one thread): 98.90 +/- 0.31 against 99.6 +/- 0.2, 0.7 points below, outside by "
        "0.19. The budget is 1/10 of the code's (100K episodes, not 1M) and the checkpoint is chosen on validation, not on test: "
        "validation error still drifted down across the run (3.8% at 5K, 1.8% at 20K, 1.48% at 50K, best 1.16% at 70K, 1.40% at "
        "100K, 500 episodes each, so +/- ~0.5), and the code's best-of-200 *test* checkpoints biases its number upward by "
        "construction. The same RelationNet under L2G's protocol (l2g-omniglot, 20K updates, 15 queries) gave 97.57 +/- 0.22.")}

    def config(self, cell: Cell, scale: str) -> dict:
        ways, shots = way_shot(cell.column)
        return {"benchmark": self.id, "method": cell.row, "ways": ways, "shots": shots, "train_queries": QUERIES[(ways, shots)],
                "test_queries": shots, "scale": scale, **PROTOCOL, **SCALES[scale]}

    def training_key(self, cell: Cell, scale: str) -> str:
        cfg = self.config(cell, scale)
        return f"relationnet-{cfg['ways']}w{cfg['shots']}s-" + config_hash({k: v for k, v in cfg.items() if k != "test_tasks"})

    def estimated_train_test(self, cell: Cell, scale: str) -> tuple[float, float]:
        cfg = self.config(cell, scale)
        return cfg["iterations"] * MS_PER_EPISODE[(cfg["ways"], cfg["shots"])] / 1000 * 1.1, 0.0  # + validation; test small

    def deviations(self, cfg: dict) -> list[str]:
        if cfg["scale"] != "paper":
            return []
        return [f"{cfg['iterations']:,} training episodes (code: {cfg['code_episodes']:,})",
                f"checkpoint selected on validation accuracy ({cfg['val_episodes']} episodes every {cfg['val_every']:,}; "
                "code: best test accuracy every 5,000)",
                "trained on Vinyals' train characters (1028), validation on val (172); code: all 1200 for training"]

    # -- data ----------------------------------------------------------------
    def pools(self, cfg: dict, runs_dir: Path) -> dict[str, ClassPool]:
        if cfg["data"] == "fixture":
            root = Path(runs_dir) / "fixture-omniglot-sung"
            if not (root / "omniglot").exists():
                make_omniglot(root, alphabets=(("images_background", "Alpha", 44), ("images_evaluation", "Beta", 22)))
            cache = load_cache(root, cfg["image_size"], cfg["resample"], log=lambda *_: None)
            chars = cache.characters  # 22 characters per split: 20-way tasks everywhere
            splits = {"train": [(c, 0) for c in chars[:22]], "val": [(c, 0) for c in chars[22:44]], "test": [(c, 0) for c in chars[44:]]}
        else:
            cache = load_cache(None, cfg["image_size"], cfg["resample"])
            folder = data_root() / "splits" / "omniglot" / "vinyals"
            if not folder.exists():
                raise DataError(f"split files not found under {folder}: run `metarepro data fetch splits`")
            # characters are the classes; rotation is a per-task augmentation (rotation 0 of each listed character)
            splits = {s: sorted({(c, 0) for c, _ in read_split(folder / f"{s}.txt")}) for s in ("train", "val", "test")}
        return {s: ClassPool.from_split(cache, split, f"sung/{s}") for s, split in splits.items()}

    def episode(self, pool: ClassPool, rng: np.random.Generator, ways: int, shots: int, queries: int) -> Episode:
        e = pool.sample(rng, ways, shots, queries)
        e = Episode(standardise(e.support_x), e.support_y, standardise(e.query_x), e.query_y)
        return rotate_task(e, int(rng.integers(4)))

    # -- model ---------------------------------------------------------------
    def build_model(self, cfg: dict, engine: str = "func") -> torch.nn.Module:
        return RelationNet(1, cfg["image_size"], cfg["filters"], cfg["hidden"], relation_padding=1, clip_grad_norm=cfg["clip_grad_norm"])

    def train_batch(self, pool: ClassPool, cfg: dict, index: int) -> Episode:
        return self.episode(pool, task_rng(cfg["train_seed"], "train", index), cfg["ways"], cfg["shots"], cfg["train_queries"])

    def fixed_episodes(self, pool: ClassPool, cfg: dict, seed_key: str, count: int) -> list[Episode]:
        seed = cfg["val_seed"] if seed_key == "val" else cfg["test_seed"]
        return [self.episode(pool, task_rng(seed, seed_key, i), cfg["ways"], cfg["shots"], cfg["test_queries"]) for i in range(count)]

    def test_scores(self, model: torch.nn.Module, pool: ClassPool, cfg: dict, device: str, progress: bool) -> np.ndarray:
        episodes = self.fixed_episodes(pool, cfg, "test", cfg["test_tasks"])
        with torch.no_grad():
            return np.array([100.0 * float(model.score(e.to(device))[0]) for e in episodes])

    # -- training, with selection on validation --------------------------------
    def make_optimizer(self, model: torch.nn.Module, cfg: dict) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=cfg["lr"])

    def lr_schedule(self, cfg: dict):
        return step_decay(cfg["decay_every"])

    def checkpoint_intervals(self, cfg: dict) -> tuple[int, int]:
        return cfg["val_every"], max(1, cfg["val_every"] // 10)

    def early_stopping(self, model: torch.nn.Module, pools: dict[str, ClassPool], cfg: dict, run_dir: Path,
                       device: str) -> EarlyStopping:
        val = [e.to(device) for e in self.fixed_episodes(pools["val"], cfg, "val", cfg["val_episodes"])]
        # lower is better: validation error %; patience beyond the budget, so this only keeps the best checkpoint
        return EarlyStopping(validate=lambda: 100.0 - 100.0 * float(torch.cat([model.score(e) for e in val]).mean()),
                             every=cfg["val_every"], patience=cfg["iterations"], best_path=run_dir / "best.pt")


BENCHMARK = Sung2018Table1()
