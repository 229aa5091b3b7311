"""One MAML meta-iteration on sinusoid: the default engine against `higher`.

Workload (issue #2): meta-batch 25, 5 inner steps, MLP 2x40, second order,
one thread. The default engine runs the 25 tasks as one batched computation;
the baseline is `higher` looping over tasks (the same code path with
``engine="higher"``). Both are timed in the same process, interleaved, so the
ratio is not skewed by a noisy machine; the gradients must agree to 1e-6.

Run with ``tox -e timing`` (or ``python -m benchmarks.harness.timing``).
"""

import os
import time

import pytest
import torch

from metarepro.episodes import SINUSOID_METASGD
from metarepro.inner import mse_per_task
from metarepro.timing import synchronize
from methods.backbones import MLP
from methods.maml import MAML

pytestmark = pytest.mark.timing
DEVICE = torch.device(os.environ.get("METAREPRO_DEVICE", "cpu"))
REQUIRED_SPEEDUP = 10.0


def make_step(engine):
    torch.manual_seed(0)
    model = MAML(MLP([1, 40, 40, 1]), mse_per_task, inner_lr=0.01, inner_steps=5, engine=engine).to(DEVICE)
    batch = SINUSOID_METASGD.train_batch(0, 0, 25, 10, 10).to(DEVICE)

    def step():
        model.zero_grad(set_to_none=True)
        model.outer_loss(batch).backward()
        synchronize(DEVICE)

    def grads():
        step()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    return step, grads


@pytest.mark.parametrize("engine", ["func", "higher"])
def test_meta_iteration(benchmark, engine):
    step, _ = make_step(engine)
    benchmark.group = "sinusoid-maml-meta-iteration"
    benchmark.extra_info.update(workload="meta-batch 25, 5 steps, 2x40, second order", threads=1, device=str(DEVICE),
                                load_average_1min=os.getloadavg()[0])
    benchmark(step)


def test_default_engine_speedup_over_higher(benchmark):
    fast, fast_grads = make_step("func")
    slow, slow_grads = make_step("higher")
    assert torch.allclose(fast_grads(), slow_grads(), rtol=0, atol=1e-6)
    best = {"func": float("inf"), "higher": float("inf")}
    for _ in range(15):  # interleaved: both see the same machine state
        for name, fn in (("func", fast), ("higher", slow)):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    ratio = best["higher"] / best["func"]
    benchmark.group = "sinusoid-maml-speedup"
    benchmark.extra_info.update(
        baseline="higher 0.2.1 per-task loop, fp32, 1 thread", best_func_s=best["func"], best_higher_s=best["higher"],
        speedup=ratio, device=str(DEVICE), load_average_1min=os.getloadavg()[0],
    )
    benchmark(fast)
    print(f"\nMAML sinusoid meta-iteration: func {best['func'] * 1e3:.2f} ms, higher {best['higher'] * 1e3:.2f} ms, {ratio:.1f}x")
    assert ratio >= REQUIRED_SPEEDUP, f"default engine only {ratio:.1f}x faster than higher"
