"""Classical vs meta training speed (Goldblum et al., "Unraveling Meta-Learning", Table 7), and the SVM head's share of
a MetaOptNet step.

One training step of each side on synthetic tensors of the real shapes, timed interleaved in one process (best of
``REPEATS`` rounds, two threads: this machine's cores; ``METAREPRO_DEVICE=cuda`` times a GPU, synchronised), then
projected to the paper's epochs and runs:

* classical: a minibatch of 128 (CIFAR-FS, 32 px) or 256 (mini-ImageNet, 84 px) images, cross-entropy over the 64
  training classes, Nesterov SGD (Appendix A.2); an epoch is the 64 x 600 = 38,400 training images; 300 epochs;
* meta: MetaOptNet's step (kjunelee/MetaOptNet ``train.py``): 8 episodes of 5-way 15-shot with 6 queries per class, the
  support and query images through the backbone, the head, query cross-entropy, Nesterov SGD; an epoch is 1000 such
  steps; 60 epochs ("for meta-learning methods, we follow the training hyperparameters from (Lee et al., 2019)").
  Table 7 pairs the R2-D2 backbone with ridge regression (R2-D2) and ResNet-12 with MetaOptNet-SVM.

Where a step would need more memory than this machine's 24 GiB (ResNet-12 at 84 px) it is timed on a quarter of the
batch (2 episodes; 64 images) and scaled by 4; ``extra_info`` says so (``measured_fraction``). The paper's times are
GPU times (2 RTX 2080 Ti for mini-ImageNet, one for CIFAR-FS); the ratios are what compare.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from metarepro.episodes import Episode
from metarepro.timing import best_of, synchronize
from methods.classical import ClassicalClassifier, LabelledBatch, nesterov_sgd
from methods.head_classifier import HeadClassifier
from methods.r2d2_encoder import R2D2Encoder
from methods.resnet12 import ResNet12
from methods.ridge_head import RidgeHead
from methods.svm_head import MetaOptNetSVM, svm_logits

pytestmark = pytest.mark.timing
DEVICE = torch.device(os.environ.get("METAREPRO_DEVICE", "cpu"))
THREADS, REPEATS = 2, 2
TRAIN_IMAGES, CLASSES, CLASSICAL_EPOCHS, META_EPOCHS, META_STEPS_PER_EPOCH = 64 * 600, 64, 300, 60, 1000
EPISODES, WAYS, SHOTS, QUERIES = 8, 5, 15, 6

#: Table 7 (GPU): (meta per epoch, meta total, classical per epoch, classical total), seconds
PAPER = {("R2-D2", 84): (16 * 60, 16.8 * 3600, 20, 1.7 * 3600), ("ResNet-12", 84): (1.5 * 3600, 88.0 * 3600, 1.4 * 60, 7.0 * 3600),
         ("R2-D2", 32): (44, 45 * 60, 4, 22 * 60), ("ResNet-12", 32): (4 * 60, 4.5 * 3600, 14, 1.2 * 3600)}


def _backbone(name: str, px: int):
    net = R2D2Encoder(3, form="metaoptnet") if name == "R2-D2" else ResNet12(3, dropblock_size=5 if px == 84 else 2)
    with torch.no_grad():
        dim = net.eval()(torch.zeros(1, 3, px, px)).shape[1]
    return net.train().to(DEVICE), dim


def _episodes(n: int, px: int, shots: int = SHOTS) -> Episode:
    g = torch.Generator().manual_seed(0)
    labels = lambda k: torch.arange(WAYS).repeat(k).expand(n, -1).contiguous()  # noqa: E731
    return Episode(torch.randn(n, WAYS * shots, 3, px, px, generator=g), labels(shots),
                   torch.randn(n, WAYS * QUERIES, 3, px, px, generator=g), labels(QUERIES)).to(DEVICE)


def _step(model, optimizer, batch):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model.outer_loss(batch).backward()
        optimizer.step()
    return step


@pytest.mark.parametrize("name, px", [("R2-D2", 32), ("ResNet-12", 32), ("R2-D2", 84), ("ResNet-12", 84)])
def test_classical_vs_meta_step(benchmark, name, px):
    torch.set_num_threads(THREADS)
    fraction = 4 if (name, px) == ("ResNet-12", 84) else 1  # 24 GiB: a quarter of the batch, times 4
    torch.manual_seed(0)
    backbone, dim = _backbone(name, px)
    classical = ClassicalClassifier(backbone, dim, CLASSES).to(DEVICE)
    batch_size = (128 if px == 32 else 256) // fraction
    g = torch.Generator().manual_seed(1)
    images = LabelledBatch(torch.randn(batch_size, 3, px, px, generator=g), torch.randint(0, CLASSES, (batch_size,), generator=g)).to(DEVICE)
    head = RidgeHead(form="metaoptnet") if name == "R2-D2" else MetaOptNetSVM()
    meta = HeadClassifier(_backbone(name, px)[0], head).to(DEVICE)
    steps = {"classical": _step(classical, nesterov_sgd(classical.parameters()), images),
             "meta": _step(meta, nesterov_sgd(meta.parameters()), _episodes(EPISODES // fraction, px))}
    best = {k: v * fraction for k, v in best_of(steps, REPEATS, DEVICE).items()}
    classical_epoch = best["classical"] * math.ceil(TRAIN_IMAGES / (batch_size * fraction))
    meta_epoch = best["meta"] * META_STEPS_PER_EPOCH
    paper = PAPER[(name, px)]
    benchmark.group = f"unraveling-table7-{name}-{px}px"
    benchmark.extra_info.update(
        classical_step_s=best["classical"], meta_step_s=best["meta"], classical_epoch_s=classical_epoch, meta_epoch_s=meta_epoch,
        classical_total_s=classical_epoch * CLASSICAL_EPOCHS, meta_total_s=meta_epoch * META_EPOCHS,
        meta_over_classical_per_epoch=meta_epoch / classical_epoch, paper_meta_over_classical_per_epoch=paper[0] / paper[2],
        paper_meta_over_classical_total=paper[1] / paper[3], measured_fraction=1 / fraction, threads=THREADS, device=str(DEVICE),
        meta=f"{'ridge (R2-D2)' if name == 'R2-D2' else 'MetaOptNet-SVM, 15 QP iterations'}, {EPISODES} episodes of 5-way {SHOTS}-shot "
             f"{QUERIES} queries", classical=f"batch {batch_size * fraction}, 64 classes", load_average_1min=os.getloadavg()[0])
    benchmark.pedantic(steps["classical"], rounds=1, iterations=1)
    print(f"\n{name} {px}px: classical epoch {classical_epoch / 60:.1f} min, meta epoch {meta_epoch / 60:.1f} min, "
          f"meta/classical {meta_epoch / classical_epoch:.1f}x per epoch (paper, GPU: {paper[0] / paper[2]:.1f}x)")


@pytest.mark.parametrize("px", [32, 84])
def test_svm_head_share_of_a_metaoptnet_step(benchmark, px):
    """R2-D2 backbone, 8 episodes of 5-way 5-shot with 6 queries per class, float32, 15 QP iterations, two threads: the
    SVM head's solve (forward and backward, on the step's own features) against the whole step. Goal (issue #16): at most
    a third at 32 px."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    backbone, _ = _backbone("R2-D2", px)
    model = HeadClassifier(backbone, MetaOptNetSVM())
    batch = _episodes(EPISODES, px, shots=5)
    step = _step(model, nesterov_sgd(model.parameters()), batch)
    with torch.no_grad():
        support, query = model.features(batch.support_x), model.features(batch.query_x)

    def head_only():
        s, q = support.clone().requires_grad_(True), query.clone().requires_grad_(True)
        logits = model.head(s, batch.support_y, q, WAYS)
        F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten()).backward()
        synchronize(DEVICE)

    def solve_only():  # the QP alone, forward and backward (its share of the head)
        s = support.clone().requires_grad_(True)
        alpha = model.head.solve(s, batch.support_y, WAYS)
        svm_logits(alpha, s, query).sum().backward()

    best = best_of({"step": step, "head": head_only, "solve": solve_only}, REPEATS + 1, DEVICE)
    benchmark.group = f"unraveling-svm-head-share-{px}px"
    benchmark.extra_info.update(step_s=best["step"], head_s=best["head"], solve_s=best["solve"], head_share=best["head"] / best["step"],
                                feature_dim=support.shape[-1], threads=THREADS, device=str(DEVICE), load_average_1min=os.getloadavg()[0])
    benchmark.pedantic(head_only, rounds=1, iterations=1)
    print(f"\nSVM head at {px}px (d = {support.shape[-1]}): {best['head'] * 1e3:.0f} ms of a {best['step'] * 1e3:.0f} ms step "
          f"({100 * best['head'] / best['step']:.0f}%)")
