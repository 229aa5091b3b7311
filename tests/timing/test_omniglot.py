"""Omniglot speed: episode sampling, ProtoNet training steps, embedding reuse, MAML meta-iterations.

Every ratio is taken in one process with the two sides interleaved (best of
several repetitions each), so a noisy machine skews both alike. Threads: one
per process (``torch.set_num_threads(1)``), the suite's default for jobs run
side by side. Baselines are named exactly in each test's ``extra_info``.

Run with ``tox -e timing`` (or ``python -m benchmarks.harness.timing``). Real
Omniglot is used when it is under the data root, else a generated fixture in
the same format (sampling and step costs depend on image counts and sizes,
not on the pixels).
"""

from __future__ import annotations

import ctypes
import os
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metarepro.data.fixtures import make_omniglot
from metarepro.data.omniglot import ClassPool, load_cache
from metarepro.data.store import data_root
from metarepro.episodes import Episode, task_rng
from metarepro.inner import cross_entropy_per_task
from metarepro.precision import autocast
from metarepro.runtime import keep_freed_memory
from metarepro.timing import best_of as best_of_on
from methods.backbones import Conv4, ConvNet
from methods.maml import MAML
from methods.protonet import ProtoNet, episode_accuracies_from_embeddings, prototypes, squared_euclidean

pytestmark = pytest.mark.timing
DEVICE = torch.device(os.environ.get("METAREPRO_DEVICE", "cpu"))


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> ClassPool:
    if (data_root() / "omniglot").is_dir():
        cache = load_cache(None, 28, "nearest", log=lambda *_: None)
        chars = cache.characters[:300]
    else:
        alphabets = (("images_background", "Alpha", 30), ("images_evaluation", "Beta", 30))
        root = make_omniglot(tmp_path_factory.mktemp("omniglot"), alphabets=alphabets)
        cache = load_cache(root, 28, "nearest", log=lambda *_: None)
        chars = cache.characters
    return ClassPool.from_split(cache, [(c, r) for c in chars for r in (0, 90, 180, 270)], "timing")


def best_of(fns: dict, repeats: int) -> dict:
    return best_of_on(fns, repeats, DEVICE)


# --------------------------------------------------------------------- ProtoNet


def textbook_conv4() -> nn.Sequential:
    """The plain fp32 Conv-4 as written in Snell et al.'s code: conv -> BN -> ReLU -> max-pool."""
    blocks = []
    for i in range(4):
        blocks += [nn.Conv2d(1 if i == 0 else 64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*blocks, nn.Flatten())


def protonet_step(backbone: nn.Module, episode: Episode, ways: int, shots: int, precision: str = "fp32"):
    optimizer = torch.optim.Adam(backbone.parameters(), lr=1e-3)
    x = torch.cat([episode.support_x, episode.query_x]).to(DEVICE)
    ys, yq = episode.support_y.to(DEVICE), episode.query_y.to(DEVICE)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            z = backbone(x)
        z = z.float()
        loss = F.cross_entropy(-squared_euclidean(z[len(ys) :], prototypes(z[: len(ys)], ys, ways)), yq)
        loss.backward()
        optimizer.step()
        return loss

    return step


class GlibcDefaults:
    """Switch glibc's allocator between its defaults and ``keep_freed_memory`` (process-wide, between timed calls)."""

    def __init__(self):
        self.libc = ctypes.CDLL("libc.so.6")

    def default(self):
        self.libc.mallopt(-4, 65536)  # M_MMAP_MAX default
        self.libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD default
        self.libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD default

    def keep(self):
        import metarepro.runtime as rt

        rt._applied = False
        keep_freed_memory()


def test_episode_sampling_is_under_5_percent_of_a_protonet_step(benchmark, pool):
    """60-way 5-shot 5-query training episode: sampling from the uint8 cache vs one ProtoNet step (this suite's, fp32)."""
    keep_freed_memory()
    episode = pool.sample(task_rng(0, "train", 0), 60, 5, 5)
    step = protonet_step(Conv4(1, 64).to(DEVICE), episode, 60, 5)
    i = iter(range(10**9))
    best = best_of({"sample": lambda: pool.sample(task_rng(0, "train", next(i)), 60, 5, 5), "step": step}, 8)
    fraction = best["sample"] / best["step"]
    benchmark.group = "omniglot-sampling"
    benchmark.extra_info.update(sample_s=best["sample"], protonet_step_s=best["step"], fraction=fraction, threads=1,
                                workload="60-way 5-shot 5 queries, 28x28, Conv-4 64, Adam, fp32", load_average_1min=os.getloadavg()[0])
    benchmark(lambda: pool.sample(task_rng(0, "train", next(i)), 60, 5, 5))
    print(f"\nsampling {best['sample'] * 1e3:.2f} ms = {100 * fraction:.2f}% of a ProtoNet step ({best['step'] * 1e3:.0f} ms)")
    assert fraction < 0.05


@pytest.mark.parametrize("shot", [1, 5])
def test_protonet_step_speedup_over_plain_fp32(benchmark, pool, shot):
    """This suite's step (pool before ReLU, glibc keeps freed memory; fp32 and bf16 autocast) against the plain fp32 step
    (textbook block order, glibc defaults), same weights and episode; loss and gradients must agree in fp32."""
    glibc = GlibcDefaults()
    episode = pool.sample(task_rng(0, "train", 1), 60, shot, 5)
    torch.manual_seed(0)
    ours = Conv4(1, 64).to(DEVICE)
    plain = textbook_conv4().to(DEVICE)
    ours_params = [p for p in ours.parameters()]
    with torch.no_grad():
        for a, b in zip([p for p in plain.parameters()], ours_params):
            a.copy_(b)
    # same loss and gradients (fp32)
    grads = []
    for net in (plain, ours):
        net.zero_grad()
        x = torch.cat([episode.support_x, episode.query_x]).to(DEVICE)
        z = net(x)
        ns = len(episode.support_y)
        F.cross_entropy(-squared_euclidean(z[ns:], prototypes(z[:ns], episode.support_y.to(DEVICE), 60)), episode.query_y.to(DEVICE)).backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    assert float((grads[0] - grads[1]).norm() / grads[0].norm()) < 1e-5

    plain_step, fp32_step, bf16_step = (protonet_step(plain, episode, 60, shot), protonet_step(ours, episode, 60, shot),
                                        protonet_step(Conv4(1, 64).to(DEVICE), episode, 60, shot, "bf16"))

    def with_defaults():
        glibc.default()
        plain_step()
        glibc.keep()

    best = best_of({"plain": with_defaults, "fp32": fp32_step, "bf16": bf16_step}, 6)
    benchmark.group = f"protonet-60way-{shot}shot-step"
    benchmark.extra_info.update(
        baseline="textbook Conv-4 (conv-BN-ReLU-pool), glibc allocator defaults, fp32, 1 thread", plain_s=best["plain"],
        fp32_s=best["fp32"], bf16_s=best["bf16"], speedup_fp32=best["plain"] / best["fp32"], speedup_bf16=best["plain"] / best["bf16"],
        bf16_over_fp32=best["fp32"] / best["bf16"], load_average_1min=os.getloadavg()[0])
    benchmark.pedantic(fp32_step, rounds=3, iterations=1)
    print(f"\nProtoNet 60-way {shot}-shot step: plain {best['plain'] * 1e3:.0f} ms, ours fp32 {best['fp32'] * 1e3:.0f} ms "
          f"({best['plain'] / best['fp32']:.2f}x), bf16 {best['bf16'] * 1e3:.0f} ms ({best['plain'] / best['bf16']:.2f}x)")


def test_embedding_reuse_on_1000_20way_episodes(benchmark, pool):
    """1000 20-way 1-shot 15-query test episodes: each test image embedded once vs each episode embedded (eval mode)."""
    keep_freed_memory()
    torch.manual_seed(0)
    model = ProtoNet(Conv4(1, 64)).to(DEVICE).eval()
    n = 1000
    episodes = [pool.sample_indices(task_rng(2017, "test", i), 20, 1, 15) for i in range(n)]

    def once():
        images = torch.from_numpy(pool.all_images()).float().div_(255.0).unsqueeze(2)
        with torch.no_grad():
            flat = images.flatten(0, 1)
            emb = torch.cat([model.backbone(flat[i : i + 2048].to(DEVICE)) for i in range(0, len(flat), 2048)])
        return episode_accuracies_from_embeddings(emb.view(len(pool), 20, -1).cpu(), episodes, 1)

    def per_episode():
        accs = []
        with torch.no_grad():
            for i in range(n):
                e = pool.sample(task_rng(2017, "test", i), 20, 1, 15).to(DEVICE)
                accs.append(model.score(e))
        return torch.cat(accs).cpu()

    t0 = time.perf_counter()
    a = once()
    t_once = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = per_episode()
    t_each = time.perf_counter() - t0
    assert torch.equal(a, b) or float((a - b).abs().max()) <= 1.0 / 300  # eval-mode BN: per-image, so equal up to ties in argmin
    benchmark.group = "protonet-embedding-reuse"
    benchmark.extra_info.update(embed_once_s=t_once, embed_per_episode_s=t_each, speedup=t_each / t_once, episodes=n,
                                classes=len(pool), load_average_1min=os.getloadavg()[0])
    benchmark.pedantic(once, rounds=1, iterations=1)
    print(f"\n1000 20-way episodes: embed once {t_once:.1f} s, per episode {t_each:.1f} s, {t_each / t_once:.1f}x")


# ------------------------------------------------------------------------- MAML


def matmul_peak_flops(dtype=torch.float32, size=1024, repeats=5) -> float:
    a, b = torch.randn(size, size, dtype=dtype, device=DEVICE), torch.randn(size, size, dtype=dtype, device=DEVICE)
    best = best_of({"mm": lambda: a @ b}, repeats)["mm"]
    return 2 * size**3 / best


MAML_WORKLOADS = {"5-way 1-shot": (5, 1, 32, 1, 0.4), "20-way 1-shot": (20, 1, 16, 5, 0.1)}  # ways, shots, meta-batch, steps, lr


#: relative distance of a float32 second-order meta-gradient from the float64 one that still counts as rounding
FLOAT32_META_GRADIENT_TOLERANCE = 5e-4


@pytest.mark.parametrize("workload", list(MAML_WORKLOADS))
def test_maml_meta_iteration_batched_vs_loop_and_higher(benchmark, pool, workload):
    """finn2017-table1 configuration, second order: grouped per-task forward vs the per-task loop and `higher` over stock layers."""
    from tests.test_convnet import StockConvNet

    keep_freed_memory()
    ways, shots, meta_batch, steps, lr = MAML_WORKLOADS[workload]
    torch.manual_seed(0)
    net = ConvNet(1, ways, 64, pool=False, features="mean", bn_scale=False, head_init="normal").to(DEVICE)
    stock = StockConvNet(net).to(DEVICE)
    rng = task_rng(0, "train", 0)
    batch = Episode.stack([pool.sample(rng, ways, shots, shots) for _ in range(meta_batch)])
    # finn2017-table1 inverts the images (background 0, as cbfinn/maml reads them). On the raw images (background 1,
    # mean 0.92) the float32 meta-gradient is ill-conditioned: measured on 32 tasks, the grouped form is 8e-4 from
    # float64 where the loop is 1e-5 (inverted: 2e-6 both), an open numerical finding kept out of this ratio
    batch = Episode(1.0 - batch.support_x, batch.support_y, 1.0 - batch.query_x, batch.query_y).to(DEVICE)

    def maml(backbone, engine):
        frozen = [n for n, m in backbone.named_modules() if isinstance(m, nn.BatchNorm2d)]
        frozen = tuple(f"{n}.{p}" for n in frozen for p in ("weight", "bias")) + tuple(f"norms.{i}.bias" for i in range(4))
        return MAML(backbone, cross_entropy_per_task, lr, steps, frozen=frozen, engine=engine)

    models = {"batched": maml(net, "func"), "loop": maml(stock, "func"), "higher": maml(stock, "higher")}

    def step(model, precision="fp32"):
        params = [p for p in model.backbone.parameters() if p.requires_grad]

        def meta_gradient():
            with autocast(DEVICE, precision):
                loss = model.outer_loss(batch)
            return torch.autograd.grad(loss, params)

        return meta_gradient

    steps_ = {k: step(m) for k, m in models.items()}
    steps_["batched_bf16"] = step(models["batched"], "bf16")
    g_batched, g_loop = steps_["batched"](), steps_["loop"]()
    # bf16 autocast (issue #4's precision option) on the grouped form: its meta-gradient against the fp32 one
    g_bf16 = torch.cat([g.flatten() for g in steps_["batched_bf16"]()])
    flat_fp32 = torch.cat([g.flatten() for g in g_batched])
    bf16_rel, bf16_cos = float((g_bf16 - flat_fp32).norm() / flat_fp32.norm()), float(F.cosine_similarity(g_bf16, flat_fp32, dim=0))
    order = [0, 1, 3, 4, 6, 7, 9, 10, 2, 5, 8, 11, 12, 13]
    flat_loop = torch.cat([g_loop[i].flatten() for i in order])
    rel = float((flat_fp32 - flat_loop).norm() / flat_loop.norm())
    # the truth: the loop in float64. Float32 rounding alone puts any implementation ~5e-5 from it on the 20-way workload, so
    # "within 1e-5 of the loop" (the bar, kept) is partly a statement about shared rounding; the errors against
    # float64 are compared as well
    loop64 = maml(StockConvNet(net).to(DEVICE, torch.float64), "func")
    batch64 = Episode(batch.support_x.double(), batch.support_y, batch.query_x.double(), batch.query_y)
    truth = torch.autograd.grad(loop64.outer_loss(batch64), [p for p in loop64.backbone.parameters() if p.requires_grad])
    truth = torch.cat([truth[i].flatten() for i in order])
    batched_error, loop_error = (float((g.double() - truth).norm() / truth.norm()) for g in (flat_fp32, flat_loop))
    from torch.utils.flop_counter import FlopCounterMode

    # counted on the loop over stock layers: the same arithmetic, and torch's counter charges a grouped convolution's
    # backward as if every group saw every input channel (measured: T times the true count for T groups)
    with FlopCounterMode(display=False) as counter:
        steps_["loop"]()
    flops = counter.get_total_flops()
    peak = matmul_peak_flops()
    best = best_of(steps_, 3)
    achieved = flops / best["batched"]
    # what bounds the goal (3x the loop): the loop already runs at loop_fraction of the peak, so no implementation of the
    # same FLOPs can beat it by more than 1 / loop_fraction
    loop_fraction = flops / best["loop"] / peak
    benchmark.group = f"maml-omniglot-{workload.replace(' ', '')}"
    benchmark.extra_info.update(
        workload=(f"{workload}, meta-batch {meta_batch}, {steps} step(s), lr {lr}, second order, inverted images (the protocol), "
                  "Conv-4 64 strided, fp32, 1 thread"),
        baselines="per-task loop over stock nn layers (torch.func) and higher 0.2.1 over the same", **{f"{k}_s": v for k, v in best.items()},
        speedup_vs_loop=best["loop"] / best["batched"], speedup_vs_higher=best["higher"] / best["batched"], meta_gradient_rel_diff=rel,
        batched_rel_error_vs_float64=batched_error, loop_rel_error_vs_float64=loop_error,
        bf16_over_fp32=best["batched"] / best["batched_bf16"], bf16_meta_gradient_rel_diff=bf16_rel, bf16_meta_gradient_cosine=bf16_cos,
        flops_per_iteration=flops, achieved_flops=achieved, matmul_peak_flops=peak, fraction_of_peak=achieved / peak,
        loop_fraction_of_peak=loop_fraction, speedup_vs_loop_at_peak=1 / loop_fraction, load_average_1min=os.getloadavg()[0])
    benchmark.pedantic(steps_["batched"], rounds=2, iterations=1)
    print(f"\nMAML {workload}: batched {best['batched']:.3f} s, loop {best['loop']:.3f} s ({best['loop'] / best['batched']:.2f}x), "
          f"higher {best['higher']:.3f} s ({best['higher'] / best['batched']:.2f}x); {flops / 1e9:.2f} GFLOP, "
          f"{achieved / 1e9:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of the matmul peak {peak / 1e9:.0f} GFLOP/s (the loop: "
          f"{100 * loop_fraction:.0f}%, so at most {1 / loop_fraction:.1f}x over it at full peak); rel diff {rel:.1e} "
          f"(from float64: batched {batched_error:.1e}, loop {loop_error:.1e}); "
          f"bf16 autocast {best['batched'] / best['batched_bf16']:.2f}x, meta-gradient {bf16_rel:.1e} from fp32 (cosine {bf16_cos:.3f})")
    # each engine held to the float64 truth, not to the other: at 20-way both sit ~5e-5 from it and 1e-5 apart, so the old
    # "batched within 1e-5 of the loop" failed one run in three on rounding alone (issue #14). 5e-4 is 10x that rounding and
    # ~1000x below a real error (first-order MAML's meta-gradient is 10-100% off the second-order one)
    assert batched_error < FLOAT32_META_GRADIENT_TOLERANCE and loop_error < FLOAT32_META_GRADIENT_TOLERANCE, (batched_error, loop_error)
