"""Shared machinery of the gradient-based Omniglot tables (MAML, first-order MAML, Reptile).

Data: the Vinyals character split files, each character at 0/90/180/270
degrees a class (nichol2018-table1's ``code-split`` variant draws the
reference code's own seeded split instead: ``character_splits``). MAML's
code draws its 1200/423 character split by a seeded
shuffle and rotates each class of a task by a random quarter turn; the
Vinyals ``trainval`` (1200) and ``test`` (423) files are the file-based
equivalent REFERENCE.md names, with the rotations as fixed classes. Reptile's
code also trains on 1200 characters x 4 rotations and tests on the other 423
*unrotated* (``test_rotations = (0,)``). Images: 28x28 NEAREST (what Pillow
does to the 1-bit PNGs in both codes); MAML inverts them (``1 - x``), Reptile
does not.

Every cell records its measured time per meta-iteration; ``metarepro list
--timings`` turns it into the projected hours of a paper-scale run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.base import Benchmark, Cell, CellResult, way_shot
from metarepro.data.fixtures import make_omniglot
from metarepro.data.omniglot import ClassPool, load_cache, read_split, seeded_character_split
from metarepro.data.store import DataError, data_root
from metarepro.episodes import Episode, task_rng
from metarepro.timing import now
from metarepro.trainer import EarlyStopping, Probes, load_checkpoint, train

COLUMNS = ("5-way 1-shot", "5-way 5-shot", "20-way 1-shot", "20-way 5-shot")
#: what ``quick`` and ``smoke`` change; everything else is the paper's protocol
SMOKE_DATA = {"data": "fixture", "filters": 8}
ROTATIONS = (0, 90, 180, 270)


def minibatch_order(rng: np.random.Generator, n: int, batch: int, count: int) -> np.ndarray:
    """``(count, batch)`` indices into ``n`` examples, as supervised-reptile's ``_mini_batches`` draws them:
    shuffle, take consecutive examples, reshuffle when the set is used up (a batch may straddle two shuffles)."""
    needed = batch * count
    stream = np.concatenate([rng.permutation(n) for _ in range(-(-needed // n))])
    return stream[:needed].reshape(count, batch)


def character_splits(characters: tuple[str, ...], cfg: dict) -> dict[str, list[tuple[str, int]]]:
    """``{"train", "test"}`` -> ``(character, rotation)`` classes: the Vinyals files (``trainval`` / ``test``), or with
    ``cfg["split"] == "seeded"`` the reference code's seeded shuffle of all characters, every character at the four
    rotations. The fixture's 34 characters split 14 / 20 (20 test characters: 20-way tasks without rotations)."""
    fixture, split = cfg["data"] == "fixture", cfg.get("split", "vinyals")
    if split not in ("vinyals", "seeded"):
        raise ValueError(f"unknown character split {split!r}: 'vinyals' (the split files) or 'seeded' (the code's shuffle)")
    if split == "seeded":
        train, test = seeded_character_split(characters, cfg["split_seed"], 14 if fixture else 1200)
    elif fixture:
        train, test = characters[:14], characters[14:]
    else:
        folder = data_root() / "splits" / "omniglot" / "vinyals"
        if not folder.exists():
            raise DataError(f"split files not found under {folder}: run `metarepro data fetch splits`")
        return {"train": read_split(folder / "trainval.txt"), "test": read_split(folder / "test.txt")}
    return {"train": [(c, r) for c in train for r in ROTATIONS], "test": [(c, r) for c in test for r in ROTATIONS]}


class OmniglotGBML(Benchmark):
    """Base of ``finn2017-table1`` and ``nichol2018-table1``: data, sampling, training loop, timing."""

    columns = COLUMNS
    metric = "accuracy %"
    higher_is_better = True
    requires_data = "omniglot"

    # -- subclasses ----------------------------------------------------------
    def build_model(self, cfg: dict, engine: str = "func") -> torch.nn.Module:
        raise NotImplementedError

    def train_batch(self, pool: ClassPool, cfg: dict, index: int) -> Episode:
        raise NotImplementedError

    def test_scores(self, model: torch.nn.Module, pool: ClassPool, cfg: dict, device: str, progress: bool) -> np.ndarray:
        raise NotImplementedError

    def make_optimizer(self, model: torch.nn.Module, cfg: dict) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg["meta_lr"])

    def lr_schedule(self, cfg: dict):
        return None

    def checkpoint_intervals(self, cfg: dict) -> tuple[int, int]:
        """``(checkpoint_every, log_every)`` in iterations."""
        return cfg["checkpoint_every"], cfg["log_every"]

    def probes(self, model: torch.nn.Module, pools: dict[str, ClassPool], cfg: dict, device: str, folder: Path) -> Probes | None:
        """Measurements along training (Guiroy et al.'s landscape analyses), ``folder`` the run's; none by default."""
        return None

    def runs_home(self, runs_dir: Path) -> Path:
        """Where the cell's models live (``runs/<id>/<scale>``; a family sharing its runs across benchmarks moves it)."""
        return Path(runs_dir)

    def early_stopping(self, model: torch.nn.Module, pools: dict[str, ClassPool], cfg: dict, run_dir: Path,
                       device: str) -> EarlyStopping | None:
        """Validation during training (the best checkpoint is then the one tested); none by default."""
        return None

    # -- shared --------------------------------------------------------------
    def trivial_score(self, cell: Cell, scale: str) -> float:
        """Chance accuracy, %."""
        return 100.0 / way_shot(cell.column)[0]

    def dataset_digest(self) -> str | None:
        from metarepro.data.sources import OMNIGLOT

        return ",".join(f.content_sha256 for f in OMNIGLOT.files)

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        return sum(self.estimated_train_test(cell, scale))

    def estimated_train_test(self, cell: Cell, scale: str) -> tuple[float, float]:
        cfg = self.config(cell, scale)
        runs = cfg.get("runs", 1)  # guiroy-fig9 trains and tests each cell five times
        return (runs * cfg["iterations"] * cfg["ms_per_iteration_estimate"] / 1000,
                runs * cfg["test_tasks"] * cfg["ms_per_test_task_estimate"] / 1000)

    def pools(self, cfg: dict, runs_dir: Path) -> dict[str, ClassPool]:
        if cfg["data"] == "fixture":
            root = Path(runs_dir) / "fixture-omniglot-14-20"  # 20 test characters: 20-way tasks without rotations
            if not (root / "omniglot").exists():
                make_omniglot(root, alphabets=(("images_background", "Alpha", 14), ("images_evaluation", "Beta", 20)))
            cache = load_cache(root, 28, "nearest", log=lambda *_: None)
        else:
            cache = load_cache(None, 28, "nearest")
        splits = character_splits(cache.characters, cfg)
        splits["test"] = [(c, r) for c, r in splits["test"] if r in cfg["test_rotations"]]
        return {s: ClassPool.from_split(cache, split, f"{cfg.get('split', 'vinyals')}/{s}") for s, split in splits.items()}

    def sample(self, pool: ClassPool, rng: np.random.Generator, ways: int, shots: int, queries: int, invert: bool) -> Episode:
        e = pool.sample(rng, ways, shots, queries)
        if invert:
            e = Episode(1.0 - e.support_x, e.support_y, 1.0 - e.query_x, e.query_y)
        return e

    def train_and_test(self, cell: Cell, cfg: dict, key: str, runs_dir: Path, engine: str, progress: bool, device: str,
                       progress_position: int | None, desc: str):
        """Train (resumably) one model of ``cfg`` under checkpoint ``key``; return ``(test scores, train state, test seconds)``."""
        pools = self.pools(cfg, runs_dir)
        torch.manual_seed(cfg["train_seed"])
        model = self.build_model(cfg, engine).to(device)
        optimizer = self.make_optimizer(model, cfg)
        checkpoint_every, log_every = self.checkpoint_intervals(cfg)
        early = self.early_stopping(model, pools, cfg, Path(runs_dir) / key, device)
        state = train(model, optimizer, lambda i: self.train_batch(pools["train"], cfg, i).to(device), cfg["iterations"],
                      Path(runs_dir) / key / "checkpoint.pt", key, checkpoint_every=checkpoint_every, log_every=log_every,
                      progress=progress, desc=desc, meta={"benchmark": self.id, "cell": cell.__dict__, "scale": cfg["scale"]},
                      progress_position=progress_position, early_stopping=early, lr_schedule=self.lr_schedule(cfg),
                      probes=self.probes(model, pools, cfg, device, Path(runs_dir) / key))
        if early is not None and early.best_path.exists():  # test the checkpoint of best validation, not the last one
            model.load_state_dict(load_checkpoint(early.best_path, None)["model"])
        started = now(device)
        scores = self.test_scores(model, pools["test"], cfg, device, progress)
        return scores, state, now(device) - started

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        self.check_cell(cell)
        cfg = self.config(cell, scale)
        key = self.training_key(cell, scale)
        scores, state, test_s = self.train_and_test(cell, cfg, key, self.runs_home(runs_dir), engine, progress, device,
                                                    progress_position, f"{cell.label} [{scale}]")
        selection = ({"selection": {"val_curve": state.val_curve, "selected_iteration": state.best_iteration,
                                    "validation_value": state.best_value}} if state.val_curve else {})
        return CellResult(
            scores=scores, deviations=self.deviations(cfg), wall_time_s=state.elapsed_s + test_s, train_wall_time_s=state.elapsed_s,
            extra={"loss_curve": state.loss_curve, **selection, **({"probe_curve": state.probe_curve} if state.probe_curve else {}),
                   "checkpoint_key": key, "timing": {
                "ms_per_iteration": 1000 * state.elapsed_s / max(state.iteration, 1), "iterations_timed": state.iteration,
                "test_s": test_s, "test_tasks": cfg["test_tasks"], "threads": torch.get_num_threads(), "device": device,
                "load_average_1min": os.getloadavg()[0]}},  # > threads: other work shared the cores, the times are inflated
        )

    def deviations(self, cfg: dict) -> list[str]:
        return self.split_deviations(cfg)

    def split_deviations(self, cfg: dict) -> list[str]:
        """Where the cell's character split differs from the authors' code's (finn2017-table1, nichol2018-table1)."""
        return []

    def protocol_deviations(self, cell: Cell, scale: str) -> list[str]:
        return self.split_deviations(self.config(cell, scale))

    def evaluate_checkpoint(self, checkpoint: Path, cell: Cell, scale: str, device: str = "cpu") -> np.ndarray:
        key = Path(checkpoint).parent.name  # per-run checkpoints (guiroy-fig9) extend the cell's training key
        cfg, model = self.load_trained(checkpoint, cell, scale, key if key.startswith(self.training_key(cell, scale)) else None)
        pools = self.pools(cfg, Path(checkpoint).parent.parent)
        return self.test_scores(model.to(device), pools["test"], cfg, device, progress=True)


def test_episodes(benchmark: OmniglotGBML, pool: ClassPool, cfg: dict, start: int, stop: int) -> Episode:
    """Fixed test tasks ``start..stop-1`` of the cell, addressed by ``(test_seed, "test", index)``."""
    return Episode.stack([benchmark.sample(pool, task_rng(cfg["test_seed"], "test", i), cfg["ways"], cfg["shots"], cfg["test_queries"],
                                           cfg["invert"]) for i in range(start, stop)])


def chunked_scores(score_chunk, n_tasks: int, chunk: int, progress: bool, desc: str) -> np.ndarray:
    """Per-task accuracies (%) of ``n_tasks`` test tasks, ``score_chunk(start, stop) -> (stop-start,)``."""
    from tqdm import tqdm

    out = []
    for start in tqdm(range(0, n_tasks, chunk), desc=desc, disable=not progress, mininterval=30.0, leave=False):
        out.append(score_chunk(start, min(start + chunk, n_tasks)))
    return np.concatenate(out)
