"""Goldblum et al. Fig. 2: features of three mini-ImageNet test classes (100 images each) from MAML, ProtoNet and a
classically trained model of the same Conv-4, projected on their first two LDA directions ("the meta-learned networks
produce better class separation"). A figure, no numbers printed.

The number the suite puts on each panel is what it shows: ``R_FC`` of the 2-D projection (LDA fitted on 100 images a class,
scored on 100 others: ``lda_separation``), over 20 draws of three test
classes (the first draw is the one drawn). Models [choice: the caption names "identical architectures (4 convolutional
layers)" only]: MAML's 32-filter Conv-4 trained 5-way 1-shot with Finn et al.'s protocol; the same trunk meta-learned
with the prototype head under MetaOptNet's protocol; the same trunk trained classically (Appendix A.2). Sec. 4.6 and
Table 4 find MAML's separation *worse* than classical training's, against this figure's caption: the two claims are
checked side by side.
"""

from __future__ import annotations

from benchmarks.families.unraveling_images import UnravelingImages
from benchmarks.harness.base import Cell

ROWS = {"MAML": ("maml", 1), "ProtoNet": ("proto", None), "Classical": ("classical", None)}


class UnravelingFig2(UnravelingImages):
    id = "unraveling-fig2"
    title = "Unraveling Meta-Learning Fig. 2: LDA projections of MAML, ProtoNet and classical Conv-4 features, mini-ImageNet test classes"
    metric = "R_FC of the 2-D LDA projection"
    higher_is_better = False
    rows = tuple(ROWS)
    columns = ("LDA",)

    def spec(self, cell: Cell) -> dict:
        training, shots = ROWS[cell.row]
        return {"dataset": "mini_imagenet", "backbone": "Conv-4", "training": training, "train_shots": shots, "measure": "lda"}

    def paired_claims(self) -> list[tuple]:
        return [(f"{row} separates test classes better than classical training (Fig. 2)", "Classical", row) for row in ("MAML", "ProtoNet")]

    def render_figures(self, scale: str) -> list:
        from benchmarks.unraveling.figures import lda_panels

        return lda_panels(self, scale)


BENCHMARK = UnravelingFig2()
