"""Goldblum et al. Table 2: class separation (``R_FC``, ``R_HV``; lower is better) of meta-learned and classically trained
feature extractors on CIFAR-FS and mini-ImageNet. The paper prints the values without intervals.

The four models per dataset are Tables 1 / 6's (``benchmarks.unraveling.cross_heads``: same trainings, shared runs
folder on mini-ImageNet); each cell's scores are the metric on 100 batches of the 64 training classes x 2 images
(``benchmarks.families.unraveling_images``), so its interval is over batches of one trained model.
"""

from __future__ import annotations

from benchmarks.families.unraveling_images import UnravelingImages
from benchmarks.harness.base import Cell
from benchmarks.unraveling.cross_heads import MODELS

COLUMNS = {"CIFAR-FS R_FC": ("cifar_fs", "R_FC"), "CIFAR-FS R_HV": ("cifar_fs", "R_HV"),
           "mini-ImageNet R_FC": ("mini_imagenet", "R_FC"), "mini-ImageNet R_HV": ("mini_imagenet", "R_HV")}


class UnravelingTable2(UnravelingImages):
    id = "unraveling-table2"
    title = "Unraveling Meta-Learning Table 2: feature clustering R_FC and hyperplane variation R_HV (lower: better separated)"
    metric = "R_FC / R_HV"
    higher_is_better = False
    rows = tuple(MODELS)
    columns = tuple(COLUMNS)
    datasets = ("mini_imagenet", "cifar100")  # data store names (CIFAR-FS is a split of cifar100)

    def spec(self, cell: Cell) -> dict:
        backbone, training = MODELS[cell.row]
        dataset, measure = COLUMNS[cell.column]
        return {"dataset": dataset, "backbone": backbone, "training": training, "measure": measure}

    def paired_claims(self) -> list[tuple]:
        # sec. 4.1: "the meta-learned models attain lower values"
        return [(f"{b}-M separates classes better than {b}-C (sec. 4.1)", f"{b}-C", f"{b}-M") for b in ("MetaOptNet", "R2-D2")]


BENCHMARK = UnravelingTable2()
