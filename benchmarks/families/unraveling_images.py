"""Shared machinery of Goldblum et al.'s tables and figures ("Unraveling Meta-Learning: Understanding Feature
Representations for Few-Shot Tasks", ICML 2020, ``goldblum-unraveling-meta-learning.txt``) on mini-ImageNet and CIFAR-FS.

A cell is a *model* (how a feature extractor is trained: backbone, training routine, its shots or coefficient) and a
*measure* of it (accuracy with a fine-tuning head, the class-separation metrics ``R_FC`` / ``R_HV``, the filter-normalised
distance travelled in fine-tuning, or the separation of an LDA projection). Each table module declares its cells'
models and measures (:meth:`UnravelingImages.spec`); cells naming the same model share one training (and checkpoint).

Published intervals: the paper's own cells print one standard error (REFERENCE.md); the rows it quotes from other papers
print those papers' 95% intervals (Nichol et al.'s Reptile, Finn et al.'s first-order MAML, Bertinetto et al.'s R2-D2),
marked ``cited`` in ``results/published``.

Protocols at ``paper`` scale (a GPU workload; ``--device cuda``), every choice marked [choice]:

=========================  =====================================================================
setting                    value
=========================  =====================================================================
data                       mini-ImageNet (Ravi & Larochelle's 64/16/20 classes, 84x84) and CIFAR-FS
                           (Bertinetto et al.'s 64/16/20 CIFAR-100 classes, 32x32); RGB in [0, 1], no
                           augmentation [choice: the paper names none]
backbones                  ``MetaOptNet``: ResNet-12 (64-160-320-640, DropBlock; ``methods.resnet12``);
                           ``R2-D2``: 96-192-384-512 four-block CNN as MetaOptNet's code builds it
                           (``methods.r2d2_encoder``, form ``metaoptnet``: A.2 "for meta-learning methods we
                           follow the training hyperparameters from (Lee et al., 2019)"); ``Conv-4``: MAML's and
                           Reptile's mini-ImageNet net, 32 filters, max-pooled, flattened (``methods.backbones.ConvNet``)
meta-learning (-M rows)    MetaOptNet's ``train.py``: 60 epochs x 1000 batches of 8 5-way episodes, 6 queries,
                           15 training shots on mini-ImageNet and 5 on CIFAR-FS (its README), Nesterov SGD lr
                           0.1, wd 5e-4, x0.06 / 0.012 / 0.0024 at epochs 20 / 40 / 50, label smoothing 0.1 on
                           mini-ImageNet (README ``--eps 0.1``); SVM head C 0.1, 15 QP iterations, + 1.0 I;
                           ridge head lambda 50; the model of best 5-way 5-shot validation accuracy (2000
                           episodes each epoch: the code's defaults) is kept
classical (-C rows)        Appendix A.2: Nesterov SGD (momentum 0.9), wd 1e-4, batches of 128 (CIFAR-FS) / 256
                           (mini-ImageNet) over the 64 training classes, lr 0.1 for 100 epochs then /10 every 50,
                           300 epochs, mini-ImageNet first 15 epochs at 0.01; the final model [choice: the paper
                           is silent; the released script keeps the one of best *training* accuracy]
regularised classical      the same, plus ``coefficient x R_FC`` or ``R_HV`` (the paper's forms, sec. 4.4-4.5,
                           ``methods.feature_clustering``) of each batch, drawn in pairs: every training class,
                           batch / 64 images each (4 on mini-ImageNet, 2 on CIFAR-FS), R_HV on each class's first
                           two [choice]; the coefficient multiplies R_FC's scatter ratio without its C/N (Table
                           8's caption: "coefficients include the C/N factor"; the released script has none:
                           ``methods.feature_clustering``); variant ``code-regularisers``: the
                           released script's arithmetic on its random class pairs
MAML / FOMAML              Finn et al.'s mini-ImageNet protocol (``l2g-table1``'s MAML rows): 5 inner steps of
                           0.01 (10 at test), meta-batch 4 (1-shot) / 2 (5-shot), 15 queries, Adam 1e-3, 60,000
                           iterations, BatchNorm with batch statistics
Reptile, W-Clustering      Algorithm 2 in lock step (``methods.weight_clustering``; alpha 0 is Reptile): Nichol
                           et al.'s mini-ImageNet settings (15 training shots, inner batches of 10, 8 inner
                           steps, meta-batch 5, meta step 1 annealed to 0, 100,000 iterations; test: 50 steps
                           on batches of 5 (1-shot) / 15 (5-shot), transductive) with a plain-SGD inner step of
                           1e-2 [choice: Algorithm 2 prints a plain gradient step; Nichol's 1e-3 is an Adam
                           rate]; alpha = the printed coefficient / 2 (sec. 5.1: the printed number is "the
                           product of the constant term collected from the gradient of the regularizer and
                           alpha", and that constant is 2)
test episodes              5-way, 15 queries per class, 1000 episodes (MetaOptNet's ``test.py``); Table 5 and
                           Fig. 3: 100,000 and 1,000 tasks as printed
heads                      SVM as in training but 3 QP iterations (MetaOptNet's ``test.py``: ``maxIter=3``; 15
                           in training); RR as in training; ProtoNet: prototypes; MAML: all weights plus a zero
                           linear layer fine-tuned by SGD, its (step, steps) chosen on 200 validation episodes
                           from {0.01, 0.1} x {5, 10} [choice]; NN: Chen et al.'s linear layer
                           (``methods.linear_head``) on frozen features
``R_FC``, ``R_HV``         of the frozen extractor (eval mode) on the training classes (Table 4's caption says
                           training data; Table 2's is taken the same [choice]): 100 batches of every training
                           class x 2 images (the regulariser's sampling), one score per batch
=========================  =====================================================================

``smoke`` scale runs every cell's code path on generated files in the real layouts (tiny widths, a few updates).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.harness.base import Benchmark, Cell, CellResult
from metarepro.data.store import DataError
from metarepro.episodes import Episode, task_rng
from metarepro.results import config_hash
from metarepro.selection import best_finite, recorded_grid
from metarepro.timing import now
from metarepro.trainer import EarlyStopping, load_checkpoint, lr_schedule_linear, train
from methods.classical import ClassicalClassifier, LabelledBatch, classical_lr_factor, nesterov_sgd
from methods.feature_clustering import (
    RegularizedClassifier,
    code_feature_clustering,
    code_hyperplane_variation,
    feature_clustering,
    hyperplane_variation_of_batch,
)
from methods.finetune_head import FineTuneHead, finetune_trajectory, finetuned_logits
from methods.head_classifier import HeadClassifier, ProtoHead
from methods.linear_head import LinearHead
from methods.ridge_head import RidgeHead
from methods.svm_head import MetaOptNetSVM

DATASETS = {"mini-ImageNet": "mini_imagenet", "CIFAR-FS": "cifar_fs"}
#: per dataset: image size, classical batch, warm-up epochs at lr 0.01, MetaOptNet training shots, label smoothing
DATASET_PROTOCOL = {"mini_imagenet": {"image_size": 84, "classical_batch": 256, "warmup_epochs": 15, "meta_train_shots": 15,
                                      "label_smoothing": 0.1},
                    "cifar_fs": {"image_size": 32, "classical_batch": 128, "warmup_epochs": 0, "meta_train_shots": 5,
                                 "label_smoothing": 0.0}}
META_TRAININGS = ("svm", "ridge", "proto")
CLASSICAL_TRAININGS = ("classical", "classical-fc", "classical-hv")
GBML_TRAININGS = ("maml", "fomaml", "reptile")
PROTOCOL = {
    "ways": 5, "test_queries": 15, "test_episodes": 1000, "val_episodes": 2000, "val_shots": 5, "val_seed": 1, "test_seed": 2020,
    "data": "real", "regularizer_form": "paper",
    # MetaOptNet
    "meta_epochs": 60, "meta_batches_per_epoch": 1000, "episodes_per_batch": 8, "meta_train_queries": 6, "meta_lr": 0.1,
    "meta_weight_decay": 5e-4, "svm_C": 0.1, "svm_iterations": 15, "svm_test_iterations": 3, "svm_jitter": 1.0, "ridge_lambda": 50.0,
    # Appendix A.2
    "classical_epochs": 300, "classical_lr": 0.1, "classical_weight_decay": 1e-4, "train_images_per_class": 600,
    # MAML (Finn et al., mini-ImageNet)
    "maml_filters": 32, "maml_inner_lr": 0.01, "maml_inner_steps": 5, "maml_test_steps": 10, "maml_queries": 15,
    "maml_iterations": 60_000, "maml_outer_lr": 1e-3,
    # Reptile (Nichol et al., mini-ImageNet) in Algorithm 2's lock step
    "reptile_train_shots": 15, "reptile_inner_batch": 10, "reptile_inner_steps": 8, "reptile_meta_batch": 5,
    "reptile_inner_lr": 1e-2, "reptile_iterations": 100_000, "reptile_eval_iters": 50,
    # measures
    "metric_batches": 100, "metric_classes": None, "linear_head_epochs": 100,
    "maml_head_grid": [(0.01, 5), (0.01, 10), (0.1, 5), (0.1, 10)], "maml_head_val_episodes": 200,
    "lda_classes": 3, "lda_samples": 100, "lda_draws": 20,
}
SCALES = {
    "paper": {},
    "quick": {"meta_epochs": 6, "classical_epochs": 30, "maml_iterations": 6000, "reptile_iterations": 10_000, "test_episodes": 500,
              "val_episodes": 200, "metric_batches": 20},
    # smoke: the real file layouts, decoded at 32 px (every image size runs the same code)
    "smoke": {"data": "fixture", "widths": "smoke", "image_size": 32, "meta_epochs": 2, "meta_batches_per_epoch": 4, "episodes_per_batch": 2,
              "meta_train_shots": 2, "meta_train_queries": 2, "classical_epochs": 20, "classical_batch": 32, "train_images_per_class": 1,
              "maml_queries": 3, "reptile_train_shots": 3, "reptile_inner_batch": 5, "maml_iterations": 4, "reptile_iterations": 20,
              "reptile_inner_lr": 0.1, "reptile_meta_batch": 2, "reptile_inner_steps": 2, "reptile_eval_iters": 6, "maml_inner_steps": 1,
              "maml_test_steps": 2,
              "test_episodes": 6, "val_episodes": 2, "maml_head_grid": [(0.01, 5), (0.05, 5), (0.1, 10)], "maml_head_val_episodes": 4,
              "test_queries": 3,
              "metric_batches": 2, "linear_head_epochs": 25, "lda_samples": 15, "lda_draws": 2},
}
#: smoke-scale widths: the same architectures, narrow, so a CI step takes seconds
SMOKE_WIDTHS = {"MetaOptNet": (4, 6, 8, 8), "R2-D2": (4, 6, 8, 8), "Conv-4": 4}
#: keys that only change how a trained model is measured (cells differing in them share the training)
MEASURE_KEYS = ("benchmark", "row", "column", "variant", "metric_form", "measure", "head", "test_shots", "test_episodes", "test_seed",
                "test_queries", "svm_test_iterations",
                "linear_head_epochs", "metric_batches", "metric_classes", "maml_head_grid", "maml_head_val_episodes", "lda_classes",
                "lda_samples", "lda_draws")
#: a fixture's classes per split and images per class (enough for 15-shot training episodes and 15-query tests)
FIXTURE_CLASSES = {"train": 10, "val": 6, "test": 6}
FIXTURE_IMAGES = 30
#: the labelled variant of the regularised rows: the released script's arithmetic and batch layout
#: (``methods.feature_clustering``: its names look swapped, so "R_FC" runs its ``feature_clustering``, an R_HV-like term)
CODE_REGULARISERS = "code-regularisers"
CODE_REGULARISERS_NOTE = ("the regularisers as goldblum/FeatureClustering's train_feature_extractor.py computes them (names kept, "
                          "arithmetic and [A; A; B; B] batch layout its own), at the row's coefficient; post hoc")
#: the labelled variant of Tables 2 and 4: R_FC / R_HV with the released script's arithmetic on its [A; A; B; B] groups. The
#: paper's R_HV is at most 1 (triangle inequality) and its R_FC on 2 images per class near C / (C - 1), yet Tables 2 and 4
#: print R_HV up to 1.94 and R_FC up to 3.94: the printed values fall in the script's ranges (4 and 2 for features with no
#: class structure), not the formulas'
CODE_METRICS = "code-metrics"
CODE_METRICS_NOTE = ("R_FC / R_HV with goldblum/FeatureClustering's arithmetic (within / between per random pair of classes; "
                     "squared difference over the mean norm), the ranges Tables 2 and 4's printed values fall in; post hoc")
#: every Goldblum image benchmark trains under ``runs/<RUNS_HOME>/<scale>/``: a model two tables name trains once
RUNS_HOME = "unraveling-images"


def meta_lr_factor(iteration: int, iterations: int) -> float:
    """MetaOptNet's step schedule (x1 / 0.06 / 0.012 / 0.0024 from epochs 0 / 20 / 40 / 50 of 60), on ``iterations``."""
    done = iteration / iterations
    return 1.0 if done < 1 / 3 else 0.06 if done < 2 / 3 else 0.012 if done < 5 / 6 else 0.0024


def make_head(kind: str, cfg: dict, test: bool = False) -> nn.Module:
    """The training / test head named ``kind`` (a training routine or a column header); ``test``: the SVM with
    ``svm_test_iterations`` QP iterations where the configuration has them (MetaOptNet's ``test.py``: 3)."""
    if kind in ("svm", "SVM"):
        iterations = cfg.get("svm_test_iterations", cfg["svm_iterations"]) if test else cfg["svm_iterations"]
        return MetaOptNetSVM(C=cfg["svm_C"], iterations=iterations, jitter=cfg["svm_jitter"])
    if kind in ("ridge", "RR"):
        return RidgeHead(lam=cfg["ridge_lambda"], form="metaoptnet")
    if kind in ("proto", "ProtoNet"):
        return ProtoHead()
    if kind == "NN":
        return LinearHead(epochs=cfg["linear_head_epochs"])
    raise KeyError(kind)


def build_backbone(name: str, cfg: dict) -> nn.Module:
    """``(N, 3, H, W) -> (N, d)`` feature extractor of a backbone name (module docstring)."""
    from methods.r2d2_encoder import R2D2Encoder
    from methods.resnet12 import ResNet12

    smoke = cfg.get("widths") == "smoke"
    if name == "MetaOptNet":  # DropBlock of 5 on mini-ImageNet, 2 on CIFAR-FS (MetaOptNet's train.py; 32 px maps are 4x4, 2x2)
        block = 2 if cfg["dataset"] == "cifar_fs" else 5
        return ResNet12(3, SMOKE_WIDTHS[name], dropblock_size=block) if smoke else ResNet12(3, dropblock_size=block)
    if name == "R2-D2":
        # BatchNorm scales start at 1 (R2D2Encoder's default): Goldblum et al.'s copy of MetaOptNet's R2D2Embedding sets
        # none and pins no PyTorch (2020: 1.2 or later, which starts them at 1, is likely but not stated); MetaOptNet's own
        # runs (requirements.txt: torch 1.0.1) drew them from U[0, 1) (``bn_weight_init="uniform"``)
        return R2D2Encoder(3, SMOKE_WIDTHS[name], form="metaoptnet") if smoke else R2D2Encoder(3, form="metaoptnet")
    raise KeyError(name)


def conv4_net(cfg: dict, ways: int, gbml: str) -> nn.Module:
    """MAML's (offset-only BatchNorm, N(0, 1) head) or Reptile's (scale and offset, Glorot head) mini-ImageNet Conv-4."""
    from methods.backbones import ConvNet

    filters = SMOKE_WIDTHS["Conv-4"] if cfg.get("widths") == "smoke" else cfg["maml_filters"]
    # both codes initialise the mini-ImageNet head with Glorot (cbfinn/maml's fc_initializer; N(0, 1) is its Omniglot head)
    return ConvNet(3, ways, filters, pool=True, features="flatten", image_size=cfg["image_size"], bn_scale=gbml not in ("maml", "fomaml"),
                   head_init="glorot")


class Conv4Trunk(nn.Module):
    """A :class:`methods.backbones.ConvNet` without its head: ``(N, C, H, W) -> (N, d)``, the head's inputs. Shares the
    net's convolutions and norms (fine-tuning the trunk moves them); the head is not a parameter of the trunk."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.convs, self.norms = net.convs, net.norms
        self._net = (net,)  # a tuple: not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self._net[0]
        params = {n: p.unsqueeze(0) for n, p in net.own_parameters().items() if not n.startswith("head.")}
        return net.features_batched(params, x.unsqueeze(0))[0]


def feature_dim(backbone: nn.Module, image_size: int) -> int:
    was = backbone.training
    with torch.no_grad():
        dim = backbone.eval()(torch.zeros(2, 3, image_size, image_size)).shape[1]  # eval: the probe moves no BN statistics
    backbone.train(was)
    return int(dim)


def image_pools(cfg: dict, runs_dir: Path) -> dict:
    """``{"train", "val", "test"}`` class pools of the cell's dataset (generated files in the real layout at smoke scale)."""
    fixture = cfg["data"] == "fixture"
    root = Path(runs_dir) / f"fixture-{cfg['dataset']}" if fixture else None
    quiet = {"log": lambda *_: None}
    if cfg["dataset"] == "mini_imagenet":
        from metarepro.data.fixtures import make_mini_imagenet
        from metarepro.data.miniimagenet import mini_imagenet_pool

        if fixture and not (root / "mini_imagenet").exists():
            make_mini_imagenet(root, splits=FIXTURE_CLASSES, per_class=FIXTURE_IMAGES, formats=("csv",))  # csv: decoded at any size
        return {s: mini_imagenet_pool(s, root, size=cfg["image_size"], **quiet) for s in ("train", "val", "test")}
    if cfg["dataset"] == "cifar_fs":
        from metarepro.data.cifarfs import cifar_fs_pool
        from metarepro.data.fixtures import make_cifar100

        if fixture and not (root / "cifar100").exists():
            names = [f"class_{i:02d}" for i in range(sum(FIXTURE_CLASSES.values()))]
            cut = np.cumsum([0, *FIXTURE_CLASSES.values()])
            make_cifar100(root, names, per_class=(FIXTURE_IMAGES - 5, 5),
                          splits={s: names[cut[i]:cut[i + 1]] for i, s in enumerate(FIXTURE_CLASSES)})
        return {s: cifar_fs_pool(s, root, **quiet) for s in ("train", "val", "test")}
    raise KeyError(cfg["dataset"])


def training_timing(state, test_s: float, device: str) -> dict:
    """A record's ``timing``: per-update milliseconds of a :class:`metarepro.trainer.TrainState`, the test seconds, and the
    conditions they were measured under."""
    return {"ms_per_iteration": 1000 * state.elapsed_s / max(state.iteration, 1), "iterations_timed": state.iteration, "test_s": test_s,
            "threads": torch.get_num_threads(), "device": device, "load_average_1min": os.getloadavg()[0]}


def uninformative_metric(name: str, classes: int, per_class: int, form: str = "paper") -> float:
    """Expected ``R_FC`` / ``R_HV`` of i.i.d. features with no class structure: ``R_FC``'s class means then scatter by
    ``sigma^2 / N`` only, giving ``C (N - 1) / (C - 1)`` (C classes, N per class; ``methods.feature_clustering`` on its
    ``C / N``); ``R_HV`` compares two independent difference vectors, ``||d1 - d2|| / (||d1|| + ||d2||) -> sqrt(2) / 2``
    in high dimension."""
    if form == "code":  # per pair of classes: within / between -> 4; (||d1 - d2|| / mean norm)^2 -> 2
        return 4.0 if name == "R_FC" else 2.0
    if name == "R_FC":
        return classes * (per_class - 1) / (classes - 1)
    return math.sqrt(2) / 2


def as_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(255.0)


def labelled_images(pool, classes: np.ndarray, items: np.ndarray) -> torch.Tensor:
    """One image per ``(class, item)`` pair, ``(B, C, H, W)`` float in [0, 1], from an RGB ``ImagePool`` (``(B, 1, C, H, W)``)
    or an Omniglot ``ClassPool`` (``(B, 1, H, W)``: the one drawing axis is the channel)."""
    x = pool.images(classes, items[:, None])
    return as_float(np.ascontiguousarray(x[:, 0] if x.ndim == 5 else x))


# -- measures of a trained model (the Omniglot claim checks use them too) -------------------------------------------
@torch.no_grad()
def head_accuracies(backbone: nn.Module, head: nn.Module, episodes: list[Episode], device: str) -> np.ndarray:
    """Query accuracy % of each episode with ``head`` on the frozen ``backbone`` (eval mode); NaN for an episode whose
    logits are not all finite (a diverged fine-tuning: argmax would still name a class, and score it as chance)."""
    was = backbone.training
    backbone.eval()
    at_once = 1 if isinstance(head, FineTuneHead) else getattr(head, "episodes_per_call", 1)
    try:
        out = []
        for start in range(0, len(episodes), at_once):
            chunk = [e.to(device) for e in episodes[start:start + at_once]]
            ways = int(chunk[0].support_y.max()) + 1
            if any(int(e.support_y.max()) + 1 != ways for e in chunk):
                raise ValueError("head_accuracies: episodes scored together must have the same number of ways")
            if isinstance(head, FineTuneHead):
                [e] = chunk
                logits = head(backbone, e.support_x[None], e.support_y[None], e.query_x[None], ways)
            else:  # a batching head (the linear one) takes several episodes of one shape; the rest one at a time
                with torch.no_grad():
                    support, query = [torch.stack([backbone(getattr(e, part)) for e in chunk]) for part in ("support_x", "query_x")]
                logits = head(support, torch.stack([e.support_y for e in chunk]), query, ways)
            out += [episode_accuracy(episode_logits, e.query_y) for e, episode_logits in zip(chunk, logits)]
        return np.array(out)
    finally:
        backbone.train(was)


def episode_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy % of one episode's query ``logits (q, ways)`` against ``labels (q,)``; NaN unless every logit is finite."""
    correct = (logits.argmax(-1) == labels).float().mean()
    return 100.0 * float(correct) if bool(torch.isfinite(logits).all()) else float("nan")


@torch.no_grad()
def finetune_grid_accuracies(backbone: nn.Module, grid, episodes: list[Episode], device: str) -> dict[tuple[float, int], np.ndarray]:
    """Per-episode query accuracy % of the MAML head (:class:`FineTuneHead`) at every ``(lr, steps)`` of ``grid``: what
    :func:`head_accuracies` gives point by point, with each step size's step counts read along one run of its largest
    (:func:`~methods.finetune_head.finetune_trajectory`), so a grid of 1, 5 and 10 steps costs 10 steps, not 16."""
    counts: dict[float, list[int]] = {}
    for lr, steps in grid:
        counts.setdefault(lr, []).append(steps)
    out: dict[tuple[float, int], list[float]] = {point: [] for point in grid}
    was = backbone.training
    backbone.eval()
    try:
        for e in episodes:
            e = e.to(device)
            ways = int(e.support_y.max()) + 1
            for lr, at_steps in counts.items():
                for steps, state in finetune_trajectory(backbone, e.support_x, e.support_y, ways, lr, at_steps).items():
                    logits = finetuned_logits(backbone, state, e.query_x)
                    out[(lr, steps)].append(episode_accuracy(logits, e.query_y))
        return {point: np.array(v) for point, v in out.items()}
    finally:
        backbone.train(was)


@torch.no_grad()
def separation_metrics(extractor: nn.Module, pool, cfg: dict, device: str) -> np.ndarray:
    """``R_FC`` or ``R_HV`` (``cfg["measure"]``) of ``metric_batches`` batches of 2 images of every class of ``pool``
    (or of ``cfg["metric_classes"]`` classes drawn per batch). With ``cfg["metric_task_classes"]`` a batch's features come
    from the forward passes MAML's tasks would make of it (:func:`task_passes`: what batch-statistics BatchNorm
    normalises over), the metric still over the whole batch."""
    was = extractor.training
    extractor.eval()
    task_classes = cfg.get("metric_task_classes")
    if task_classes and cfg.get("metric_form") == "code":
        raise ValueError("task passes are defined for the paper's metric layout (a class's two images side by side), not the code's")

    def features(images: torch.Tensor, passes: list[np.ndarray] | None = None) -> torch.Tensor:
        images = images.to(device)
        if passes is None:
            return extractor(images).double()
        parts = [(torch.from_numpy(index).to(device), extractor(images[index])) for index in passes]
        out = torch.empty(len(images), parts[0][1].shape[1], dtype=torch.float64, device=device)
        for index, part in parts:
            out[index] = part.double()
        return out

    try:
        out = []
        for b in range(cfg["metric_batches"]):
            rng = task_rng(cfg["test_seed"], "metric", b)
            chosen = (np.arange(len(pool)) if cfg.get("metric_classes") is None
                      else np.sort(rng.choice(len(pool), size=cfg["metric_classes"], replace=False)))
            pairs = np.stack([rng.choice(pool.counts[c], size=2, replace=False) for c in chosen])  # (classes, 2)
            if cfg.get("metric_form") == "code":  # the script's groups: classes paired at random, [A; A; B; B]
                shuffled = rng.permutation(len(chosen))[: len(chosen) // 2 * 2]
                a, b2 = shuffled[0::2], shuffled[1::2]
                classes = chosen[np.concatenate([a, a, b2, b2])]
                items = np.concatenate([pairs[a, 0], pairs[a, 1], pairs[b2, 0], pairs[b2, 1]])
                feats = features(labelled_images(pool, classes, items))
                # by arithmetic, not by the script's (swapped) names: its hyperplane_variation is the within / between
                # ratio R_FC names, its feature_clustering the normalised difference R_HV names
                value = code_hyperplane_variation(feats) if cfg["measure"] == "R_FC" else code_feature_clustering(feats)
            else:
                classes, items = np.repeat(chosen, 2), pairs.reshape(-1)  # a class's two images side by side
                passes = task_passes(len(chosen), task_classes, rng) if task_classes else None
                feats = features(labelled_images(pool, classes, items), passes)
                labels = torch.from_numpy(classes).to(device)
                value = (feature_clustering(feats, labels) if cfg["measure"] == "R_FC"
                         else hyperplane_variation_of_batch(feats, labels))
            out.append(float(value))
        return np.array(out)
    finally:
        extractor.train(was)


def task_passes(classes: int, task_classes: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The forward passes MAML's tasks would make of a metric batch laid out class by class, two images each
    (``[c0 i0, c0 i1, c1 i0, ...]``): the batch's classes grouped at random into tasks of ``task_classes`` (the last
    smaller when they do not divide), each task's first images one pass and its second images another (MAML's code passes
    a task's support and query apart: cbfinn/maml ``maml.py`` ``task_metalearn``). Positions into the batch, one array
    per pass."""
    order = rng.permutation(classes)
    tasks = [order[start:start + task_classes] for start in range(0, classes, task_classes)]
    return [index for task in tasks for index in (2 * task, 2 * task + 1)]


def reptile_test_batches(model: nn.Module, episode: Episode, rng: np.random.Generator) -> Episode:
    """The episode with its support replaced by Reptile's test-time mini-batches as Nichol et al. draw them: ``eval_iters``
    batches of ``eval_batch`` examples, the support reshuffled on every pass, laid end to end (so
    ``WeightClusteredReptile.adapt`` takes each batch once) -- not the class-sorted support in a fixed order."""
    n, need = len(episode.support_y), model.eval_iters * model.eval_batch
    order = torch.from_numpy(np.concatenate([rng.permutation(n) for _ in range(-(-need // n))])[:need])
    return Episode(episode.support_x[order], episode.support_y[order], episode.query_x, episode.query_y)


def _fine_tuning_episodes(model: nn.Module, episodes: list[Episode], seed: int) -> list[Episode]:
    if not hasattr(model, "eval_iters"):  # MAML adapts on the whole support
        return episodes
    return [reptile_test_batches(model, e, task_rng(seed, "fine-tuning", i)) for i, e in enumerate(episodes)]


def gbml_accuracies(model: nn.Module, episodes: list[Episode], device: str, seed: int = 0) -> np.ndarray:
    """Query accuracy % of MAML / Reptile models adapted per test task (transductive BatchNorm: all queries at once);
    Reptile's fine-tuning batches are drawn from ``seed`` (:func:`reptile_test_batches`)."""
    out = []
    for e in _fine_tuning_episodes(model, episodes, seed):
        batch = Episode.stack([e]).to(device)
        if hasattr(model, "predict"):
            logits = model.predict(batch)
        else:
            with torch.enable_grad():
                logits = model.adapt(batch.support_x, batch.support_y).predict(batch.query_x)
        out.append(100.0 * float((logits[0].argmax(-1) == batch.query_y[0]).float().mean()))
    return np.array(out)


def distances_travelled(model: nn.Module, episodes: list[Episode], device: str, seed: int = 0) -> np.ndarray:
    """Fig. 3: the filter-normalised distance each test task's fine-tuning moves the weights (the same fine-tuning
    batches as :func:`gbml_accuracies` with the same ``seed``)."""
    from methods.weight_clustering import filter_normalized_distance

    initial = {n: p.detach() for n, p in model.backbone.named_parameters()}
    out = []
    for e in _fine_tuning_episodes(model, episodes, seed):
        batch = Episode.stack([e]).to(device)
        out.append(float(filter_normalized_distance(model.adapt(batch.support_x, batch.support_y), initial)[0]))
    return np.array(out)


@torch.no_grad()
def lda_separation(extractor: nn.Module, pool, cfg: dict, device: str) -> tuple[np.ndarray, dict]:
    """Fig. 2: ``lda_draws`` draws of ``lda_classes`` test classes x ``2 lda_samples`` images; LDA is fitted on the first
    ``lda_samples`` of each class and the other ``lda_samples`` are projected on its first two directions; the score of a
    draw is ``R_FC`` of those held-out projections (what the figure shows), and the first draw's points are kept for the
    figure. Held out [choice]: fitted and scored on the same 300 points, LDA separates even features with no class
    structure once their dimension nears the number of points (800-d Conv-4 features)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    was = extractor.training
    extractor.eval()
    try:
        scores, points = [], None
        n = cfg["lda_samples"]
        for d in range(cfg["lda_draws"]):
            rng = task_rng(cfg["test_seed"], "lda", d)
            chosen = rng.choice(len(pool), size=cfg["lda_classes"], replace=False)
            classes = np.repeat(chosen, 2 * n)
            items = np.concatenate([rng.choice(pool.counts[c], size=2 * n, replace=pool.counts[c] < 2 * n) for c in chosen])
            feats = extractor(labelled_images(pool, classes, items).to(device)).double().cpu().numpy()
            fit = (np.arange(len(classes)) % (2 * n)) < n  # each class's first n images
            lda = LinearDiscriminantAnalysis(n_components=2).fit(feats[fit], classes[fit])
            projected, held = lda.transform(feats[~fit]), classes[~fit]
            scores.append(float(feature_clustering(torch.from_numpy(projected), torch.from_numpy(held))))
            if points is None:
                points = {"x": projected[:, 0].round(4).tolist(), "y": projected[:, 1].round(4).tolist(), "class": held.tolist()}
        return np.array(scores), {"lda_points": points}
    finally:
        extractor.train(was)


class UnravelingImages(Benchmark):
    """A Goldblum et al. table or figure on mini-ImageNet / CIFAR-FS (module docstring); subclasses define :meth:`spec`."""

    paper = "goldblum-unraveling-meta-learning.txt"
    metric = "accuracy %"
    higher_is_better = True
    #: columns of another metric than :attr:`metric` are not mixed in one table here: each benchmark has one
    datasets: tuple[str, ...] = ("mini_imagenet",)

    def spec(self, cell: Cell) -> dict:
        """The cell's model and measure: ``dataset`` ("mini_imagenet" / "cifar_fs"), ``backbone`` ("MetaOptNet", "R2-D2",
        "Conv-4"), ``training`` (svm, ridge, proto, classical[-fc|-hv], maml, fomaml, reptile), ``train_shots`` (episodic
        GBML training), ``coefficient`` (regulariser or Reptile's alpha), ``measure`` (accuracy, R_FC, R_HV, distance,
        lda), ``head`` and ``test_shots`` (accuracy and distance)."""
        raise NotImplementedError

    # -- data --------------------------------------------------------------------------------------------------------
    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        return [f"{RUNS_HOME}/{scale}/{self.training_key(cell, scale)}"]

    @staticmethod
    def runs_home(runs_dir: Path) -> Path:
        """``runs/<id>/<scale>`` -> ``runs/unraveling-images/<scale>``: where every table's models (and fixtures) live."""
        return Path(runs_dir).parent.parent / RUNS_HOME / Path(runs_dir).name

    @property
    def requires_data(self) -> str:  # type: ignore[override]
        return " + ".join(self.datasets)

    def data_available(self) -> bool:
        from metarepro.data.cifarfs import cifar100_dir, default_split_file
        from metarepro.data.miniimagenet import mini_imagenet_dir

        try:
            for name in self.datasets:
                folder = mini_imagenet_dir() if name == "mini_imagenet" else cifar100_dir()
                if not (folder.is_dir() and any(folder.iterdir())):
                    return False
                if name == "cifar100" and not default_split_file("train").is_file():
                    return False
        except DataError:
            return False
        return True

    def dataset_digest(self) -> str | None:
        return None  # user-supplied data: the pool caches fingerprint the files they read

    # -- configuration -----------------------------------------------------------------------------------------------
    def config(self, cell: Cell, scale: str) -> dict:
        spec = {"train_shots": None, "coefficient": 0.0, "head": None, "test_shots": None, **self.spec(cell)}
        cfg = {"benchmark": self.id, "row": cell.row, "column": cell.column, "scale": scale, "train_seed": cell.seed, **PROTOCOL,
               **DATASET_PROTOCOL[spec["dataset"]], **spec, **SCALES[scale]}
        if cell.variant == CODE_REGULARISERS:
            cfg.update(variant=cell.variant, regularizer_form="code")
        if cell.variant == CODE_METRICS:
            cfg.update(variant=cell.variant, metric_form="code")
        return cfg

    def training_key(self, cell: Cell, scale: str) -> str:
        """Cells naming the same model share it (and its checkpoint), within a benchmark."""
        cfg = self.config(cell, scale)
        kept = {k: v for k, v in cfg.items() if k not in MEASURE_KEYS}
        return f"{cfg['backbone'].lower()}-{cfg['training']}-{config_hash(kept)}"

    def iterations(self, cfg: dict) -> int:
        if cfg["training"] in META_TRAININGS:
            return cfg["meta_epochs"] * cfg["meta_batches_per_epoch"]
        if cfg["training"] in CLASSICAL_TRAININGS:
            return cfg["classical_epochs"] * self.batches_per_epoch(cfg)
        return cfg["reptile_iterations"] if cfg["training"] == "reptile" else cfg["maml_iterations"]

    def batches_per_epoch(self, cfg: dict) -> int:
        return math.ceil(64 * cfg["train_images_per_class"] / cfg["classical_batch"])

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        """Rough, for ``plan`` before a timed record: seconds per update on one CPU thread, measured order of magnitude
        (ResNet-12 at 84 px ~40x a Conv-4 at 28 px per image); a GPU is ~50x faster."""
        cfg = self.config(cell, scale)
        per_image = {"MetaOptNet": 4e-3, "R2-D2": 2e-3, "Conv-4": 2e-4}[cfg["backbone"]] * (cfg["image_size"] / 84) ** 2
        if cfg.get("widths") == "smoke":
            per_image /= 50
        if cfg["training"] in META_TRAININGS:
            images = cfg["episodes_per_batch"] * cfg["ways"] * (cfg["meta_train_shots"] + cfg["meta_train_queries"])
        elif cfg["training"] in CLASSICAL_TRAININGS:
            images = cfg["classical_batch"]
        elif cfg["training"] == "reptile":
            images = cfg["reptile_meta_batch"] * cfg["reptile_inner_steps"] * cfg["reptile_inner_batch"]
        else:
            images = 4 * cfg["ways"] * ((cfg["train_shots"] or 1) + cfg["maml_queries"]) * (cfg["maml_inner_steps"] + 2)
        return self.iterations(cfg) * images * per_image + cfg["test_episodes"] * 100 * per_image

    def trivial_score(self, cell: Cell, scale: str) -> float:
        """Chance accuracy; for the separation metrics, their value on features that carry no class information
        (:func:`uninformative_metric`); a distance has none (any finite one passes)."""
        cfg = self.config(cell, scale)
        if cfg["measure"] == "accuracy":
            return 100.0 / cfg["ways"]
        if cfg["measure"] == "distance":
            return math.inf
        if cfg["measure"] == "lda":
            return uninformative_metric("R_FC", cfg["lda_classes"], cfg["lda_samples"])
        classes = FIXTURE_CLASSES["train"] if cfg["data"] == "fixture" else 64
        return uninformative_metric(cfg["measure"], classes, 2, cfg.get("metric_form", "paper"))

    # -- models ------------------------------------------------------------------------------------------------------
    def build_model(self, cfg: dict, classes: int = 64) -> nn.Module:
        """The trainable model of the cell's row; ``classes``: training classes (the classical heads)."""
        training = cfg["training"]
        if cfg["backbone"] == "Conv-4":
            from methods.maml import MAML
            from methods.weight_clustering import WeightClusteredReptile

            if training in CLASSICAL_TRAININGS or training in META_TRAININGS:  # MAML's trunk, trained another way
                backbone = Conv4Trunk(conv4_net(cfg, cfg["ways"], "maml"))
            elif training in ("maml", "fomaml"):
                from benchmarks.anchors.finn2017_table1 import maml_task_loss

                net = conv4_net(cfg, cfg["ways"], training)
                return MAML(net, maml_task_loss(cfg["train_shots"]), cfg["maml_inner_lr"], cfg["maml_inner_steps"],
                            test_steps=cfg["maml_test_steps"], first_order=training == "fomaml",
                            frozen=tuple(f"norms.{i}.bias" for i in range(4)))
            elif training == "reptile":  # evaluation batches: 5 at 1 shot, 15 at 5 (Nichol et al.'s commands)
                eval_batch = 15 if cfg["test_shots"] == 5 else 5
                return WeightClusteredReptile(conv4_net(cfg, cfg["ways"], "reptile"), cfg["reptile_inner_lr"], cfg["reptile_inner_batch"],
                                              cfg["coefficient"] / 2, eval_iters=cfg["reptile_eval_iters"], eval_batch=eval_batch)
            else:
                raise KeyError(training)
        else:
            backbone = build_backbone(cfg["backbone"], cfg)
        if training == "classical":
            return ClassicalClassifier(backbone, feature_dim(backbone, cfg["image_size"]), classes)
        if training in CLASSICAL_TRAININGS:
            form = "code-" if cfg["regularizer_form"] == "code" else ""
            return RegularizedClassifier(backbone, feature_dim(backbone, cfg["image_size"]), classes,
                                         regularizer=form + training.split("-")[1], coefficient=cfg["coefficient"])
        if training in META_TRAININGS:
            smoothing = cfg["label_smoothing"] if training == "svm" else 0.0  # the README's --eps 0.1 is the SVM command's
            return HeadClassifier(backbone, make_head(training, cfg), label_smoothing=smoothing)
        raise KeyError(training)

    def protocol_model(self, cell: Cell, scale: str) -> nn.Module:
        return self.build_model(self.config(cell, scale))

    @staticmethod
    def extractor(model: nn.Module) -> nn.Module:
        """The feature extractor of a trained model (``(N, C, H, W) -> (N, d)``)."""
        if hasattr(model, "backbone") and not hasattr(model.backbone, "forward_batched"):
            return model.backbone
        return Conv4Trunk(model.backbone)  # MAML / Reptile: the ConvNet without its head

    # -- training ----------------------------------------------------------------------------------------------------
    def train_batch(self, pool, cfg: dict, index: int):
        rng = task_rng(cfg["train_seed"], "train", index)
        training = cfg["training"]
        if training in CLASSICAL_TRAININGS:
            batch = cfg["classical_batch"]
            if training == "classical":
                classes = rng.integers(len(pool), size=batch)
                items = rng.integers(pool.counts[classes])
            elif cfg["regularizer_form"] == "code":  # the script's PairData: batch/4 random pairs of distinct classes,
                # two images each, laid out [first of A; second of A; first of B; second of B]
                groups = [rng.choice(len(pool), size=2, replace=False) for _ in range(batch // 4)]
                a, b = np.array([g[0] for g in groups]), np.array([g[1] for g in groups])
                first = [rng.choice(pool.counts[c], size=2, replace=False) for c in a]
                second = [rng.choice(pool.counts[c], size=2, replace=False) for c in b]
                classes = np.concatenate([a, a, b, b])
                items = np.concatenate([[f[0] for f in first], [f[1] for f in first], [s[0] for s in second], [s[1] for s in second]])
            else:  # the batch in pairs: min(batch/2, classes) classes, batch/classes images each (mini-ImageNet: 64 x 4,
                # CIFAR-FS: 64 x 2); R_HV reads each class's first two [choice: 256 images over 64 classes cannot be
                # "two samples from each class" of distinct classes]
                picked = rng.choice(len(pool), size=min(batch // 2, len(pool)), replace=False)
                per_class = batch // len(picked) // 2 * 2
                classes = np.repeat(picked, per_class)
                items = np.concatenate([rng.choice(pool.counts[c], size=per_class, replace=False) for c in picked])
            return LabelledBatch(labelled_images(pool, classes, items), torch.from_numpy(classes))
        if training in META_TRAININGS:
            episodes = [pool.sample(rng, cfg["ways"], cfg["meta_train_shots"], cfg["meta_train_queries"])
                        for _ in range(cfg["episodes_per_batch"])]
        elif training == "reptile":
            support = cfg["reptile_inner_steps"] * cfg["reptile_inner_batch"]  # 8 batches of 10 from 15 shots x 5 ways, cycled
            episodes = []
            for _ in range(cfg["reptile_meta_batch"]):
                e = pool.sample(rng, cfg["ways"], cfg["reptile_train_shots"], 1)
                # Nichol et al.'s mini-batches: the examples in a fresh shuffled order each pass, as many passes as needed
                passes = -(-support // len(e.support_y))
                order = np.concatenate([rng.permutation(len(e.support_y)) for _ in range(passes)])[:support]
                episodes.append(Episode(e.support_x[order], e.support_y[order], e.query_x, e.query_y))
        else:
            meta_batch = 4 if cfg["train_shots"] == 1 else 2
            episodes = [pool.sample(rng, cfg["ways"], cfg["train_shots"], cfg["maml_queries"]) for _ in range(meta_batch)]
        return Episode.stack(episodes)

    def fixed_episodes(self, pool, cfg: dict, split: str, count: int, shots: int) -> list[Episode]:
        seed = cfg["test_seed"] if split == "test" else cfg["val_seed"]
        return [pool.sample(task_rng(seed, f"{split}-{shots}", i), cfg["ways"], shots, cfg["test_queries"]) for i in range(count)]

    def optimizer_and_schedule(self, model: nn.Module, cfg: dict):
        training, iterations = cfg["training"], self.iterations(cfg)
        if training in META_TRAININGS:
            return nesterov_sgd(model.parameters(), cfg["meta_lr"], cfg["meta_weight_decay"]), lambda i: meta_lr_factor(i, iterations)
        if training in CLASSICAL_TRAININGS:
            # A.2's 300-epoch schedule, on the configured epochs (quick scale trains fewer)
            per_paper_epoch = self.batches_per_epoch(cfg) * cfg["classical_epochs"] / 300
            def schedule(i: int) -> float:
                return classical_lr_factor(int(i / per_paper_epoch), warmup_epochs=cfg["warmup_epochs"])
            return nesterov_sgd(model.parameters(), cfg["classical_lr"], cfg["classical_weight_decay"]), schedule
        if training == "reptile":  # outer SGD of rate gamma = 1 annealed linearly to 0 (Nichol et al.)
            return torch.optim.SGD(model.parameters(), lr=1.0), lr_schedule_linear(iterations, 0.0)
        return torch.optim.Adam(model.parameters(), lr=cfg["maml_outer_lr"]), None

    def trained_model(self, cfg: dict, runs_dir: Path, key: str, progress: bool, device: str, position: int | None):
        """Train (resumably) the cell's model; returns ``(model, TrainState, pools)``; meta-learned rows come back at their
        best validation checkpoint (MetaOptNet's ``best_model.pth``), the others as trained."""
        pools = image_pools(cfg, runs_dir)
        torch.manual_seed(cfg["train_seed"])
        model = self.build_model(cfg, len(pools["train"])).to(device)
        optimizer, schedule = self.optimizer_and_schedule(model, cfg)
        iterations = self.iterations(cfg)
        every = max(1, iterations // 20)
        early = None
        if cfg["training"] in META_TRAININGS:
            val = self.fixed_episodes(pools["val"], cfg, "val", cfg["val_episodes"], cfg["val_shots"])
            early = EarlyStopping(validate=lambda: float(100.0 - head_accuracies(model.backbone, model.head, val, device).mean()),
                                  every=max(1, cfg["meta_batches_per_epoch"]), patience=iterations,
                                  best_path=Path(runs_dir) / key / "best.pt")
        kwargs = {"lr_schedule": schedule} if schedule is not None else {}
        state = train(model, optimizer, lambda i: self.train_batch(pools["train"], cfg, i).to(device), iterations,
                      Path(runs_dir) / key / "checkpoint.pt", key, checkpoint_every=every, log_every=max(1, every // 10),
                      progress=progress, desc=f"{cfg['row']} ({cfg['training']}) seed {cfg['train_seed']} [{cfg['scale']}]",
                      meta={"benchmark": self.id, "scale": cfg["scale"]}, progress_position=position, early_stopping=early, **kwargs)
        if early is not None and early.best_path.exists():
            model.load_state_dict(load_checkpoint(early.best_path, None)["model"])
        return model, state, pools

    # -- measures ----------------------------------------------------------------------------------------------------
    def test_head(self, backbone: nn.Module, cfg: dict, pools: dict, device: str) -> tuple[nn.Module, dict]:
        """The column's head; MAML's (step, steps) chosen on validation episodes of the test shots (module docstring)."""
        if cfg["head"] != "MAML":
            return make_head(cfg["head"], cfg, test=True).to(device), {}
        val = self.fixed_episodes(pools["val"], cfg, "val", cfg["maml_head_val_episodes"], cfg["test_shots"])
        scores = {point: float(v.mean()) for point, v in finetune_grid_accuracies(backbone, cfg["maml_head_grid"], val, device).items()}
        lr, steps = best_finite(scores, f"{cfg['row']} seed {cfg['train_seed']}: the MAML head's grid")
        return FineTuneHead(steps, lr), {"maml_head": {"lr": lr, "steps": steps, "validation_accuracy": scores[(lr, steps)],
                                                       "grid": recorded_grid(scores)}}

    def measure(self, model: nn.Module, cfg: dict, pools: dict, device: str) -> tuple[np.ndarray, dict]:
        kind = cfg["measure"]
        if kind in ("R_FC", "R_HV"):
            return separation_metrics(self.extractor(model), pools["train"], cfg, device), {}
        if kind == "lda":
            return lda_separation(self.extractor(model), pools["test"], cfg, device)
        episodes = self.fixed_episodes(pools["test"], cfg, "test", cfg["test_episodes"], cfg["test_shots"])
        if kind == "distance":
            return distances_travelled(model, episodes, device, cfg["test_seed"]), {}
        if cfg["head"] == "own":  # a MAML / Reptile model fine-tuned its own way
            return gbml_accuracies(model, episodes, device, cfg["test_seed"]), {}
        extractor = self.extractor(model)
        head, extra = self.test_head(extractor, cfg, pools, device)
        return head_accuracies(extractor, head, episodes, device), extra

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        self.check_cell(cell)
        cfg = self.config(cell, scale)
        key = self.training_key(cell, scale)
        model, state, pools = self.trained_model(cfg, self.runs_home(runs_dir), key, progress, device, progress_position)
        started = now(device)
        scores, extra = self.measure(model, cfg, pools, device)
        test_s = now(device) - started
        return CellResult(scores=scores, deviations=[], wall_time_s=state.elapsed_s + test_s, train_wall_time_s=state.elapsed_s,
                          extra={**extra, "checkpoint_key": key, "loss_curve": state.loss_curve,
                                 "timing": training_timing(state, test_s, device)})

    def evaluate_checkpoint(self, checkpoint: Path, cell: Cell, scale: str, device: str = "cpu") -> np.ndarray:
        from benchmarks.harness.paths import runs_dir

        self.check_cell(cell)
        cfg = self.config(cell, scale)
        pools = image_pools(cfg, runs_dir() / RUNS_HOME / scale)
        model = self.build_model(cfg, len(pools["train"]))
        model.load_state_dict(load_checkpoint(checkpoint, None)["model"])
        return self.measure(model.to(device), cfg, pools, device)[0]


class RegularisedTable(UnravelingImages):
    """Tables 3 and 8: mini-ImageNet and CIFAR-FS cells, and the released script's regularisers as a labelled variant of
    the rows that use one (``CODE_REGULARISERS``)."""

    datasets = ("mini_imagenet", "cifar100")  # data store names (CIFAR-FS is a split of cifar100)
    variants = {CODE_REGULARISERS: CODE_REGULARISERS_NOTE}

    def variant_applies(self, row: str, column: str, variant: str) -> bool:
        return variant == CODE_REGULARISERS and "R_" in row
