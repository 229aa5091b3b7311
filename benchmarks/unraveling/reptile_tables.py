"""Goldblum et al. Tables 5 and 9 and Fig. 3: Reptile with weight clustering (sec. 5.1, Algorithm 2) on mini-ImageNet
5-way 1- and 5-shot, against Reptile, first-order MAML and a classically trained model of the same Conv-4.

* Table 5: Classical, FOMAML, Reptile, W-Clustering (coefficient 5.0e-5, the best of Table 9); accuracy % on 100,000
  test tasks as printed. Its Reptile row is Nichol et al.'s transductive Reptile (49.97 +/- 0.32, 65.99 +/- 0.58: their
  95% intervals) and its FOMAML row Finn et al.'s (48.07 +/- 1.75, 63.15 +/- 0.91, 95%): both ``cited``.
* Table 9: the coefficient sweep; its "0 (Reptile)" row is Nichol et al.'s again (``cited``).
* Fig. 3: the filter-normalised distance the weights travel while fine-tuning on 1,000 test tasks, Reptile against
  W-Clustering (a histogram; no number printed: the claim is that W-Clustering's are shorter).

Reptile and W-Clustering are the same lock-step code (``methods.weight_clustering``), alpha 0 and alpha > 0, so the
comparison isolates the regulariser; how it relates to Nichol et al.'s sequential Adam Reptile (the cited row) is in
that module's docstring. The classical model is fine-tuned with the MAML-style head (all weights plus a new linear
layer) [choice: the paper does not say how]. Protocol settings: ``benchmarks.families.unraveling_images``.
"""

from __future__ import annotations

from benchmarks.families.unraveling_images import UnravelingImages
from benchmarks.harness.base import Cell

COLUMNS = ("1-shot", "5-shot")
BEST_COEFFICIENT = 5.0e-5
#: Table 9's rows -> the printed coefficient (the product 2 x alpha, sec. 5.1)
SWEEP = {"0 (Reptile)": 0.0, "1.0e-05": 1.0e-5, "2.5e-05": 2.5e-5, "5.0e-05": 5.0e-5, "7.5e-05": 7.5e-5, "1.0e-04": 1.0e-4,
         "2.5e-04": 2.5e-4, "5.0e-04": 5.0e-4}


def shots(column: str) -> int:
    return int(column.split("-")[0])


class ReptileTable(UnravelingImages):
    columns = COLUMNS

    def reptile(self, coefficient: float, column: str, measure: str = "accuracy") -> dict:
        return {"dataset": "mini_imagenet", "backbone": "Conv-4", "training": "reptile", "coefficient": coefficient, "measure": measure,
                "head": "own", "test_shots": shots(column)}


class UnravelingTable5(ReptileTable):
    id = "unraveling-table5"
    title = "Unraveling Meta-Learning Table 5: Reptile with weight clustering, mini-ImageNet 5-way, accuracy %"
    rows = ("Classical", "FOMAML", "Reptile", "W-Clustering")

    def config(self, cell: Cell, scale: str) -> dict:
        cfg = super().config(cell, scale)
        return {**cfg, "test_episodes": 100_000} if scale == "paper" else cfg  # "a sample of 100,000 ... tasks" (sec. 5.1)

    def spec(self, cell: Cell) -> dict:
        if cell.row == "Classical":
            return {"dataset": "mini_imagenet", "backbone": "Conv-4", "training": "classical", "measure": "accuracy", "head": "MAML",
                    "test_shots": shots(cell.column)}
        if cell.row == "FOMAML":
            return {"dataset": "mini_imagenet", "backbone": "Conv-4", "training": "fomaml", "train_shots": shots(cell.column),
                    "measure": "accuracy", "head": "own", "test_shots": shots(cell.column)}
        return self.reptile(0.0 if cell.row == "Reptile" else BEST_COEFFICIENT, cell.column)

    def paired_claims(self) -> list[tuple]:
        return [("Weight clustering improves Reptile (sec. 5.1)", "Reptile", "W-Clustering"),
                ("W-Clustering beats FOMAML (sec. 5.1)", "FOMAML", "W-Clustering"),
                ("W-Clustering beats classical training (sec. 5.1)", "Classical", "W-Clustering")]


class UnravelingTable9(ReptileTable):
    id = "unraveling-table9"
    title = "Unraveling Meta-Learning Table 9: weight-clustering coefficients for Reptile, mini-ImageNet 5-way, accuracy %"
    rows = tuple(SWEEP)

    def spec(self, cell: Cell) -> dict:
        return self.reptile(SWEEP[cell.row], cell.column)

    def paired_claims(self) -> list[tuple]:
        return [(f"coefficient {row} improves Reptile (A.3)", "0 (Reptile)", row) for row in list(SWEEP)[1:]]


class UnravelingFig3(ReptileTable):
    id = "unraveling-fig3"
    title = "Unraveling Meta-Learning Fig. 3: filter-normalised distance travelled in fine-tuning, Reptile vs W-Clustering, mini-ImageNet"
    metric = "filter-normalised distance"
    higher_is_better = False
    rows = ("Reptile", "W-Clustering")

    def config(self, cell: Cell, scale: str) -> dict:
        cfg = super().config(cell, scale)
        return {**cfg, "test_episodes": 1000} if scale == "paper" else cfg  # "samples of 1,000 1-shot and 5-shot ... tasks"

    def spec(self, cell: Cell) -> dict:
        return self.reptile(0.0 if cell.row == "Reptile" else BEST_COEFFICIENT, cell.column, measure="distance")

    def paired_claims(self) -> list[tuple]:
        return [("W-Clustering's weights travel less in fine-tuning (sec. 5.1)", "Reptile", "W-Clustering")]

    def render_figures(self, scale: str) -> list:
        from benchmarks.unraveling.figures import distance_histograms

        return distance_histograms(self, scale)


TABLE5 = UnravelingTable5()
TABLE9 = UnravelingTable9()
FIG3 = UnravelingFig3()
