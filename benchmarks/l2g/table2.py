"""L2G Table 2: tiered-ImageNet 5/10-way 1/5-shot (``../shared/papers/l2g-learning-to-generalize.txt``, sec. 4).

Protocol as :mod:`benchmarks.l2g.table1` on tiered-ImageNet (Ren et al. 2018:
351 / 97 / 160 classes, 84x84; the paper follows "[21]" for its settings).
The paper's convergence plots (``l2g-fig2``) and embedding plots
(``l2g-fig3``) reuse these cells' trained models.
"""

from __future__ import annotations

from benchmarks.families.fewshot_metric import FewShotMetricTable
from benchmarks.l2g.table1 import COLUMNS, QUICK, SMOKE

ROWS = ("MAML", "Prototypical Network", "L2G + Prototypical Network", "Relation Network", "L2G + Relation Network")


class L2GTable2(FewShotMetricTable):
    id = "l2g-table2"
    title = "L2G, tiered-ImageNet few-shot classification (Lee et al. 2019, Table 2), accuracy %"
    paper = "l2g-learning-to-generalize.txt"
    dataset = "tiered_imagenet"
    rows = ROWS
    columns = COLUMNS
    scale_overrides = {"smoke": SMOKE, "quick": QUICK}
    #: the cells the columns-in-turn rotation gave it, kept (L2G + Relation Network already in 5-way 1-shot)
    smoke_column = {"MAML": "5-way 1-shot", "Prototypical Network": "5-way 5-shot", "L2G + Prototypical Network": "10-way 1-shot",
                    "Relation Network": "10-way 5-shot", "L2G + Relation Network": "5-way 1-shot"}

    def paired_claims(self) -> list[tuple[str, str, str]]:
        return [("L2G improves Prototypical Networks (sec. 4)", "Prototypical Network", "L2G + Prototypical Network"),
                ("L2G improves Relation Networks (sec. 4)", "Relation Network", "L2G + Relation Network")]


BENCHMARK = L2GTable2()
