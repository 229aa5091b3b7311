"""Goldblum et al. Table 8 (Appendix A.2): the regulariser sweep, R2-D2 and ResNet-12 backbones, ``R_FC`` and ``R_HV`` at
coefficients 0.02 / 0.05 / 0.1 (C/N included), tested with the linear (NN) and SVM heads, 5-way 1- and 5-shot on
mini-ImageNet and CIFAR-FS; accuracy %, one standard error printed.

Rows are ``"<backbone> / <regulariser> / <coefficient> / <head>"``; the two heads test the same trained model, and
each model is trained once per dataset (1- and 5-shot columns share it). Protocol: ``benchmarks.families.unraveling_images``.
"""

from __future__ import annotations

from benchmarks.families.unraveling_images import RegularisedTable
from benchmarks.harness.base import Cell
from benchmarks.unraveling.table3 import COLUMNS, parse_column

BACKBONES = {"R2-D2": "R2-D2", "ResNet-12": "MetaOptNet"}
ROWS = tuple(f"{b} / {reg} / {coef} / {head}" for b in BACKBONES for head in ("NN", "SVM") for reg in ("R_FC", "R_HV")
             for coef in ("0.02", "0.05", "0.1"))


class UnravelingTable8(RegularisedTable):
    id = "unraveling-table8"
    title = "Unraveling Meta-Learning Table 8: R_FC / R_HV coefficient sweep with NN and SVM heads, 5-way, accuracy %"
    rows = ROWS
    columns = COLUMNS

    def spec(self, cell: Cell) -> dict:
        backbone, reg, coefficient, head = cell.row.split(" / ")
        dataset, shots = parse_column(cell.column)
        return {"dataset": dataset, "backbone": BACKBONES[backbone], "training": f"classical-{reg[2:].lower()}",
                "coefficient": float(coefficient), "measure": "accuracy", "head": head, "test_shots": shots}


BENCHMARK = UnravelingTable8()
