"""Every registered method learns; every registered benchmark runs at smoke scale."""

import json

import pytest
import torch

from benchmarks import BENCHMARKS
from benchmarks.harness.base import Benchmark, Cell
from benchmarks.harness.cli import main
from metarepro import results as R
from metarepro.episodes import SINUSOID_METASGD
from metarepro.evaluate import score_episodes
from metarepro.inner import mse_per_task
from methods import METHODS
from methods.backbones import MLP


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_learns_sinusoid_regression(name):
    """300 meta-iterations must beat the untrained model on fixed test tasks."""
    torch.manual_seed(0)
    model = METHODS[name](MLP([1, 40, 40, 1], init="torch"), mse_per_task, 0.02, 2)
    test = SINUSOID_METASGD.test_episodes(seed=1, n_episodes=100, n_support=10, n_query=50)
    before = score_episodes(model.score, test).mean()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for i in range(300):
        opt.zero_grad()
        loss = model.outer_loss(SINUSOID_METASGD.train_batch(0, i, 10, 10, 10))
        loss.backward()
        opt.step()
    after = score_episodes(model.score, test).mean()
    assert after < 0.85 * before, f"{name}: test MSE {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize("benchmark_id", sorted(BENCHMARKS))
def test_benchmark_runs_at_smoke_scale(benchmark_id, isolated_results, capsys):
    benchmark = BENCHMARKS[benchmark_id]
    if benchmark.not_runnable:  # registered for its published numbers (alfa-table3): says why, runs nothing, compares
        check_not_runnable_benchmark(benchmark, isolated_results, capsys)
        return
    assert main(["reproduce", benchmark_id, "--scale", "smoke", "--jobs", "1", "--no-progress"]) == 0
    records = list((isolated_results / "reproduced" / benchmark_id / "smoke").glob("*.json"))
    assert len(records) == len(benchmark.cells(scale="smoke"))
    for path in records:
        record = json.loads(path.read_text())
        assert record["scale"] == "smoke" and record["n_episodes"] > 0
        assert record["provenance"]["torch"] == torch.__version__
        # learning, not just running: better than a model that learned nothing, on the same test episodes
        cell = Cell.of(record)
        if benchmark.protocol_model(cell, "smoke") is not None:  # a cell that trains (vinyals2016-table1's Pixels does not)
            assert record["trainings"] and all(s["iterations"][0] == 0 for t in record["trainings"] for s in t["segments"])
        score, trivial, higher = benchmark.smoke_learning_evidence(record)
        assert score > trivial if higher else score < trivial, f"{benchmark_id} {cell.label}: smoke {score:.3f} vs untrained {trivial:.3f}"
    capsys.readouterr()
    assert main(["compare", benchmark_id, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["cells"]
    trained = [r for r in rows if r["variant"] == "main" and r["verdict"] != "cited"]
    if R.load_published(benchmark_id):
        assert trained and all(r["verdict"] == "not_reproduced" for r in trained) or any(
            r["scale"] == "paper" for r in rows
        ), "smoke records must never count as reproductions"
    else:  # a figure or a claim check: the paper prints no numbers, so there is nothing to compare
        assert rows == [] and len(report["records"]) == 0  # smoke records are never listed as results
        assert main(["compare", benchmark_id]) == 0
        assert "No published numbers" in capsys.readouterr().out
    assert all(r["reproduced_mean"] is None for r in rows if r["verdict"] == "cited"), "cited baselines are never trained"
    if type(benchmark).render_figures is not Benchmark.render_figures:
        figures = list((isolated_results / "figures").glob(f"{benchmark_id}--smoke*.png"))
        assert figures and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    assert (isolated_results / "README.md").exists()


@pytest.mark.parametrize("benchmark_id", sorted(b for b, bench in BENCHMARKS.items() if getattr(bench, "smoke_column", None)))
def test_a_smoke_column_map_runs_every_row_once_and_covers_every_column(benchmark_id):
    benchmark = BENCHMARKS[benchmark_id]
    cells = benchmark.cells(scale="smoke")
    assert sorted(c.row for c in cells) == sorted(benchmark.rows)  # every row, once (one seed, one run at smoke)
    assert set(benchmark.columns) - {c.column for c in cells} == set(getattr(benchmark, "smoke_uncovered_columns", ()))
    assert not {(c.row, c.column) for c in cells} & set(benchmark.absent)
    everything = {(c.row, c.column) for c in benchmark.cells(scale="paper")}
    assert {(c.row, c.column) for c in cells} <= everything


def check_not_runnable_benchmark(benchmark: Benchmark, isolated_results, capsys) -> None:
    """A benchmark whose data the suite cannot read has no cell at any scale; ``reproduce`` prints its reason and exits 0
    (a dvc stage or ``reproduce table3`` must not fail on it); ``compare`` lists every published cell, none reproduced."""
    assert all(benchmark.cells(scale=s) == [] for s in ("smoke", "quick", "paper"))
    assert benchmark.cells()  # the table's cells are registered
    for scale in ("smoke", "paper"):
        capsys.readouterr()
        assert main(["reproduce", benchmark.id, "--scale", scale, "--yes", "--no-progress"]) == 0
        assert benchmark.not_runnable in capsys.readouterr().out
    assert not (isolated_results / "reproduced" / benchmark.id).exists()
    assert main(["compare", benchmark.id, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["cells"]
    assert len(rows) == len(R.load_published(benchmark.id)) > 0
    assert all(r["verdict"] == "not_reproduced" and r["reproduced_mean"] is None for r in rows)
    assert main(["compare", benchmark.id]) == 0
    assert "Not runnable here" in capsys.readouterr().out
