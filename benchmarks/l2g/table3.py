"""L2G Table 3: any-way any-shot classification on mini-ImageNet (``../shared/papers/l2g-learning-to-generalize.txt``, sec. 4).

"The number of shots randomly varies between 1, 5, 10-shots for each
episode, and similarly, the number of classes at each episode randomly
varies between 5, 7, 10-ways"; L2G fixes "the first task to a 5-shot
classification problem and the generalization task to contain any-shot
any-way" problems; ProtoNet is trained the same way; at test the settings
are changed "iteratively" over 600 episodes (episode ``i`` uses setting ``i
mod n``). Which way the fixed first task has, and which shot the any-way
column fixes, the paper does not say: 5-way (the tables' smallest way) and
5-shot (:func:`benchmarks.families.fewshot_metric.parse_setting` shows why) [choice].
Training draws each update's setting uniformly.
"""

from __future__ import annotations

from benchmarks.families.fewshot_metric import FewShotMetricTable
from benchmarks.harness.base import Cell
from benchmarks.l2g.table1 import QUICK, SMOKE


class L2GTable3(FewShotMetricTable):
    id = "l2g-table3"
    title = "L2G, mini-ImageNet any-way any-shot classification (Lee et al. 2019, Table 3), accuracy %"
    paper = "l2g-learning-to-generalize.txt"
    dataset = "mini_imagenet"
    rows = ("Prototypical Networks", "L2G + Prototypical Networks")
    columns = ("Any-shot", "Any-way", "Any-shot & Any-way")
    scale_overrides = {"smoke": SMOKE, "quick": QUICK}

    def adjust_config(self, cfg: dict, cell: Cell, scale: str) -> dict:
        if cfg["wrapper"] == "l2g":
            cfg["first_task"] = [5, 5]
        return cfg

    def paired_claims(self) -> list[tuple[str, str, str]]:
        return [("L2G improves Prototypical Networks on any-way any-shot tasks (Table 3)", "Prototypical Networks",
                 "L2G + Prototypical Networks")]


BENCHMARK = L2GTable3()
