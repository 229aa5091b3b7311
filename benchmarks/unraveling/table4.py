"""Goldblum et al. Table 4: ``R_FC`` and ``R_HV`` of MAML models trained for 1-shot and 5-shot (MAML-1, MAML-5) and of a
classically trained model of the same architecture (MAML-C), on mini-ImageNet training data; lower is better, no
intervals printed (sec. 4.6: "MAML exhibits even worse feature separation than a classically trained model").

MAML's Conv-4 (32 filters) with Finn et al.'s mini-ImageNet protocol; the features are its head's inputs (the flattened
last block). MAML-C: the same trunk with a 64-way head, Appendix A.2's classical training
(``benchmarks.families.unraveling_images``). The printed values are out of the paper's formulas' reach (R_HV <= 1):
the ``code-metrics`` variant, the released script's arithmetic, is the one to compare with them (``table2``'s finding).
"""

from __future__ import annotations

from benchmarks.families.unraveling_images import CODE_METRICS, CODE_METRICS_NOTE, UnravelingImages
from benchmarks.harness.base import Cell

ROWS = {"MAML-1": ("maml", 1), "MAML-5": ("maml", 5), "MAML-C": ("classical", None)}


class UnravelingTable4(UnravelingImages):
    id = "unraveling-table4"
    title = "Unraveling Meta-Learning Table 4: R_FC and R_HV of MAML and classically trained Conv-4 features, mini-ImageNet"
    metric = "R_FC / R_HV"
    higher_is_better = False
    variants = {CODE_METRICS: CODE_METRICS_NOTE}
    rows = tuple(ROWS)
    columns = ("R_FC", "R_HV")

    def spec(self, cell: Cell) -> dict:
        training, shots = ROWS[cell.row]
        return {"dataset": "mini_imagenet", "backbone": "Conv-4", "training": training, "train_shots": shots, "measure": cell.column}

    def paired_claims(self) -> list[tuple]:
        # sec. 4.6: MAML separates classes worse than classical training (a "no" here agrees with the paper's finding)
        return [(f"{row} separates classes better than MAML-C (sec. 4.6 says it does not)", "MAML-C", row) for row in ("MAML-1", "MAML-5")]


BENCHMARK = UnravelingTable4()
