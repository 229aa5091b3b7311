"""Goldblum et al. Table 7 (Appendix A.2): training time per epoch and in total of the Table 3 rows, mini-ImageNet and
CIFAR-FS, on one GPU (an RTX 2080 Ti); printed as "per epoch / total", e.g. "16m/16.8h".

Timings on this suite's CPU cannot be held to the paper's GPU seconds: ``compare`` prints them with the verdict "not
comparable (CPU vs the paper's GPU)" and, beside them, what can be compared: each backbone's meta-learning / classical
ratio per epoch and in total, published and measured in the same run. On a GPU (``--device cuda``, CUDA-synchronised
clocks) the seconds themselves become comparable in kind, not in card.

A cell times ``timed_iterations`` training updates of the row's model (after one warm-up update) with the paper-scale
batches of its dataset (``benchmarks.families.unraveling_images``); each timed update, times the updates of an epoch, is
one score (so the interval is over updates). An epoch is MetaOptNet's 1000 batches of 8 episodes for the meta-learned
rows and one pass over the 38,400 training images for the classical ones; the total multiplies by the epochs the
protocol trains (60, 300). The batches are the real ones (15-shot episodes, 256-image batches on mini-ImageNet), so
on one CPU thread a paper-scale cell takes minutes per update for ResNet-12.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from benchmarks.families.unraveling_images import CLASSICAL_TRAININGS, UnravelingImages, image_pools
from benchmarks.harness.base import Cell, CellResult
from benchmarks.unraveling.table3 import COEFFICIENTS, ROWS
from metarepro.timing import now

COLUMNS = {"mini-ImageNet epoch": ("mini_imagenet", "epoch"), "mini-ImageNet total": ("mini_imagenet", "total"),
           "CIFAR-FS epoch": ("cifar_fs", "epoch"), "CIFAR-FS total": ("cifar_fs", "total")}
TIMED = {"paper": 20, "quick": 3, "smoke": 2}
UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_runtime(printed: str) -> tuple[float, float]:
    """``"16m/16.8h"`` or ``"1.4 m / 7.0 h"`` -> ``(960.0, 60480.0)`` seconds per epoch and in total."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh])\s*/\s*(\d+(?:\.\d+)?)\s*([smh])\s*", printed)
    if match is None:
        raise ValueError(f"not a Table 7 runtime: {printed!r}")
    return float(match.group(1)) * UNITS[match.group(2)], float(match.group(3)) * UNITS[match.group(4)]


def runtime_roundings(printed: str) -> tuple[float, float]:
    """Half a unit of each printed part's last digit, in seconds: ``"16m/16.8h"`` -> ``(30.0, 180.0)``."""
    parts = re.fullmatch(r"\s*(\d+(?:\.(\d+))?)\s*([smh])\s*/\s*(\d+(?:\.(\d+))?)\s*([smh])\s*", printed)
    if parts is None:
        raise ValueError(f"not a Table 7 runtime: {printed!r}")
    return tuple(0.5 * 10.0 ** -len(parts.group(decimals) or "") * UNITS[parts.group(unit)] for decimals, unit in ((2, 3), (5, 6)))


class UnravelingTable7(UnravelingImages):
    id = "unraveling-table7"
    title = "Unraveling Meta-Learning Table 7: training time per epoch and in total, mini-ImageNet and CIFAR-FS"
    metric = "seconds"
    higher_is_better = False
    rows = tuple(ROWS)
    columns = tuple(COLUMNS)
    datasets = ("mini_imagenet", "cifar100")  # data store names (CIFAR-FS is a split of cifar100)
    not_comparable = "CPU vs the paper's GPU"

    def spec(self, cell: Cell) -> dict:
        backbone, training = ROWS[cell.row]
        dataset, _ = COLUMNS[cell.column]
        coefficient = COEFFICIENTS[(backbone, training.split("-")[1], dataset)] if "-" in training else 0.0
        return {"dataset": dataset, "backbone": backbone, "training": training, "coefficient": coefficient, "measure": "time"}

    def config(self, cell: Cell, scale: str) -> dict:
        """The paper-scale batches and epochs at quick and paper scale (fewer timed updates at quick); smoke times the same
        code on tiny nets."""
        cfg = super().config(cell, "smoke" if scale == "smoke" else "paper")
        return {**cfg, "scale": scale, "timed_iterations": TIMED[scale], "part": COLUMNS[cell.column][1]}

    def training_key(self, cell: Cell, scale: str) -> str:
        return cell.slug

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        return []  # nothing trained to keep: a timing

    def protocol_model(self, cell: Cell, scale: str):
        return None  # times updates; trains nothing whose numbers a protocol version could outdate

    def scored_checkpoint(self, cell: Cell, scale: str):
        return None

    def trivial_score(self, cell: Cell, scale: str) -> float:
        return float("inf")

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        cfg = self.config(cell, scale)
        return super().estimated_seconds(cell, scale) / max(self.iterations(cfg), 1) * (cfg["timed_iterations"] + 1)

    def epoch_updates(self, cfg: dict) -> int:
        return cfg["meta_batches_per_epoch"] if cfg["training"] not in CLASSICAL_TRAININGS else self.batches_per_epoch(cfg)

    def epochs(self, cfg: dict) -> int:
        return cfg["meta_epochs"] if cfg["training"] not in CLASSICAL_TRAININGS else cfg["classical_epochs"]

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        self.check_cell(cell)
        cfg = self.config(cell, scale)
        pools = image_pools(cfg, self.runs_home(runs_dir))
        torch.manual_seed(cfg["train_seed"])
        model = self.build_model(cfg, len(pools["train"])).to(device)
        optimizer, _ = self.optimizer_and_schedule(model, cfg)
        seconds = []
        for i in range(cfg["timed_iterations"] + 1):
            batch = self.train_batch(pools["train"], cfg, i).to(device)  # drawn outside the clock, as a data loader would
            started = now(device)
            optimizer.zero_grad(set_to_none=True)
            loss = model.outer_loss(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{cell.label}: loss {float(loss)} at update {i}")
            loss.backward()
            optimizer.step()
            if i:  # the first update warms up allocators and kernels
                seconds.append(now(device) - started)
        per_epoch = np.array(seconds) * self.epoch_updates(cfg)
        scores = per_epoch * (self.epochs(cfg) if cfg["part"] == "total" else 1)
        return CellResult(scores=scores, deviations=[], wall_time_s=float(sum(seconds)), train_wall_time_s=0.0,
                          extra={"timing": {"seconds_per_update": seconds, "updates_per_epoch": self.epoch_updates(cfg),
                                            "epochs": self.epochs(cfg), "threads": torch.get_num_threads(), "device": device,
                                            "load_average_1min": os.getloadavg()[0]}})

    def comparison_notes(self) -> list[dict]:
        """Per dataset and backbone, meta-learning / classical time, published and measured: both rows' current records at
        one scale (paper, else quick), never a paper-scale time over a quick-scale one."""
        from benchmarks.harness.runner import record_is_current
        from metarepro import results as R

        published = {(p.row, p.column): p.mean for p in R.load_published(self.id)}
        records = {(r["row"], r["column"], r["scale"]): r for r in R.load_records(self.id)
                   if r["scale"] != "smoke" and r["variant"] == "main" and record_is_current(self, r)}
        notes = []
        for meta, classical in (("R2-D2", "Classical (R2-D2)"), ("MetaOptNet-SVM", "Classical (MetaOptNet)")):
            for column in self.columns:
                scale = next((s for s in ("paper", "quick") if (meta, column, s) in records and (classical, column, s) in records), None)
                measured = "—" if scale is None else (
                    f"{records[(meta, column, scale)]['mean'] / records[(classical, column, scale)]['mean']:.1f}x ({scale})")
                notes.append({"ratio": f"{meta} / {classical}", "column": column,
                              "published": f"{published[(meta, column)] / published[(classical, column)]:.1f}x", "measured": measured})
        return notes


BENCHMARK = UnravelingTable7()
