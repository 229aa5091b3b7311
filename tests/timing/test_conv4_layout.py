"""Conv-4's CPU memory layout: channels-last (the default since 2026-12-06) against NCHW (every earlier record's).

The two sides are timed interleaved in one process (best of several repetitions each), one thread, same weights and
batch; their losses must agree to float32 rounding. No speed is asserted: the ratios go to the JSON (``extra_info``).
Workloads: a MetaOptNet-style meta-update of ``unraveling-omniglot-heads`` (8 episodes of 5-way 1-shot with 15
queries, the prototype head, Nesterov SGD) and a classical batch of 128 images (over the timing pool's 1,200 classes where
real Omniglot is here; the heads benchmark trains over 4,112). CPU only: on CUDA
Conv-4 keeps the layout it is given.
"""

from __future__ import annotations

import os

import pytest
import torch

from metarepro.episodes import Episode, task_rng
from metarepro.timing import best_of
from methods.backbones import Conv4, conv4_layout
from methods.classical import ClassicalClassifier, LabelledBatch, nesterov_sgd
from methods.head_classifier import HeadClassifier, ProtoHead
from tests.timing.test_omniglot import pool  # noqa: F401 (the fixture: real Omniglot where it is here)

pytestmark = pytest.mark.timing


def heads_batch(classes_pool) -> Episode:
    return Episode.stack([classes_pool.sample(task_rng(0, "train", i), 5, 1, 15) for i in range(8)])


def classical_batch(classes_pool) -> LabelledBatch:
    rng = task_rng(0, "train", 0)
    classes = rng.integers(len(classes_pool), size=128)
    x = torch.from_numpy(classes_pool.images(classes, rng.integers(20, size=(128, 1)))).float().div_(255.0)
    return LabelledBatch(x, torch.from_numpy(classes))


def update(model: torch.nn.Module, batch, layout: str):
    optimizer = nesterov_sgd(model.parameters(), lr=0.0, weight_decay=0.0)  # a step that leaves the weights as they are

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with conv4_layout(layout):
            loss = model.outer_loss(batch)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


@pytest.mark.skipif(os.environ.get("METAREPRO_DEVICE", "cpu") != "cpu", reason="the layout switch is CPU only")
@pytest.mark.parametrize("workload", ["heads meta-update", "classical batch"])
def test_conv4_channels_last_against_nchw(benchmark, pool, workload):  # noqa: F811
    torch.manual_seed(0)
    if workload == "heads meta-update":
        model, batch = HeadClassifier(Conv4(1, 64), ProtoHead()), heads_batch(pool)
        described = "8 episodes x (5-way 1-shot + 15 queries), 28x28, Conv-4 64, prototype head, Nesterov SGD, fp32"
    else:
        model, batch = ClassicalClassifier(Conv4(1, 64), 64, len(pool)), classical_batch(pool)
        described = f"128 images over {len(pool)} classes, 28x28, Conv-4 64, linear classifier, Nesterov SGD, fp32"
    steps = {layout: update(model, batch, layout) for layout in ("nchw", "channels_last")}
    losses = {layout: step() for layout, step in steps.items()}
    # float32 rounding through four BatchNorm layers (2.7e-5 relative measured on the heads update); a layout bug, such as
    # features flattened in (h, w, c) order, is orders of magnitude larger
    assert abs(losses["nchw"] - losses["channels_last"]) <= 2e-4 * abs(losses["nchw"])
    best = best_of(steps, 5, torch.device("cpu"))
    speedup = best["nchw"] / best["channels_last"]
    benchmark.group = f"conv4-layout-{workload.replace(' ', '-')}"
    benchmark.extra_info.update(baseline="the same update in NCHW (conv4_layout('nchw'))", nchw_s=best["nchw"],
                                channels_last_s=best["channels_last"], speedup=speedup, threads=1, workload=described,
                                load_average_1min=os.getloadavg()[0])
    benchmark.pedantic(steps["channels_last"], rounds=3, iterations=1)
    print(f"\n{workload}: NCHW {best['nchw'] * 1e3:.0f} ms, channels-last {best['channels_last'] * 1e3:.0f} ms ({speedup:.2f}x)")
