"""Is a learned representation with linear ground models competitive on Omniglot? A claim check on the real data here.

Franceschi et al. (``../shared/papers/franceschi-bridge-hpo-learning-to-learn.txt``, sec. 4) find that Hyper-Representation
"achieves a competitive result despite its simplicity" on mini-ImageNet. Here it is set against Prototypical Networks under
``l2g-omniglot``'s protocol and data (the ProtoNet row *is* ``l2g-omniglot``'s model: same training key, shared runs) on the
same 1000 test episodes. Hyper-Representation as in ``hyperrepr-table1`` (32-filter Conv-4, meta-batch 4, Adam 1e-3 with
inverse-time decay, ``T`` chosen on validation from the grid below) with ``l2g-omniglot``'s budget. No published numbers.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.families.fewshot_metric import FewShotMetricTable
from benchmarks.harness.base import Cell, CellResult
from benchmarks.hyperrepr.table1 import HyperReprTable1
from benchmarks.l2g.omniglot import BENCHMARK as L2G_OMNIGLOT
from benchmarks.l2g.omniglot import COLUMNS, PROTOCOL, SCALES

#: T grid on Omniglot [choice: the lower half of hyperrepr-table1's, for this CPU]
T_GRID = (1, 5)


class HyperReprOmniglot(HyperReprTable1):
    id = "hyperrepr-omniglot"
    title = "Claim check: Hyper-Representation vs Prototypical Networks on Omniglot (Franceschi et al.'s claim, our protocol), accuracy %"
    dataset = "omniglot"
    rows = ("Prototypical Network", "Hyper-Representation")
    columns = COLUMNS
    cited_rows = ()
    training_seeds = 3  # a claim rests on at least 3 trainings per row (benchmarks.harness.runner.claim_checks)
    t_grid = T_GRID
    protocol = PROTOCOL
    scale_overrides = {**SCALES, "smoke": {**SCALES["smoke"], "t_grid": [1, 3]}}

    def config(self, cell: Cell, scale: str) -> dict:
        if cell.row == "Prototypical Network":
            return {**L2G_OMNIGLOT.config(cell, scale), "benchmark": self.id, "trained_by": L2G_OMNIGLOT.id}
        return super().config(cell, scale)

    def training_key(self, cell: Cell, scale: str) -> str:
        if cell.row == "Prototypical Network":
            return L2G_OMNIGLOT.training_key(cell, scale)
        return super().training_key(cell, scale)

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        if cell.row == "Prototypical Network":
            return FewShotMetricTable.run_directories(self, cell, scale)
        return super().run_directories(cell, scale)

    def lr_schedule(self, cfg: dict):
        return FewShotMetricTable.lr_schedule(self, cfg) if cfg["base"] != "hyperrepr" else super().lr_schedule(cfg)

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        if cell.row == "Prototypical Network":
            return FewShotMetricTable.run_cell(self, cell, scale, runs_dir, engine, progress, device, progress_position)
        return super().run_cell(cell, scale, runs_dir, engine, progress, device, progress_position)

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        if cell.row == "Prototypical Network":
            return L2G_OMNIGLOT.estimated_seconds(cell, scale)
        return super().estimated_seconds(cell, scale)

    def paired_claims(self) -> list[tuple[str, str, str]]:
        return [("Hyper-Representation is competitive with Prototypical Networks", "Prototypical Network", "Hyper-Representation")]


BENCHMARK = HyperReprOmniglot()
