"""L2G Figure 3: t-SNE of support and query embeddings, ProtoNet vs L2G + ProtoNet on tiered-ImageNet
(``../shared/papers/l2g-learning-to-generalize.txt``, sec. 4: "the embedding after meta-training" and "at the meta-testing
time"; "L2G obtains a space that separates well between unseen classes").

The models are ``l2g-table2``'s 5-way 5-shot models, run 1 of 5 (the paper
shows one model; same training key, shared checkpoints). Columns: episodes
of the meta-training classes ("after meta-training") and of the meta-test
classes ("at meta-testing"), 15 queries per class. In place of judging a
scatter plot by eye, each cell records the silhouette coefficient of the
episode's support and query embeddings (the model's own feature space,
Euclidean, classes as clusters; :func:`metarepro.figures.silhouette`) on 100
fixed episodes, so
the claim "L2G separates the classes better" is checked on the same
episodes; the figure draws the t-SNE of episode 0 (stars: support, dots:
queries), as ``results/figures/l2g-fig3--<scale>.png``.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.families.fewshot_metric import FewShotMetricTable
from benchmarks.harness.base import Cell
from benchmarks.l2g.table2 import BENCHMARK as TABLE2
from metarepro import results as R
from methods.l2g import L2G

SPLITS = {"meta-training classes": "train", "meta-test classes": "test"}
EPISODES = 100


def embed(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The metric space of a ProtoNet or of an L2G-trained ProtoNet, eval mode: ``x (n, C, H, W) -> (n, d)``."""
    learner = model.model if isinstance(model, L2G) else model
    was = learner.training
    learner.eval()
    try:
        with torch.no_grad():
            return learner.backbone(x)
    finally:
        learner.train(was)


class L2GFig3(FewShotMetricTable):
    id = "l2g-fig3"
    title = "L2G, embedding separation on tiered-ImageNet 5-way 5-shot (Lee et al. 2019, Fig. 3), silhouette"
    paper = "l2g-learning-to-generalize.txt"
    metric = "silhouette of episode embeddings"
    higher_is_better = True
    dataset = "tiered_imagenet"
    rows = ("Prototypical Network", "L2G + Prototypical Network")
    columns = tuple(SPLITS)

    def config(self, cell: Cell, scale: str) -> dict:
        cfg = TABLE2.config(Cell(cell.row, "5-way 5-shot"), scale)
        return {**cfg, "benchmark": self.id, "column": cell.column, "trained_by": TABLE2.id, "runs": 1, "figure": "tsne",
                "test_episodes": EPISODES if scale != "smoke" else 6}

    def training_key(self, cell: Cell, scale: str) -> str:
        return TABLE2.training_key(Cell(cell.row, "5-way 5-shot"), scale)

    def trivial_score(self, cell: Cell, scale: str) -> float:
        """Classes that do not separate at all."""
        return 0.0

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        return TABLE2.estimated_seconds(Cell(cell.row, "5-way 5-shot"), scale) / TABLE2.runs

    def score_run(self, model, pools, cfg, device, state=None):
        from metarepro.figures import silhouette, tsne_2d

        split = SPLITS[cfg["column"]]
        episodes = self.fixed_episodes(pools[split], cfg, "test" if split == "test" else "val", cfg["test_episodes"])
        scores, shown = [], None
        for i, e in enumerate(episodes):
            e = e.to(device)
            z = embed(model, torch.cat([e.support_x, e.query_x])).cpu().numpy().astype(np.float64)
            n = len(e.support_y)
            scores.append(silhouette(z, torch.cat([e.support_y, e.query_y]).cpu().numpy()))
            if i == 0:
                labels = torch.cat([e.support_y, e.query_y]).cpu().numpy()
                shown = {"points": tsne_2d(z, seed=0).tolist(), "labels": labels.tolist(), "is_support": [k < n for k in range(len(z))]}
        return np.array(scores), {"tsne_episode_0": shown}

    def paired_claims(self) -> list[tuple[str, str, str]]:
        return [("L2G separates the classes better than ProtoNet (Fig. 3)", "Prototypical Network", "L2G + Prototypical Network")]

    def render_figures(self, scale: str) -> list:
        from metarepro.figures import embedding_panels

        records = {(r["row"], r["column"]): r for r in R.load_records(self.id) if r["scale"] == scale}
        panels = []
        for row in self.rows:
            for column in self.columns:
                r = records.get((row, column))
                if r and r.get("tsne_episode_0"):
                    t = r["tsne_episode_0"]
                    panels.append({"title": f"{row}\n{column} (silhouette {r['mean']:.2f})", "points": np.array(t["points"]),
                                   "labels": np.array(t["labels"]), "is_support": np.array(t["is_support"])})
        if not panels:
            return []
        return [embedding_panels(panels, self.figure_path(scale), f"t-SNE of 5-way 5-shot episodes, tiered-ImageNet ({scale} scale)")]


BENCHMARK = L2GFig3()
