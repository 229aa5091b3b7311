"""Comparison verdicts, staleness, hand-edit detection, and the CLI's contract."""

import json

import numpy as np
import pytest

from benchmarks import BENCHMARKS
from benchmarks.harness.base import Cell
from benchmarks.harness.cli import main
from metarepro import results as R

BENCH = BENCHMARKS["alfa-table8"]
CELL = Cell("MAML", "2x40 5-shot")


def fake_record(scale, scores, cell=CELL, config=None):
    return R.make_record(
        benchmark=BENCH.id, row=cell.row, column=cell.column, variant=cell.variant, scale=scale, metric="MSE",
        scores=np.asarray(scores), config=config if config is not None else BENCH.config(cell, scale),
        deviations=[], provenance={"test": True},
    )


def test_within_tolerance_is_interval_overlap():
    assert R.within_tolerance(1.0, 0.2, 1.29, 0.1)
    assert not R.within_tolerance(1.0, 0.2, 1.31, 0.1)
    assert R.within_tolerance(1.0, None, 1.04, 0.05)  # paper prints no interval: ours alone
    assert not R.within_tolerance(1.0, None, 1.06, 0.05)


def test_standard_errors_are_converted_to_95_intervals():
    cell = R.PublishedCell("r", "c", 50.0, 0.5, "se", "")
    assert cell.ci95 == pytest.approx(0.98)
    assert R.PublishedCell("r", "c", 50.0, None, "none", "").ci95 is None


def test_a_standard_deviation_over_3_seeds_becomes_the_t_interval_of_their_mean():
    from scipy import stats

    cell = R.PublishedCell("r", "c", 99.62, 0.08, "sd3", "", printed="99.62 ± 0.08%")
    assert cell.ci95 == pytest.approx(stats.t.ppf(0.975, 2) * 0.08 / np.sqrt(3), rel=1e-8)
    row = {"published_interval_kind": "sd3", "published_printed": cell.printed, "published_cited": False, "published_mean": 99.62,
           "published_ci95": cell.ci95}
    assert R.published_text(row) == "99.62 ± 0.08 (SD over 3 seeds; ± 0.199 at 95%)"


def test_a_per_query_spread_is_not_an_interval_and_compares_by_rounding():
    cell = R.PublishedCell("r", "c", 69.12, 0.47, "sd-query", "", printed="$69.12 \\pm 0.47\\%$")
    assert cell.ci95 is None and cell.half_width == pytest.approx(0.005)
    row = {"published_interval_kind": "sd-query", "published_printed": cell.printed, "published_cited": False, "published_mean": 69.12,
           "published_ci95": None, "published_half_width": cell.half_width}
    assert R.published_text(row) == "69.12 ± 0.47 (per-query SD, not an interval) (rounding ± 0.005)"


def test_verdicts(isolated_results):
    pub = R.PublishedCell(CELL.row, CELL.column, 1.24, 0.21, "ci95", "")
    h_paper, h_quick = BENCH.result_hash(CELL, "paper"), BENCH.result_hash(CELL, "quick")
    near = fake_record("paper", [1.2, 1.3, 1.25, 1.1])
    far = fake_record("paper", [3.0, 3.1, 2.9, 3.0])
    quick = fake_record("quick", [1.2, 1.3])
    stale = fake_record("paper", [1.2, 1.3], config={**BENCH.config(CELL, "paper"), "iterations": 1})
    assert R.compare_cell(pub, [near], h_paper)["verdict"] == "within"
    assert R.compare_cell(pub, [far], h_paper)["verdict"] == "outside"
    assert R.compare_cell(pub, [quick], h_paper, current_quick_hash=h_quick)["verdict"] == "quick_only"
    assert R.compare_cell(pub, [stale], h_paper)["verdict"] == "stale"
    assert R.compare_cell(pub, [], h_paper)["verdict"] == "not_reproduced"
    row = R.compare_cell(pub, [far, quick], h_paper)
    assert row["scale"] == "paper" and row["difference"] == pytest.approx(np.mean([3.0, 3.1, 2.9, 3.0]) - 1.24)


def test_each_training_seed_is_its_own_labelled_row_of_the_comparison():
    from benchmarks.harness.runner import comparison

    bench = BENCHMARKS["alfa-table1"]  # 3 training seeds a cell
    rows = [r for r in comparison(bench, include_variants=False) if r["verdict"] != "cited"]
    first = (rows[0]["row"], rows[0]["column"])
    assert sorted(r["seed"] for r in rows if (r["row"], r["column"]) == first) == [0, 1, 2]
    lines = R.markdown_table(rows[:3]).splitlines()
    assert lines[0].split("|")[4].strip() == "seed"
    assert [line.split("|")[4].strip() for line in lines[2:]] == ["0", "1", "2"]
    single = R.markdown_table([{**rows[0], "seed": 0}])
    assert "seed" not in single.splitlines()[0]


def test_only_the_rough_time_estimates_may_change_without_staling_a_record():
    """By hand: the digest of the JSON config less the two estimate keys, whatever their values."""
    import hashlib

    config = {"iterations": 10, "inner_lr": 0.4, "ms_per_iteration_estimate": 80.0, "ms_per_test_task_estimate": 15.0}
    by_hand = hashlib.sha256(b'{"inner_lr":0.4,"iterations":10}').hexdigest()[:16]
    assert R.result_hash(config) == by_hand == R.result_hash({**config, "ms_per_iteration_estimate": 118.0})
    assert R.result_hash({**config, "inner_lr": 0.5}) != by_hand
    pub = R.PublishedCell(CELL.row, CELL.column, 1.24, 0.21, "ci95", "")
    retuned = fake_record("paper", [1.2, 1.3, 1.25, 1.1], config={**BENCH.config(CELL, "paper"), "ms_per_iteration_estimate": -1.0})
    assert R.compare_cell(pub, [retuned], BENCH.result_hash(CELL, "paper"))["verdict"] == "within"


def test_record_with_changed_config_is_reported_stale(isolated_results, capsys):
    R.write_record(fake_record("paper", [1.2, 1.3], config={**BENCH.config(CELL, "paper"), "inner_lr": 0.5}), CELL.slug)
    assert main(["compare", BENCH.id, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["cells"]
    (row,) = [r for r in rows if (r["row"], r["column"], r["variant"]) == (CELL.row, CELL.column, "main")]
    assert row["verdict"] == "stale"


def test_compare_json_contract_and_exit_status(isolated_results, capsys):
    R.write_record(fake_record("paper", [3.0, 3.1, 2.9, 3.0]), CELL.slug)  # far outside the published 1.24
    assert main(["compare", BENCH.id, "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"benchmark", "cells", "claims", "extra_rows", "notes", "records", "local_records"}
    rows = report["cells"]
    keys = {"benchmark", "row", "column", "published_mean", "published_ci95", "reproduced_mean", "reproduced_ci95",
            "scale", "verdict", "difference_ci95", "difference_verdict"}
    assert all(keys <= set(r) for r in rows)
    assert {r["verdict"] for r in rows} <= set(R.VERDICTS)
    (row,) = [r for r in rows if (r["row"], r["column"], r["variant"]) == (CELL.row, CELL.column, "main")]
    assert row["verdict"] == "outside" and row["scale"] == "paper"
    assert len([r for r in rows if r["variant"] == "main"]) == 12


def test_hand_edited_record_is_detected():
    record = fake_record("paper", [1.0, 2.0, 3.0])
    R.check_record(record)
    record["mean"] = 1.5
    with pytest.raises(ValueError, match="edited by hand"):
        R.check_record(record)
    record = fake_record("paper", [1.0, 2.0, 3.0])
    record["config"]["iterations"] = record["config"].get("iterations", 0) + 1  # made to look current by hand
    with pytest.raises(ValueError, match="does not hash to its config_hash"):
        R.check_record(record)


@pytest.mark.parametrize("benchmark_id", sorted(BENCHMARKS))
def test_every_cell_of_a_benchmark_has_its_own_record_file(benchmark_id):
    """Record files are named by slug: two rows whose names slug alike ("MAML++" and "MAML") would overwrite each other."""
    benchmark = BENCHMARKS[benchmark_id]
    cells = [Cell(r, c, v, s) for r in benchmark.rows + benchmark.cited_rows for c in benchmark.columns
             for v in ("main", *benchmark.variants) for s in range(max(3, benchmark.training_seeds))]
    slugs = [c.slug for c in cells]
    assert len(set(slugs)) == len(slugs), sorted({s for s in slugs if slugs.count(s) > 1})[:3]


def test_unknown_benchmark_lists_valid_ids(capsys):
    assert main(["compare", "alfa-table99"]) == 2
    err = capsys.readouterr().err
    assert "alfa-table99" in err and "alfa-table8" in err


def test_unknown_cell_is_a_clear_error(isolated_results, capsys):
    assert main(["reproduce", BENCH.id, "--scale", "smoke", "--cells", "MAML/4x4 1-shot"]) == 2
    assert "has no cell" in capsys.readouterr().err


def test_a_misspelt_id_row_or_column_names_the_closest_one_and_prints_unquoted(isolated_results, capsys):
    assert main(["compare", "alfa-tabel8"]) == 2
    assert "unknown benchmark id 'alfa-tabel8' (did you mean 'alfa-table8'?)" in capsys.readouterr().err
    column = BENCH.columns[0]
    assert main(["reproduce", BENCH.id, "--scale", "smoke", "--cells", f"{BENCH.rows[0]}/{column.replace('-', ' ')}"]) == 2
    err = capsys.readouterr().err
    assert f"(did you mean {column!r}?)" in err and "\\'" not in err  # the message as written, not a KeyError's repr
    assert main(["reproduce", BENCH.id, "--scale", "smoke", "--cells", f"Prototypical Networks/{column}"]) == 2
    assert "did you mean" not in capsys.readouterr().err  # nothing close: no guess


def test_precision_runs_the_bf16_variant_or_says_the_benchmark_has_none(isolated_results, capsys):
    assert main(["reproduce", BENCH.id, "--scale", "smoke", "--precision", "bf16"]) == 2
    assert f"{BENCH.id} has no bf16 variant" in capsys.readouterr().err
    assert main(["reproduce", "snell2017-table1", "--scale", "smoke", "--cells", "Prototypical Networks/5-way 1-shot",
                 "--precision", "bf16", "--jobs", "1", "--no-progress"]) == 0
    record = json.loads(R.record_path("snell2017-table1", "smoke", "prototypical-networks--5-way-1-shot--bf16").read_text())
    assert record["variant"] == "bf16" and record["provenance"]["precision"] == "bf16" and record["config"]["precision"] == "bf16"


def test_evaluate_reproduces_the_record_and_refuses_a_corrupt_checkpoint(isolated_results, tmp_path, capsys):
    cell = "MAML/2x40 5-shot"
    assert main(["reproduce", BENCH.id, "--scale", "smoke", "--cells", cell, "--jobs", "1", "--no-progress"]) == 0
    record = json.loads(R.record_path(BENCH.id, "smoke", CELL.slug).read_text())
    checkpoint = tmp_path / "runs" / BENCH.id / "smoke" / record["checkpoint_key"] / "checkpoint.pt"
    capsys.readouterr()
    assert main(["evaluate", str(checkpoint), "--benchmark", BENCH.id, "--cell", cell, "--scale", "smoke"]) == 0
    assert f"{record['mean']:.4f} ± {record['ci95']:.4f}" in capsys.readouterr().out

    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint.read_bytes()[:100])
    assert main(["evaluate", str(broken), "--benchmark", BENCH.id, "--cell", cell, "--scale", "smoke"]) == 2
    assert "unreadable" in capsys.readouterr().err
    # the other cell's model is not this one: refused by its configuration hash
    assert main(["evaluate", str(checkpoint), "--benchmark", BENCH.id, "--cell", "MAML/2x40 10-shot", "--scale", "smoke"]) == 2
    assert "configuration" in capsys.readouterr().err


def test_paired_difference_is_the_ci_of_per_episode_differences():
    a = fake_record("paper", [1.0, 2.0, 3.0, 4.0])
    b = fake_record("paper", [0.5, 1.9, 2.0, 3.5], cell=Cell("ALFA+MAML", "2x40 5-shot"))
    diffs = np.array([-0.5, -0.1, -1.0, -0.5])
    mean, ci = R.paired_difference(a, b)
    assert mean == pytest.approx(diffs.mean())
    assert ci == pytest.approx(1.96 * diffs.std() / 2.0)
    other = fake_record("paper", [1.0, 2.0, 3.0, 4.0], cell=Cell("ALFA+MAML", "2x40 10-shot"))
    with pytest.raises(ValueError, match="same test episodes"):
        R.paired_difference(a, other)


def test_a_smoke_net_narrower_than_the_papers_projects_the_square_of_the_width_ratio():
    """l2g-table1's smoke cells train 8-filter nets where the paper's have 64 (MAML: 32): their rough projection scales by
    the squared ratio (the smoke run took about a minute where the unscaled projection said 36); paper scale is unscaled."""
    table = BENCHMARKS["l2g-table1"]
    l2g, maml = Cell("L2G + Relation Network", "5-way 1-shot"), Cell("MAML", "10-way 1-shot")
    smoke, paper = table.config(l2g, "smoke"), table.config(l2g, "paper")
    assert (smoke["filters"], paper["filters"], smoke["iterations"]) == (8, 64, 60)
    assert table.estimated_seconds(l2g, "smoke") == pytest.approx(60 * 630.0 * 20 * (8 / 64) ** 2 / 1000)
    assert table.estimated_seconds(l2g, "paper") == pytest.approx(paper["runs"] * paper["iterations"] * 630.0 * 20 / 1000)
    assert table.estimated_seconds(maml, "smoke") == pytest.approx(12 * 630.0 * 2 * 5 * 2 * (8 / 32) ** 2 / 1000)
    assert sum(table.estimated_seconds(c, "smoke") for c in table.cells(scale="smoke")) < 120


def test_projection_scales_the_timed_record_and_prefers_paper_timings(isolated_results):
    """Projected seconds = measured training time x iteration ratio + test time x test-episode ratio (by hand)."""
    from benchmarks.harness.runner import projected_seconds

    sung = BENCHMARKS["sung2018-table1"]
    cell = Cell("Relation Networks", "5-way 1-shot")
    assert projected_seconds(sung, cell, "paper") == sung.estimated_seconds(cell, "paper")  # no timed record yet

    def timed(scale, ms, timed_iterations, test_s):
        record = R.make_record(benchmark=sung.id, row=cell.row, column=cell.column, variant=cell.variant, scale=scale,
                               metric="accuracy %", scores=np.array([90.0, 95.0]), config=sung.config(cell, scale),
                               deviations=[], provenance={"test": True})
        record["timing"] = {"ms_per_iteration": ms, "iterations_timed": timed_iterations, "test_s": test_s, "threads": 1,
                            "device": "cpu"}
        R.write_record(record, cell.slug)

    # quick: 2,000 iterations and 300 test tasks; paper: 100,000 and 1,000. Two models per cell (a grid) double the time.
    timed("quick", 90.0, 4000, 6.0)
    assert projected_seconds(sung, cell, "paper") == pytest.approx(0.090 * 4000 * 50 + 6.0 * 1000 / 300)
    assert projected_seconds(sung, cell, "quick") == pytest.approx(0.090 * 4000 + 6.0)
    timed("paper", 100.0, 100_000, 20.0)  # a paper-scale timing replaces the quick one
    assert projected_seconds(sung, cell, "quick") == pytest.approx(0.100 * 100_000 / 50 + 20.0 * 300 / 1000)

    # a run checkpointed at 25,000 of its 100,000 iterations has three quarters of its training (and all its test) left;
    # the full projection is unchanged
    from benchmarks.harness.runner import runs_dir
    from metarepro.trainer import CHECKPOINT_FORMAT, save_checkpoint

    assert sung.config(cell, "paper")["iterations"] == 100_000
    save_checkpoint(runs_dir() / sung.id / "paper" / sung.training_key(cell, "paper") / "checkpoint.pt",
                    {"format": CHECKPOINT_FORMAT, "config_hash": None, "state": {"iteration": 25_000}})
    assert projected_seconds(sung, cell, "paper", remaining=True) == pytest.approx(0.100 * 100_000 * 0.75 + 20.0)
    assert projected_seconds(sung, cell, "paper") == pytest.approx(0.100 * 100_000 + 20.0)

    # a record of run means times all its runs: guiroy-fig9's quick scale trains 2 runs of 60 iterations, its paper scale 5 of 60,000
    guiroy = BENCHMARKS["guiroy-fig9"]
    maml = Cell("MAML", "Omniglot 20-way 1-shot")
    record = R.make_record(benchmark=guiroy.id, row=maml.row, column=maml.column, variant="main", scale="quick", metric="accuracy %",
                           scores=np.array([26.0, 27.0]), config=guiroy.config(maml, "quick"), deviations=[], provenance={},
                           score_unit="run")
    record["timing"] = {"ms_per_iteration": 2000.0, "iterations_timed": 120, "test_s": 8.0, "threads": 1, "device": "cpu"}
    R.write_record(record, maml.slug)
    assert projected_seconds(guiroy, maml, "paper") == pytest.approx(2.0 * 120 * 1000 * 2.5 + 8.0 * 6 * 2.5)
    # `metarepro time` found the per-task loop 1.6x faster than the batched engine the record trained on: --engine auto
    # trains on the loop, so the training part shrinks by that ratio (the test part does not)
    from benchmarks.harness.cell_timing import save_timing

    save_timing(guiroy.id, maml, {"engines": {"func": 1.6, "loop": 1.0, "higher": 1.1}})
    assert projected_seconds(guiroy, maml, "paper") == pytest.approx(2.0 * 120 * 1000 * 2.5 / 1.6 + 8.0 * 6 * 2.5)
    # probes along training (7 s over the record's points) are the run's time too, outside ms_per_iteration
    record["probe_curve"] = [{"iteration": 0, "seconds": 3.0}, {"iteration": 60, "seconds": 4.0}]
    R.write_record(record, maml.slug)
    assert projected_seconds(guiroy, maml, "paper") == pytest.approx((2.0 * 120 + 7.0) * 1000 * 2.5 / 1.6 + 8.0 * 6 * 2.5)

    # a cell that trains nothing (ALFA's Random Init: 0 iterations) projects its test alone, scaled by the test tasks
    alfa = BENCHMARKS["alfa-table1"]
    random_init = Cell("Random Init (4-CONV)", "miniImageNet 1-shot")
    record = R.make_record(benchmark=alfa.id, row=random_init.row, column=random_init.column, variant="main", scale="quick",
                           metric="accuracy %", scores=np.array([30.0, 31.0]), config=alfa.config(random_init, "quick"), deviations=[],
                           provenance={})
    record["timing"] = {"ms_per_iteration": 0.0, "iterations_timed": 0, "test_s": 10.0, "threads": 1, "device": "cpu"}
    R.write_record(record, random_init.slug)
    assert projected_seconds(alfa, random_init, "paper") == pytest.approx(10.0 * 600 / 200)


def test_records_of_run_means_carry_a_t_interval_and_pair_run_by_run():
    from scipy import stats

    l2g = BENCHMARKS["l2g-table1"]
    cell = Cell("Prototypical Network", "mini-ImageNet 5-way 1-shot")

    def record(row, runs):
        return R.make_record(benchmark=l2g.id, row=row, column=cell.column, variant="main", scale="paper", metric="accuracy %",
                             scores=np.asarray(runs), config=l2g.config(Cell(row, cell.column), "paper"), deviations=[],
                             provenance={"test": True}, score_unit="run")

    base, l2g_row = record(cell.row, [48.0, 49.5, 47.2, 48.8, 49.1]), record("L2G + Prototypical Network", [50.1, 51.0, 49.0, 50.2, 51.3])
    R.check_record(base)
    assert base["score_unit"] == "run" and base["ci95"] == pytest.approx(stats.t.ppf(0.975, 4) * stats.sem(base["scores"]))
    diff, half = R.paired_difference(base, l2g_row)
    d = np.subtract(l2g_row["scores"], base["scores"])
    assert diff == pytest.approx(d.mean()) and half == pytest.approx(stats.t.ppf(0.975, 4) * stats.sem(d))
    per_episode = {**base, "score_unit": "episode"}
    per_episode.pop("score_unit")
    with pytest.raises(ValueError, match="same test episodes"):
        R.paired_difference(per_episode, l2g_row)  # run means are not paired with episode scores
    other_queries = {**l2g_row, "config": {**l2g_row["config"], "queries": 10}}
    with pytest.raises(ValueError, match="queries"):
        R.paired_difference(base, other_queries)


def test_claims_use_current_records_only(isolated_results):
    from benchmarks.harness.runner import claim_checks, record_is_current

    check = BENCHMARKS["l2g-omniglot"]
    column = "5-way 1-shot"

    def write(row, scores, config=None):
        cell = Cell(row, column)
        record = R.make_record(benchmark=check.id, row=row, column=column, variant="main", scale="quick", metric="accuracy %",
                               scores=np.asarray(scores), config=config or check.config(cell, "quick"), deviations=[],
                               provenance={"test": True})
        R.write_record(record, cell.slug)
        return record

    base = write("Prototypical Network", [80.0, 90.0, 85.0, 95.0])
    method = write("L2G + Prototypical Network", [90.0, 95.0, 95.0, 100.0])
    by_hand = "0: +7.50 ± 2.45"  # differences 10, 5, 10, 5: mean 7.5, 1.96 x 2.5 / 2
    (claim,) = [c for c in claim_checks(check) if c["protocol"] == "main"]
    assert record_is_current(check, base) and claim["per seed (paired, 95% CI)"] == by_hand
    assert claim["holds"] == "too few seeds (1 of 3)"  # one trained model per row is never a verdict
    stale = write("L2G + Prototypical Network", [90.0, 95.0, 95.0, 100.0], config={**method["config"], "inner_lr": 0.1})
    assert not record_is_current(check, stale) and claim_checks(check) == []


def test_records_read_once_parses_each_benchmark_once_and_only_inside_its_block(isolated_results, monkeypatch):
    R.write_record(fake_record("quick", [1.0, 2.0]), CELL.slug)
    parsed = []
    real_loads = R.json.loads
    monkeypatch.setattr(R.json, "loads", lambda text: parsed.append(1) or real_loads(text))
    with R.records_read_once():
        first = R.load_records(BENCH.id)
        R.write_record(fake_record("paper", [3.0, 4.0]), CELL.slug)  # written inside the block: not seen there
        assert R.load_records(BENCH.id) == first and len(first) == 1
        assert len(parsed) == 1
    assert [r["scale"] for r in R.load_records(BENCH.id)] == ["paper", "quick"]  # outside: read from disk again
    assert len(parsed) == 3


def test_cells_sharing_a_model_are_projected_as_one_training_and_each_cell_s_test(isolated_results):
    """nichol2018-table1's Reptile rows share one model: the group costs one training plus every cell's test (by hand)."""
    from benchmarks.harness.runner import group_seconds

    nichol = BENCHMARKS["nichol2018-table1"]
    cells = [Cell("Reptile", "5-way 1-shot"), Cell("Reptile + Transduction", "5-way 1-shot")]
    assert nichol.training_key(cells[0], "paper") == nichol.training_key(cells[1], "paper")
    for cell, test_s in zip(cells, (30.0, 20.0)):
        record = R.make_record(benchmark=nichol.id, row=cell.row, column=cell.column, variant=cell.variant, scale="quick",
                               metric="accuracy %", scores=np.array([90.0, 95.0]), config=nichol.config(cell, "quick"),
                               deviations=[], provenance={"test": True})
        record["timing"] = {"ms_per_iteration": 100.0, "iterations_timed": 1000, "test_s": test_s, "threads": 1, "device": "cpu"}
        R.write_record(record, cell.slug)
    # quick: 1,000 iterations, 300 test tasks; paper: 100,000 and 10,000
    assert group_seconds(nichol, cells, "paper") == pytest.approx(0.100 * 100_000 + (30.0 + 20.0) * 10_000 / 300)


def _checkpoint_at(folder: str, iteration: int, **state) -> None:
    from benchmarks.harness.runner import runs_dir
    from metarepro.trainer import CHECKPOINT_FORMAT, save_checkpoint

    save_checkpoint(runs_dir() / folder / "checkpoint.pt",
                    {"format": CHECKPOINT_FORMAT, "config_hash": None, "state": {"iteration": iteration, **state}})


def test_checkpointed_runs_name_their_cells_and_progress(isolated_results):
    from benchmarks.harness.runner import checkpointed_runs, runs_dir

    nichol, finn = BENCHMARKS["nichol2018-table1"], BENCHMARKS["finn2017-table1"]
    reptile_key = nichol.training_key(Cell("Reptile", "5-way 1-shot"), "paper")
    maml_key = finn.training_key(Cell("MAML", "5-way 1-shot"), "paper")
    _checkpoint_at(f"{nichol.id}/paper/{reptile_key}", 64_000)
    _checkpoint_at(f"{finn.id}/paper/{maml_key}", 10_000, criteria={"1shot": {"best_value": -0.9, "best_iteration": 3100, "wait": 16},
                                                                     "5shot": {"best_value": -0.99, "best_iteration": 9000, "wait": 2}})
    # a configuration this checkout no longer has
    _checkpoint_at(f"{nichol.id}/paper/reptile-5w-0123456789abcdef", 5, best_value=0.1, best_iteration=4, wait=3, stopped_early=True)
    _checkpoint_at("no-such-benchmark/paper/x", 5)
    (runs_dir() / nichol.id / "paper" / reptile_key / "best.pt").write_bytes(b"")  # a snapshot, not progress: left out
    (runs_dir() / finn.id / "paper" / maml_key / "best-1shot.pt").write_bytes(b"")  # one criterion's: likewise
    rows = {(r["benchmark"], r["run"]): r for r in checkpointed_runs()}
    assert len(rows) == 4
    row = rows[(nichol.id, f"{reptile_key}/checkpoint.pt")]
    assert (row["scale"], row["iteration"], row["of"], row["records current"]) == ("paper", 64_000, 100_000, "0/4")
    assert row["cells"].split("; ") == ["Reptile / 5-way 1-shot", "Reptile / 5-way 5-shot", "Reptile + Transduction / 5-way 1-shot",
                                         "Reptile + Transduction / 5-way 5-shot"]
    # finn's MAML model also serves nichol's second-order MAML row (trained once, under finn2017-table1)
    maml = rows[(finn.id, f"{maml_key}/checkpoint.pt")]
    assert (maml["iteration"], maml["of"]) == (10_000, 60_000)
    assert maml["validation"] == "1shot: best at 3100, 16 validation(s) since; 5shot: best at 9000, 2 validation(s) since"
    assert row["validation"] == "-"  # validates nothing
    assert "nichol2018-table1: MAML + Transduction / 5-way 1-shot" in maml["cells"].split("; ")
    assert "1st-order" not in maml["cells"]
    stale = rows[(nichol.id, "reptile-5w-0123456789abcdef/checkpoint.pt")]
    assert stale["of"] == "-" and stale["cells"].startswith("(no cell's current configuration")
    assert stale["validation"] == "best at 4, 3 validation(s) since; stopped early"
    assert rows[("no-such-benchmark", "x/checkpoint.pt")]["cells"] == "(not a benchmark of this checkout)"


def test_checkpointed_fraction_follows_each_benchmark_s_run_folders(isolated_results):
    """Per-run folders (guiroy-fig9, the few-shot metric tables' ``-run0``), grid points (hyperrepr) and a training
    owned by another benchmark (nichol's MAML row, l2g's ProtoNet for hyperrepr-omniglot) all count."""
    from benchmarks.harness.runner import checkpointed_fraction, group_seconds

    guiroy = BENCHMARKS["guiroy-fig9"]
    maml = Cell("MAML", "Omniglot 20-way 1-shot")
    runs, iterations = guiroy.config(maml, "paper")["runs"], guiroy.config(maml, "paper")["iterations"]
    assert runs == 5
    key = guiroy.training_key(maml, "paper")
    _checkpoint_at(f"{guiroy.id}/paper/{key}-run0", iterations)  # run 0 done, run 1 half-way, runs 2-4 not started
    _checkpoint_at(f"{guiroy.id}/paper/{key}-run1", iterations // 2)
    assert checkpointed_fraction(guiroy, maml, "paper") == pytest.approx(1.5 / 5)

    hyper = BENCHMARKS["hyperrepr-omniglot"]
    proto, hr = Cell("Prototypical Network", "5-way 1-shot"), Cell("Hyper-Representation", "5-way 1-shot")
    l2g = BENCHMARKS["l2g-omniglot"]
    _checkpoint_at(f"l2g-omniglot/paper/{l2g.training_key(proto, 'paper')}-run0", l2g.config(proto, "paper")["iterations"] // 4)
    assert checkpointed_fraction(hyper, proto, "paper") == pytest.approx(0.25)
    assert checkpointed_fraction(l2g, proto, "paper") == pytest.approx(0.25)
    grid = hyper.candidates(hr, "paper")
    assert len(grid) > 1
    _checkpoint_at(f"{hyper.id}/paper/{hyper.key_of(grid[0])}-run0", grid[0]["iterations"])  # the first T of the grid done
    assert checkpointed_fraction(hyper, hr, "paper") == pytest.approx(1 / len(grid))

    nichol, finn = BENCHMARKS["nichol2018-table1"], BENCHMARKS["finn2017-table1"]
    second, first = Cell("MAML + Transduction", "5-way 1-shot"), Cell("1st-order MAML + Transduction", "5-way 1-shot")
    _checkpoint_at(f"{finn.id}/paper/{finn.training_key(Cell('MAML', '5-way 1-shot'), 'paper')}", 15_000)
    assert checkpointed_fraction(nichol, second, "paper") == pytest.approx(0.25)
    assert checkpointed_fraction(nichol, first, "paper") == 0.0  # first order trains under nichol2018-table1 itself

    # a config that counts epochs: bertinetto2019-omniglot trains to 1,200 epochs of 100 episodes at the most
    r2d2, cell = BENCHMARKS["bertinetto2019-omniglot"], Cell("R2-D2 (64C)", "5-way 1-shot")
    assert "iterations" not in r2d2.config(cell, "paper") and r2d2.iterations(r2d2.config(cell, "paper")) == 120_000
    _checkpoint_at(f"{r2d2.id}/paper/{r2d2.training_key(cell, 'paper')}", 30_000)
    assert checkpointed_fraction(r2d2, cell, "paper") == pytest.approx(0.25)

    # what `reproduce` announces: the remaining training (no timed record here: the rough estimate, its training part
    # scaled) plus the test: five runs of 60,000 iterations at 9 s and of 600 tasks at 80 ms (guiroy's estimates)
    assert group_seconds(guiroy, [maml], "paper", remaining=True) == pytest.approx(5 * 60_000 * 9.0 * 3.5 / 5 + 5 * 600 * 0.08)


def test_run_order_finishes_started_trainings_before_starting_new_ones():
    """Longest-first alone deferred every part-trained group (its remaining time shrinks), so each restart of a killed
    run began fresh trainings: unraveling-omniglot-heads had eight trainings between 1% and 45% done and none finished."""
    from benchmarks.harness.runner import run_order

    groups = [["fresh short"], ["half done"], ["fresh long"], ["nearly done"]]
    seconds = dict(zip(map(id, groups), [100.0, 500.0, 900.0, 50.0]))
    started = dict(zip(map(id, groups), [False, True, False, True]))
    assert run_order(groups, seconds, started) == [["nearly done"], ["half done"], ["fresh long"], ["fresh short"]]


def test_restart_discards_every_run_folder_of_the_cells(isolated_results):
    """`reproduce --restart` used to delete only `<training key>/`: per-run folders (guiroy-fig9's five runs) survived and
    the "restarted" training resumed from them."""
    from benchmarks.harness.runner import restart_folders, runs_dir

    guiroy = BENCHMARKS["guiroy-fig9"]
    maml = Cell("MAML", "Omniglot 20-way 1-shot")
    key = guiroy.training_key(maml, "paper")
    expected = {runs_dir() / guiroy.id / "paper" / f"{key}-run{i}" for i in range(5)}
    assert expected <= set(restart_folders(guiroy, [maml], "paper"))
    nichol = BENCHMARKS["nichol2018-table1"]
    second = Cell("MAML + Transduction", "5-way 1-shot")  # trained under finn2017-table1
    assert runs_dir() / "finn2017-table1" / "paper" / nichol.training_key(second, "paper") in restart_folders(nichol, [second], "paper")


def test_a_group_that_diverges_does_not_stop_the_groups_after_it(isolated_results, monkeypatch):
    """A training group stopped on a non-finite loss is reported, the later groups still run, and the run ends with an
    error naming every diverged group (a long queue is not lost to its first NaN)."""
    from benchmarks.harness import runner
    from metarepro.trainer import NonFiniteLossError

    bench = BENCHMARKS["alfa-table8"]
    cells = [Cell(row, "2x40 5-shot") for row in bench.rows] + [Cell(row, "2x40 10-shot") for row in bench.rows]
    ran = []

    def fake_group(benchmark_id, scale, group, *rest):
        label = Cell(**group[0]).label
        ran.append(label)
        if group[0]["row"] == "MAML":
            raise NonFiniteLossError(f"{label}: outer loss is nan at iteration 7; stopped.")
        return [f"{label}.json"]

    monkeypatch.setattr(runner, "_run_group", fake_group)
    logged = []
    with pytest.raises(NonFiniteLossError) as err:
        runner.reproduce(bench, "smoke", cells, jobs=1, log=logged.append)
    assert sorted(ran) == sorted(c.label for c in cells)  # every group ran, the diverged ones first or not
    assert "2 of 4 training group(s)" in str(err.value)
    assert all(f"MAML / 2x40 {k}-shot" in str(err.value) for k in (5, 10)) and "ALFA" not in str(err.value)
    assert sum("wrote" in line for line in logged) == 2 and sum("go on" in line for line in logged) == 2
