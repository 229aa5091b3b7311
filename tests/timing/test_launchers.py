"""The cluster launchers against the process pool (issue #20), in one process, on this machine's local engines.

* overhead per task: one ``alfa-table8`` smoke group (a second of training) run in-process, as a Ray task and as a
  submitit local job; the difference is the launcher's start-up, imports and frozen-code copy;
* throughput: ``finn2017-table1``'s four quick groups (1.7-4 minutes each) two at a time in the process pool and on a
  two-CPU Ray instance, with their per-episode scores compared.

Each run has roots of its own under a temporary folder. Nothing here asserts a speed; the seconds and the ratio are in
the benchmark JSON's ``extra_info``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from benchmarks import get_benchmark
from benchmarks.harness.base import Cell
from benchmarks.harness.runner import reproduce
from tests.conftest import ROOT, local_ray

pytestmark = pytest.mark.timing


def _roots(base: Path, name: str, monkeypatch) -> Path:
    root = base / name
    shutil.copytree(ROOT / "results" / "published", root / "results" / "published")
    for var, folder in (("METAREPRO_RESULTS", "results"), ("METAREPRO_LOCAL_RESULTS", "results"), ("METAREPRO_RUNS", "runs")):
        monkeypatch.setenv(var, str(root / folder))
    return root


def _seconds(launcher: str, benchmark_id: str, cells: list[Cell], scale: str, jobs: int) -> float:
    started = time.perf_counter()
    reproduce(get_benchmark(benchmark_id), scale, cells, jobs=jobs, threads=1, progress=False, log=lambda *_: None, launcher=launcher)
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def ray_instance():
    with local_ray(pytest.importorskip("ray")):
        yield


def test_overhead_per_task(benchmark, ray_instance, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    cells = [Cell.parse("MAML/2x40 5-shot")]
    seconds = {}
    for launcher in ("pool", "ray"):
        _roots(tmp_path, launcher, monkeypatch)
        seconds[launcher] = _seconds(launcher, "alfa-table8", cells, "smoke", 1)
    _roots(tmp_path, "local", monkeypatch)
    benchmark.pedantic(lambda: seconds.update(local=_seconds("local", "alfa-table8", cells, "smoke", 1)), rounds=1, iterations=1)
    benchmark.extra_info.update({f"{k}_s": round(v, 2) for k, v in seconds.items()})
    benchmark.extra_info.update({f"{k}_overhead_s": round(seconds[k] - seconds["pool"], 2) for k in ("ray", "local")})


def test_throughput_against_the_pool(benchmark, ray_instance, tmp_path, monkeypatch):
    benchmark_ = get_benchmark("finn2017-table1")
    if not benchmark_.data_available():
        pytest.skip("Omniglot is not under the data root")
    cells = benchmark_.cells(scale="quick")
    pool = _roots(tmp_path, "pool", monkeypatch)
    pool_s = _seconds("pool", benchmark_.id, cells, "quick", 2)
    ray = _roots(tmp_path, "ray", monkeypatch)
    out = {}
    benchmark.pedantic(lambda: out.update(ray_s=_seconds("ray", benchmark_.id, cells, "quick", 2)), rounds=1, iterations=1)

    def scores(root: Path) -> dict:
        folder = root / "results" / "reproduced" / benchmark_.id / "quick"
        return {p.name: json.loads(p.read_text())["scores"] for p in folder.glob("*.json")}

    benchmark.extra_info.update({"pool_s": round(pool_s, 1), "ray_s": round(out["ray_s"], 1), "ray_over_pool": round(out["ray_s"] / pool_s, 3),
                                 "groups": len(cells)})
    assert scores(ray) == scores(pool)  # the same numbers, wherever they ran
