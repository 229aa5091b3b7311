import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("METAREPRO_SHARED", ROOT.parent / "shared"))

# Small models are fastest (and deterministic) on one thread.
torch.set_num_threads(1)


@pytest.fixture
def isolated_results(tmp_path, monkeypatch):
    """A results/ and runs/ of its own, seeded with the published numbers."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "published", results / "published")
    monkeypatch.setenv("METAREPRO_RESULTS", str(results))
    monkeypatch.setenv("METAREPRO_LOCAL_RESULTS", str(results))  # a user's runs land beside the published numbers here
    monkeypatch.setenv("METAREPRO_RUNS", str(tmp_path / "runs"))
    return results


def assert_gradient_matches_central_differences(loss_fn, entries, step: float = 1e-6, rtol: float = 1e-6) -> None:
    """Autograd's gradient of the scalar ``loss_fn()`` at ``entries`` ((float64 parameter, flat index) pairs) against
    central differences ``(L(x + h) - L(x - h)) / 2h``, within ``rtol`` of ``max(1, |numeric|)``."""
    grads = torch.autograd.grad(loss_fn(), [p for p, _ in entries])
    for (param, index), grad in zip(entries, grads):
        flat = param.data.view(-1)
        original = flat[index].item()
        values = []
        for shifted in (original + step, original - step):
            with torch.no_grad():
                flat[index] = shifted
            values.append(loss_fn().item())  # an inner loop needs autograd: no no_grad here
        with torch.no_grad():
            flat[index] = original
        numeric = (values[0] - values[1]) / (2 * step)
        assert abs(grad.view(-1)[index].item() - numeric) <= rtol * max(1.0, abs(numeric)), (index, grad.view(-1)[index].item(), numeric)


@contextlib.contextmanager
def local_ray(ray, **init_options):
    """A local Ray instance on 2 CPUs, its workers at niceness 0 as the launcher's own local instance (see
    ``launchers.run_on_ray``); on exit it is shut down and the driver's SIGTERM and SIGINT handlers are put back (ray.init
    replaces them and ray.shutdown leaves them, which broke the trainer's signal tests that ran after).

    One instance at a time on the machine (a file lock): under ``pytest -n`` two workers would otherwise each start one,
    and a test that kills "the" ``ray::entry`` process finds it among all the machine's processes."""
    import tempfile

    from metarepro.atomic import file_lock

    os.environ.setdefault("RAY_worker_niceness", "0")
    with file_lock(Path(tempfile.gettempdir()) / "metarepro-tests-ray.lock"):
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, **init_options)
        try:
            yield ray
        finally:
            ray.shutdown()
            for s, handler in handlers.items():
                signal.signal(s, handler)


def pytest_xdist_auto_num_workers(config):
    """``pytest -n auto``: one worker per core the process may use, at most 8 (each worker runs its tests on one torch
    thread; many more would only add memory)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores))
