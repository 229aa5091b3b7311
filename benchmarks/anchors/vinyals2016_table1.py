"""Matching Networks and the baseline classifier on Omniglot (Vinyals et al. 2016, Table 1): the anchor of the classical
path (a classically trained extractor tested by nearest neighbour, with and without fine-tuning) and of
``methods.matchingnet``.

Published numbers: arXiv:1606.04080v1, Table 1 ("Results on the Omniglot dataset"), read from an image of the table
(``results/published/vinyals2016-table1.json`` says where); no intervals are printed and no number of test episodes is
stated. The paper is not in ``../shared/papers`` and its text was not reachable here, so the protocol below rests on
what the table's columns say ("Matching Fn", "Fine Tune"), on the MAML paper's description of Vinyals' protocol (1200
training characters, rotations by multiples of 90 degrees as new classes; the baseline classifier's last layer feeds a
softmax) and on our choices, each marked [choice]:

=========================  =====================================================================
setting                    value
=========================  =====================================================================
data                       Vinyals' split as the suite has it (``splits/omniglot/vinyals``: Snell et al.'s
                           files, 1028 training + 172 validation characters = Vinyals' 1200, 423 test), each
                           character at 0/90/180/270 degrees a class, 28x28
backbone                   Conv-4, 64 filters (4 x conv3x3-BN-ReLU-pool, 64 features: Vinyals sec. 4.1)
Pixels                     cosine nearest neighbour on the raw 784 pixels as every row sees them (28x28
                           nearest-neighbour resize, paper = 1, ink = 0), no training. Known deviation: the
                           printed row depends on preprocessing the paper does not state. On 300 test episodes
                           (5w1s / 20w1s / 5w5s, printed 41.7 / 26.7 / 63.2): these images 35.9 / 16.3 / 51.8;
                           inverted (ink = 1) 45.5 / 26.0 / 68.4; LANCZOS-resized 41.3 / 21.9 / 62.2, inverted
                           49.4 / 30.2 / 73.5; box-resized 40.8 / 21.2 / 61.1. No one preprocessing matches all
                           columns; variants ``ink = 1`` and ``lanczos`` keep two of them visible. The main
                           protocol is not chosen after the fact to match
Baseline classifier        the backbone trained classically on every training class (cross-entropy, Appendix
                           A.2 of Goldblum et al.'s Nesterov SGD recipe as ``unraveling-omniglot-heads``
                           compresses it) [choice: Vinyals give no schedule]; tested by cosine nearest
                           neighbour (the support example of highest cosine similarity) on its features
Fine Tune = Y              the backbone and a zero-initialised softmax layer fine-tuned by plain SGD on the
                           episode's support (``methods.finetune_head``), (step size, steps) chosen on
                           validation episodes from {0.01, 0.1, 0.4} x {10, 50} [choice: the protocol is not
                           recoverable here]; "Cosine": nearest neighbour on the fine-tuned features;
                           "Softmax": the fine-tuned layer's prediction
Matching Nets              ``methods.matchingnet`` without full context embeddings [choice], eq. 2's cosine as
                           written, trained on episodes of the column's ways and shots, 15 queries per class (at
                           5 shots support and queries are all 20 drawings of a class), Adam 1e-3; one model per
                           column. Variant ``support-normalised``: the query left unnormalised (Antoniou's
                           re-implementation); it is what reproduces 20-way 1-shot (``MATCHING_FINDING``)
Matching Nets, Fine Tune   the trained embedding fine-tuned as above, then matched
budget                     ``paper``: 10,000 updates [choice], ``quick`` 1,000; selection on validation accuracy
test                       1000 fixed episodes per column [choice], 15 queries per class
=========================  =====================================================================
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.families.fewshot_metric import omniglot_pools
from benchmarks.harness.base import Benchmark, Cell, CellResult, way_shot
from benchmarks.unraveling.omniglot_heads import classical_lr_factor_compressed
from metarepro.episodes import Episode, task_rng
from metarepro.journal import ScoreJournal, state_digest
from metarepro.results import config_hash
from metarepro.selection import best_finite, recorded_grid
from metarepro.trainer import EarlyStopping, load_checkpoint, train
from methods.backbones import Conv4
from methods.classical import ClassicalClassifier, LabelledBatch, nesterov_sgd
from methods.finetune_head import finetune, finetuned_features
from methods.matchingnet import MatchingNet

PIXELS, BASELINE, BASELINE_FT, BASELINE_SOFTMAX_FT = ("Pixels", "Baseline classifier", "Baseline classifier (fine-tuned)",
                                                      "Baseline classifier (softmax, fine-tuned)")
MATCHING, MATCHING_FT = "Matching Nets", "Matching Nets (fine-tuned)"
INK_ONE, LANCZOS, SUPPORT_NORMALISED = "ink = 1", "lanczos", "support-normalised"
PIXELS_FINDING = ("the printed pixel baseline depends on preprocessing the paper does not state: on the 1000 test episodes the "
                  "stored images give 35.84 +/- 0.52 / 51.60 +/- 0.63 / 16.39 +/- 0.22 / 29.24 +/- 0.30 (5w1s / 5w5s / 20w1s / "
                  "20w5s), inverted (variant ink = 1) 45.30 / 68.80 / 26.05 / 47.80, LANCZOS-resized (variant lanczos) 41.52 / "
                  "62.19 / 21.95 / 41.35, against 41.7 / 63.2 / 26.7 / 42.6 printed; no one preprocessing matches every column "
                  "(module docstring)")
MATCHING_FINDING = ("not reproduced with eq. 2's cosine as written (query and support normalised): 66.38 +/- 0.41 against 93.8 "
                    "(one seed, 10,000 updates; validation peaked at 68.2 % at update 3,000, the training loss ended at 2.30, "
                    "ln 20 = 3.00): with logits in [-1, 1] a 20-way softmax cannot sharpen. Reproduced by the variant "
                    "support-normalised (the query's norm left in, a learned temperature, as Antoniou's widely used "
                    "re-implementation computes it): 93.99 +/- 0.18, within (same seed, episodes and budget; validation 94.8 % "
                    "at update 8,500; the training loss ended at 0.06). Knagg's PyTorch re-implementation reports the same "
                    "failure of the cosine as written (75.6 at 20-way 1-shot). The published numbers fit an unnormalised "
                    "query, not eq. 2 as printed; the main protocol stays eq. 2, the variant shows what reproduces it")

MATCHING_5WAY_FINDING = ("not reproduced with eq. 2's cosine as written, for the reason MATCHING_FINDING gives at 20 ways: 5-way "
                         "1-shot 85.71 +/- 0.60 against 98.1 (one seed, 10,000 updates; validation best at update 7,000; the "
                         "training loss ended at 1.10, ln 5 = 1.61), fine-tuned 84.79 +/- 0.61 against 97.9; 5-way 5-shot "
                         "90.63 +/- 0.44 against 98.9 (validation best at update 8,000, the training loss ended at 1.07), "
                         "fine-tuned 89.96 +/- 0.45 against 98.7 (its grid chose its smallest rate, (0.01, 10): 92.43 on "
                         "validation against 91.13 at (0.01, 50); 0.4 diverged); Knagg's "
                         "re-implementation of the cosine reports 92.0 / 93.2. The support-normalised variant gives 96.86 +/- 0.28 "
                         "at 5-way 1-shot: far "
                         "closer, still 1.2 points below at this budget (one seed, 10,000 updates; Vinyals et al. state none)")
BASELINE_FINDING = ("the classical baseline here is far stronger than the paper's: nearest neighbour on its features 97.29 +/- "
                    "0.25 / 99.38 +/- 0.07 (5-way 1 / 5 shots) against 80.0 / 95.0 and 92.26 +/- 0.21 / 97.68 +/- 0.08 (20-way) "
                    "against 69.5 / 89.1, fine-tuned 97.18 +/- 0.25 / 99.39 +/- 0.07 against 82.3 / 98.4, its fine-tuned "
                    "softmax 97.39 +/- 0.24 / 99.51 +/- 0.07 against 86.0 / 97.6 (5-way; one seed, one trained model for all). "
                    "Vinyals et al. give no recipe for their baseline; this one is a BatchNorm "
                    "Conv-4 trained by Goldblum et al.'s Nesterov-SGD schedule over all 4,112 rotated training classes and "
                    "selected on validation episodes (module docstring), and such baselines are known to rival meta-learners "
                    "(the question of Goldblum et al.'s Table 1). Fine-tuning does not help it: the grid's smallest step wins, "
                    "with its fewest steps (0.01, 10) except the softmax at 5-way 5-shot (0.01, 50: 99.54 against 99.53 on "
                    "validation), and a step of 0.4 (at 1 shot also 0.1) gives non-finite scores on validation episodes")
CITED = ("MANN (no conv)", "Convolutional Siamese Net", "Convolutional Siamese Net (fine-tuned)")
COLUMNS = ("5-way 1-shot", "5-way 5-shot", "20-way 1-shot", "20-way 5-shot")
#: (step size, steps) of the fine-tuning rows, chosen on validation episodes: a new softmax layer from zero needs more steps
#: than the MAML head's grid gives (measured on the fixtures: 10 steps leave 20-way softmax fine-tuning at chance)
FINETUNE_GRID = [(lr, steps) for lr in (0.01, 0.1, 0.4) for steps in (10, 50)]
PROTOCOL = {"filters": 64, "iterations": 10_000, "classical_batch": 128, "classical_lr": 0.1, "classical_weight_decay": 1e-4,
            "matching_lr": 1e-3, "val_episodes": 200, "test_episodes": 1000, "val_seed": 1, "test_seed": 2016, "data": "real",
            "finetune_grid": FINETUNE_GRID}
SCALES = {"paper": {}, "quick": {"iterations": 1000, "val_episodes": 100},
          "smoke": {"iterations": 40, "test_episodes": 8, "val_episodes": 2, "filters": 16, "classical_batch": 16, "data": "fixture",
                    "finetune_grid": [(0.1, 20)]}}


def cosine_nearest_neighbour(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
    """``(q, ways)`` scores: per class, the highest cosine similarity of the query to that class's support examples
    (so the argmax is the label of the nearest support example). ``support (n, d)``, ``labels (n,)``, ``query (q, d)``."""
    similarity = F.normalize(query, dim=1) @ F.normalize(support, dim=1).T  # (q, n)
    scores = torch.full((len(query), ways), -2.0, dtype=similarity.dtype, device=similarity.device)
    return scores.scatter_reduce(1, labels.expand(len(query), -1), similarity, reduce="amax")


def query_accuracy(scores: torch.Tensor, query_y: torch.Tensor) -> float:
    """Accuracy % of ``scores (q, ways)``; NaN where they are not all finite (a diverged fine-tuning, which argmax would
    still score, near chance)."""
    if not bool(torch.isfinite(scores).all()):
        return float("nan")
    return 100.0 * float((scores.argmax(1) == query_y).float().mean())


class Vinyals2016Table1(Benchmark):
    id = "vinyals2016-table1"
    title = "Matching Networks and the baseline classifier on Omniglot (Vinyals et al. 2016, Table 1), accuracy %"
    paper = ""  # not in ../shared/papers: the published file names the source
    metric = "accuracy %"
    higher_is_better = True
    rows = (PIXELS, BASELINE, BASELINE_FT, BASELINE_SOFTMAX_FT, MATCHING, MATCHING_FT)
    cited_rows = CITED
    columns = COLUMNS
    requires_data = "omniglot"
    known_deviations = {**{(PIXELS, column): PIXELS_FINDING for column in COLUMNS}, (MATCHING, "20-way 1-shot"): MATCHING_FINDING,
                        (MATCHING, "5-way 1-shot"): MATCHING_5WAY_FINDING, (MATCHING_FT, "5-way 1-shot"): MATCHING_5WAY_FINDING,
                        (MATCHING, "5-way 5-shot"): MATCHING_5WAY_FINDING, (MATCHING_FT, "5-way 5-shot"): MATCHING_5WAY_FINDING,
                        **{(BASELINE_SOFTMAX_FT, column): BASELINE_FINDING for column in ("5-way 1-shot", "5-way 5-shot")},
                        **{(BASELINE, column): BASELINE_FINDING for column in COLUMNS},
                        **{(BASELINE_FT, column): BASELINE_FINDING for column in ("5-way 1-shot", "5-way 5-shot")}}
    variants = {INK_ONE: "Pixels: the images inverted (ink = 1, paper = 0) before the cosine nearest neighbour",
                LANCZOS: "Pixels: the 105 px originals resized to 28 px with LANCZOS on greyscale (metarepro.data.omniglot) "
                         "instead of nearest neighbour",
                SUPPORT_NORMALISED: "Matching Nets: the attention's similarity divides by the support embedding's norm only "
                                    "(Antoniou's re-implementation), not the query's (methods.matchingnet)"}

    def variant_applies(self, row: str, column: str, variant: str) -> bool:
        return row in (MATCHING, MATCHING_FT) if variant == SUPPORT_NORMALISED else row == PIXELS

    def config(self, cell: Cell, scale: str) -> dict:
        ways, shots = way_shot(cell.column)
        training = "none" if cell.row == PIXELS else "classical" if cell.row.startswith("Baseline") else "matching"
        queries = 5 if shots + 15 > 20 else 15
        cfg = {"benchmark": self.id, "row": cell.row, "column": cell.column, "scale": scale, "training": training,
               "ways": ways, "shots": shots, "queries": queries, "train_seed": cell.seed, **PROTOCOL, **SCALES[scale]}
        if cell.variant == INK_ONE:
            cfg["pixels"] = "ink=1"
        elif cell.variant == LANCZOS:
            cfg["resample"] = "lanczos"
        elif cell.variant == SUPPORT_NORMALISED:
            cfg["similarity"] = SUPPORT_NORMALISED  # absent from the main protocol's config, which stays eq. 2's cosine
        if training != "matching":  # one baseline training serves every column; pixels train nothing
            cfg.update(train_ways=None, train_shots=None)
        else:
            cfg.update(train_ways=ways, train_shots=shots)
        return cfg

    def training_key(self, cell: Cell, scale: str) -> str:
        cfg = self.config(cell, scale)
        training = {k: v for k, v in cfg.items() if k not in ("benchmark", "row", "column", "ways", "shots", "queries",
                                                               "test_episodes", "test_seed")}
        if cfg["training"] == "matching":
            training["queries"] = cfg["queries"]
        return f"{cfg['training']}-{config_hash(training)}"

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        return sum(self.estimated_train_test(cell, scale))

    def estimated_train_test(self, cell: Cell, scale: str) -> tuple[float, float]:
        cfg = self.config(cell, scale)
        # ~1.6 ms per 28 px image forward and backward through Conv-4 at 64 filters on one thread: the Matching Nets 20-way
        # 1-shot record trained 320 images an update at 0.516 s (5,159 s for 10,000 updates, session 16)
        image_s = 0.0016 * cfg["filters"] / 64
        images = {"none": 0, "classical": cfg["classical_batch"], "matching": cfg["ways"] * (cfg["shots"] + cfg["queries"])}
        test_s = cfg["test_episodes"] * 0.005
        if "fine-tuned" in cell.row:
            # fine-tuning dominates: every support image, every step, of each grid point's validation episodes and then of
            # the test episodes, at the grid's mean steps (the choice is unknown before the run). Measured (session 17):
            # 416 s at 5-way 1-shot and 1,931 s at 5-way 5-shot, where the grid chose 10 steps and this formula at 10 steps
            # gives 391 s and 1,955 s (~1.7 ms an image-step); at the mean 30 steps it projects 566 s and 2,810 s
            steps = [s for _, s in cfg["finetune_grid"]]
            image_steps = cfg["ways"] * cfg["shots"] * (cfg["val_episodes"] * sum(steps) + cfg["test_episodes"] * np.mean(steps))
            test_s += 0.0017 * (cfg["filters"] / 64) * image_steps
        return cfg["iterations"] * image_s * images[cfg["training"]], float(test_s)

    def trivial_score(self, cell: Cell, scale: str) -> float:
        return 100.0 / way_shot(cell.column)[0]

    def dataset_digest(self) -> str | None:
        from metarepro.data.sources import OMNIGLOT

        return ",".join(f.content_sha256 for f in OMNIGLOT.files)

    # -- models ------------------------------------------------------------------------------------------------------------
    def build_model(self, cfg: dict, classes: int = 1) -> nn.Module:
        backbone = Conv4(1, cfg["filters"], pool=True)
        if cfg["training"] == "matching":
            return MatchingNet(backbone, similarity=cfg.get("similarity", "cosine"))
        return ClassicalClassifier(backbone, cfg["filters"], classes)

    def protocol_model(self, cell: Cell, scale: str) -> nn.Module | None:
        cfg = self.config(cell, scale)
        return None if cfg["training"] == "none" else self.build_model(cfg)

    def scored_checkpoint(self, cell: Cell, scale: str):
        return None if cell.row == PIXELS else super().scored_checkpoint(cell, scale)

    def episodes(self, pool, cfg: dict, split: str, count: int) -> list[Episode]:
        seed = cfg["test_seed"] if split == "test" else cfg["val_seed"]
        return [pool.sample(task_rng(seed, split, i), cfg["ways"], cfg["shots"], cfg["queries"]) for i in range(count)]

    def trained_backbone(self, cfg: dict, pools: dict, runs_dir: Path, key: str, progress: bool, device: str, position):
        torch.manual_seed(cfg["train_seed"])
        model = self.build_model(cfg, len(pools["train"])).to(device)
        classical = cfg["training"] == "classical"
        if classical:
            optimizer = nesterov_sgd(model.parameters(), lr=cfg["classical_lr"], weight_decay=cfg["classical_weight_decay"])
            schedule = lambda i: classical_lr_factor_compressed(i, cfg["iterations"])  # noqa: E731
        else:
            optimizer, schedule = torch.optim.Adam(model.parameters(), lr=cfg["matching_lr"]), None
        val_cfg = {**cfg, "ways": 5, "shots": 1, "queries": 15} if classical else cfg  # the baseline selects on 5-way 1-shot
        val = self.episodes(pools["val"], val_cfg, "val", cfg["val_episodes"])
        every = max(1, cfg["iterations"] // 20)

        def validate() -> float:
            scorer = (lambda e: self.nearest_neighbour(model.backbone, e, device)) if classical else (lambda e: self.matching(model, e, device))
            return float(100.0 - np.mean([scorer(e) for e in val]))

        def batch(i: int):
            rng = task_rng(cfg["train_seed"], "train", i)
            if classical:
                classes = rng.integers(len(pools["train"]), size=cfg["classical_batch"])
                x = torch.from_numpy(pools["train"].images(classes, rng.integers(20, size=(len(classes), 1)))).float().div_(255.0)
                return LabelledBatch(x, torch.from_numpy(classes)).to(device)
            return pools["train"].sample(rng, cfg["train_ways"], cfg["train_shots"], cfg["queries"]).to(device)

        early = EarlyStopping(validate=validate, every=every, patience=cfg["iterations"], best_path=Path(runs_dir) / key / "best.pt")
        state = train(model, optimizer, batch, cfg["iterations"], Path(runs_dir) / key / "checkpoint.pt", key, checkpoint_every=every,
                      log_every=max(1, every // 10), progress=progress, desc=f"{cfg['training']} [{cfg['scale']}]",
                      meta={"benchmark": self.id, "scale": cfg["scale"]}, progress_position=position, early_stopping=early,
                      lr_schedule=schedule)
        if early.best_path.exists():
            model.load_state_dict(load_checkpoint(early.best_path, None)["model"])
        return model, state

    # -- evaluation -----------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def nearest_neighbour(self, backbone: nn.Module | None, e: Episode, device: str, state=None, invert: bool = False) -> float:
        """Accuracy % of cosine nearest neighbour on ``backbone``'s features (pixels if None, ``invert``: ink = 1; a
        fine-tuned ``state``)."""
        e = e.to(device)
        if backbone is None:
            s, q = e.support_x.flatten(1), e.query_x.flatten(1)
            if invert:
                s, q = 1 - s, 1 - q
        elif state is not None:
            s, q = finetuned_features(backbone, state, e.support_x), finetuned_features(backbone, state, e.query_x)
        else:
            was = backbone.training
            backbone.eval()
            s, q = backbone(e.support_x), backbone(e.query_x)
            backbone.train(was)
        scores = cosine_nearest_neighbour(s, e.support_y, q, int(e.support_y.max()) + 1)
        return query_accuracy(scores, e.query_y)

    @torch.no_grad()
    def matching(self, model: MatchingNet, e: Episode, device: str, state=None) -> float:
        e = e.to(device)
        was = model.training
        model.eval()
        try:
            if state is None:
                return 100.0 * float(model.score(e)[0])
            from methods.matchingnet import cosine_attention, label_distribution

            s, q = finetuned_features(model.backbone, state, e.support_x), finetuned_features(model.backbone, state, e.query_x)
            probs = label_distribution(cosine_attention(q, s, similarity=model.similarity), e.support_y, int(e.support_y.max()) + 1)
            return query_accuracy(probs, e.query_y)
        finally:
            model.train(was)

    def score_episode(self, row: str, model, e: Episode, device: str, lr_steps=None, invert: bool = False) -> float:
        backbone = None if model is None else model.backbone
        if row == PIXELS:
            return self.nearest_neighbour(None, e, device, invert=invert)
        if row == BASELINE:
            return self.nearest_neighbour(backbone, e, device)
        if row == MATCHING:
            return self.matching(model, e, device)
        e = e.to(device)
        state = finetune(backbone, e.support_x, e.support_y, int(e.support_y.max()) + 1, lr_steps[1], lr_steps[0])
        if row == BASELINE_FT:
            return self.nearest_neighbour(backbone, e, device, state)
        if row == MATCHING_FT:
            return self.matching(model, e, device, state)
        logits = F.linear(finetuned_features(backbone, state, e.query_x), state[2], state[3])  # softmax, fine-tuned
        return query_accuracy(logits, e.query_y)

    def score(self, cell: Cell, cfg: dict, model, pools: dict, device: str, journal: ScoreJournal | None = None,
              progress: bool = False, lr_steps: tuple[float, int] | None = None) -> tuple[np.ndarray, dict]:
        """Per-episode test accuracies % ``(test_episodes,)`` and the record's extra fields. ``journal`` keeps the scores
        as they are taken, so a stopped fine-tuning cell (~2 h at 20-way 5-shot) resumes where it stopped. A fine-tuning
        row chooses its (step size, steps) on the validation episodes, unless ``lr_steps`` is given (re-scoring)."""
        from tqdm import tqdm

        journal = journal or ScoreJournal(None, {})

        def series(name: str, episodes: list[Episode], score) -> np.ndarray:
            with tqdm(total=len(episodes), desc=f"{cell.label} {name}", disable=not progress, mininterval=30.0, leave=False) as bar:
                return journal.scores(name, episodes, score, progress=lambda done, _: bar.update(done - bar.n))

        extra = {}
        if "fine-tuned" in cell.row and lr_steps is None:
            val = self.episodes(pools["val"], cfg, "val", cfg["val_episodes"])
            grid = {tuple(g): float(np.mean(series(f"validation lr={g[0]} steps={g[1]}", val,
                                                   lambda e, g=g: self.score_episode(cell.row, model, e, device, g))))
                    for g in cfg["finetune_grid"]}
            lr_steps = best_finite(grid, f"{cell.label} seed {cell.seed}: the fine-tuning grid")  # a diverged point is NaN
            extra["fine_tuning"] = {"lr": lr_steps[0], "steps": lr_steps[1], "validation_accuracy": grid[lr_steps],
                                    "grid": recorded_grid(grid)}
        test = self.episodes(pools["test"], cfg, "test", cfg["test_episodes"])
        invert = cfg.get("pixels") == "ink=1"  # main: the stored images (paper = 1)
        return series("test", test, lambda e: self.score_episode(cell.row, model, e, device, lr_steps, invert)), extra

    def pools(self, cfg: dict, runs_dir: Path) -> dict:
        """Vinyals' split (``omniglot_pools``); the ``lanczos`` variant's test pool from the LANCZOS cache."""
        pools = omniglot_pools(cfg, runs_dir)
        if cfg.get("resample", "nearest") != "nearest" and cfg["data"] == "real":
            from metarepro.data.omniglot import ClassPool, load_cache, read_split
            from metarepro.data.store import data_root

            cache = load_cache(None, 28, cfg["resample"])
            pools["test"] = ClassPool.from_split(cache, read_split(data_root() / "splits" / "omniglot" / "vinyals" / "test.txt"), "test")
        return pools

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        self.check_cell(cell)
        cfg = self.config(cell, scale)
        pools = self.pools(cfg, runs_dir)
        model, train_s, extra = None, 0.0, {}
        if cfg["training"] != "none":
            key = self.training_key(cell, scale)
            model, state = self.trained_backbone(cfg, pools, runs_dir, key, progress, device, progress_position)
            train_s = state.elapsed_s
            extra = {"checkpoint_key": key, "loss_curve": state.loss_curve,
                     "selection": {"selected_iteration": state.best_iteration, "validation_error": state.best_value},
                     "timing_iterations": state.iteration}
        # the run folder's journal only where a model was trained (pixels test in seconds and train nothing)
        journal = ScoreJournal(None if model is None else runs_dir / key / f"evaluation-{cell.slug}.json",
                               {"config": cfg, "model": state_digest(model)})
        scores, more = self.score(cell, cfg, model, pools, device, journal, progress)
        test_s = journal.elapsed_s  # every segment's, where a stopped evaluation resumed
        if journal.resumed:
            more["evaluation_resumed_scores"] = journal.resumed
        timing = {"ms_per_iteration": 1000 * train_s / max(extra.pop("timing_iterations", 0), 1), "iterations_timed": cfg["iterations"],
                  "test_s": test_s, "threads": torch.get_num_threads(), "device": device, "load_average_1min": os.getloadavg()[0]}
        return CellResult(scores=scores, deviations=[], wall_time_s=train_s + test_s, train_wall_time_s=train_s,
                          extra={**extra, **more, **({"timing": timing} if model is not None else {})})

    def evaluate_checkpoint(self, checkpoint: Path, cell: Cell, scale: str, device: str = "cpu",
                            lr_steps: tuple[float, int] | None = None) -> np.ndarray:
        from benchmarks.harness.paths import runs_dir

        self.check_cell(cell)
        cfg = self.config(cell, scale)
        pools = self.pools(cfg, runs_dir() / self.id / scale)
        model = None
        if cfg["training"] != "none":
            model = self.build_model(cfg, len(pools["train"]))
            model.load_state_dict(load_checkpoint(checkpoint, None)["model"])
            model.to(device)
        return self.score(cell, cfg, model, pools, device, lr_steps=lr_steps)[0]

    def rescore_for_pinning(self, checkpoint: Path, cell: Cell, scale: str, extra: dict, device: str = "cpu") -> np.ndarray:
        """A fine-tuning cell's test only, at the (step size, steps) its run chose: the grid on the validation episodes
        costs several times the test (3.6x where 10 steps are chosen: hours at 20-way 5-shot); ``metarepro evaluate``
        re-runs it."""
        chosen = extra.get("fine_tuning")
        lr_steps = (chosen["lr"], chosen["steps"]) if chosen else None
        return self.evaluate_checkpoint(checkpoint, cell, scale, device=device, lr_steps=lr_steps)


BENCHMARK = Vinyals2016Table1()
