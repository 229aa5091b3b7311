"""Issue #14: segments, protocol versions, the difference test, claims across seeds, schemas, locks, errors a user meets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from benchmarks import BENCHMARKS
from benchmarks.harness.base import Cell, way_shot
from benchmarks.harness.cli import main
from benchmarks.harness.provenance import training_summary
from benchmarks.harness.runner import across_seeds, claim_checks, claim_verdict, record_is_current
from metarepro import results as R
from metarepro import trainer as T
from metarepro.episodes import SINUSOID_METASGD
from metarepro.inner import mse_per_task
from metarepro.schemas import SchemaError
from methods.backbones import MLP
from methods.maml import MAML

ROOT = Path(__file__).resolve().parents[1]


def _maml():
    torch.manual_seed(0)
    model = MAML(MLP([1, 8, 1], init="torch"), mse_per_task, 0.01, 1)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def _batch(i):
    return SINUSOID_METASGD.train_batch(0, i, 2, 5, 5)


# ---------------------------------------------------------------------------------------------------- segments


def test_each_training_process_is_a_segment_and_resumes_name_their_own_commit(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoint.pt"
    monkeypatch.setattr(T, "_RUN_CONTEXT", {"commit": "a" * 40, "dirty": False, "command": "first"})
    model, opt = _maml()
    T.train(model, opt, _batch, 2, path, "k", progress=False)
    monkeypatch.setattr(T, "_RUN_CONTEXT", {"commit": "b" * 40, "dirty": True, "command": "second"})
    model, opt = _maml()
    with T.collect_trainings() as collected:
        state = T.train(model, opt, _batch, 5, path, "k", progress=False)
    first, second = state.segments
    assert (first["commit"], first["iterations"], second["commit"], second["dirty"], second["iterations"]) == (
        "a" * 40, [0, 2], "b" * 40, True, [2, 5])
    assert second["threads"] == torch.get_num_threads() and second["device"] == "cpu" and second["wall_time_s"] >= 0
    assert second["protocol_versions"] == {"MAML": 1, "MLP": 1, "trainer": T.TRAINER_PROTOCOL_VERSION}
    assert collected == [{"checkpoint": str(path), "segments": state.segments}]
    model, opt = _maml()  # a finished run trains nothing and adds no segment
    assert len(T.train(model, opt, _batch, 5, path, "k", progress=False).segments) == 2


def test_a_segment_records_its_cpu_time_beside_its_wall_time(tmp_path):
    """Each iteration's batch takes 0.1 s of CPU and sleeps 0.1 s: the segment's CPU time counts the first only, and the
    provenance listing shows the share (a contended run reads well below 1)."""
    import time

    from benchmarks.harness.provenance import core_share

    def batch(i):
        spin = time.process_time()
        while time.process_time() - spin < 0.1:
            pass
        time.sleep(0.1)
        return _batch(i)

    model, opt = _maml()
    (segment,) = T.train(model, opt, batch, 5, tmp_path / "checkpoint.pt", "k", progress=False).segments
    assert segment["cpu_time_s"] >= 0.5 and segment["wall_time_s"] >= 1.0
    assert segment["cpu_time_s"] <= 0.75 * segment["wall_time_s"] * segment["threads"]
    share = segment["cpu_time_s"] / (segment["wall_time_s"] * segment["threads"])
    assert core_share(segment) == f" ({share:.2f} of its core(s))"
    assert core_share({k: v for k, v in segment.items() if k != "cpu_time_s"}) == ""  # a segment from before CPU times


def test_a_checkpoint_from_before_segments_says_its_iterations_are_unknown(tmp_path):
    path = tmp_path / "checkpoint.pt"
    model, opt = _maml()
    T.train(model, opt, _batch, 2, path, "k", progress=False)
    payload = torch.load(path, weights_only=True)
    del payload["state"]["segments"]  # as written before issue #14
    T.save_checkpoint(path, payload)
    model, opt = _maml()
    state = T.train(model, opt, _batch, 3, path, "k", progress=False)
    assert state.segments[0] == {"unknown": True, "iterations": [0, 2], "note": "trained before checkpoints recorded their segments"}
    assert state.segments[1]["iterations"] == [2, 3]


def test_a_resume_under_another_protocol_version_is_refused_unless_asked_and_then_recorded(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    model, opt = _maml()
    T.train(model, opt, _batch, 2, path, "k", progress=False)
    monkeypatch.setattr(MAML, "PROTOCOL_VERSION", 2, raising=False)
    model, opt = _maml()
    with pytest.raises(T.ProtocolChangeError, match="--allow-protocol-change"):
        T.train(model, opt, _batch, 4, path, "k", progress=False)
    state = T.train(model, opt, _batch, 4, path, "k", progress=False, allow_protocol_change=True)
    assert [s["protocol_versions"]["MAML"] for s in state.segments] == [1, 2]
    record = {"trainings": [{"checkpoint": "x/checkpoint.pt", "segments": state.segments}]}
    assert "SPANS A PROTOCOL CHANGE" in training_summary(record)


def test_a_record_trained_under_an_older_protocol_version_is_stale(monkeypatch):
    bench = BENCHMARKS["l2g-omniglot"]
    cell = Cell("Prototypical Network", "5-way 1-shot")
    segment = {"commit": "c" * 40, "dirty": False, "iterations": [0, 10], "threads": 1, "host": "h", "device": "cpu",
               "wall_time_s": 1.0, "protocol_versions": {"Conv4": 1, "ProtoNet": 1, "trainer": 1}}
    record = R.make_record(benchmark=bench.id, row=cell.row, column=cell.column, variant="main", scale="quick", metric="accuracy %",
                           scores=np.array([90.0, 95.0]), config=bench.config(cell, "quick"), deviations=[], provenance={},
                           extra={"trainings": [{"checkpoint": "c.pt", "segments": [segment]}]})
    assert record_is_current(bench, record)
    from methods.protonet import ProtoNet

    monkeypatch.setattr(ProtoNet, "PROTOCOL_VERSION", 2, raising=False)
    assert not record_is_current(bench, record)


# ------------------------------------------------------------------------------------------- difference test


def test_printed_rounding_is_the_half_width_of_a_number_printed_without_interval():
    assert R.PublishedCell("r", "c", 99.7, None, "none", "", "99.7").rounding == pytest.approx(0.05)
    assert R.PublishedCell("r", "c", 98.9, None, "none", "", "98.90").half_width == pytest.approx(0.005)
    assert R.PublishedCell("r", "c", 96.0, 0.3, "ci95", "", "96.0 ± 0.3").half_width == pytest.approx(0.3)


def test_difference_test_is_stricter_than_overlap():
    # snell2017-table1 5-way 5-shot: 99.60 +/- 0.055 against 99.7 printed (rounding 0.05)
    pub = R.PublishedCell("Prototypical Networks", "5-way 5-shot", 99.7, None, "none", "", "99.7")
    assert R.within_tolerance(99.7, pub.half_width, 99.599, 0.055)  # 0.101 <= 0.105
    assert not R.difference_within(99.7, pub.half_width, 99.599, 0.055)  # 0.101 > hypot(0.05, 0.055) = 0.0743
    assert R.difference_ci95(0.3, 0.4) == pytest.approx(0.5)
    record = {**R.make_record(benchmark="b", row=pub.row, column=pub.column, variant="main", scale="paper", metric="m",
                              scores=np.array([99.0, 100.0] * 200), config={}, deviations=[], provenance={})}
    row = R.compare_cell(pub, [record], R.result_hash({}))
    assert (row["verdict"], row["difference_verdict"]) == ("outside", "outside")  # mean 99.5: 0.2 away, CI 0.049
    assert row["difference_ci95"] == pytest.approx(np.hypot(0.05, record["ci95"]))


# ------------------------------------------------------------------------------------------ claims across seeds


def test_across_seeds_is_the_t_interval_of_the_per_seed_differences():
    diffs = [1.2, 0.4, 0.9]
    mean, half = across_seeds(diffs)
    assert mean == pytest.approx(np.mean(diffs))
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * stats.sem(diffs))
    assert across_seeds([0.7]) == (0.7, None)


def test_claim_verdict_needs_three_seeds_and_an_interval_that_excludes_zero():
    assert claim_verdict(1.0, 0.5, True, 3) == "yes"
    assert claim_verdict(-1.0, 0.5, True, 3) == "reversed"
    assert claim_verdict(-1.0, 0.5, False, 3) == "yes"  # lower is better (MSE)
    assert claim_verdict(0.3, 0.5, True, 3) == "no difference"
    assert claim_verdict(5.0, 0.1, True, 2) == "too few seeds (2 of 3)"


def test_claim_checks_pair_seed_by_seed(isolated_results):
    check = BENCHMARKS["l2g-omniglot"]
    column, rng = "5-way 1-shot", np.random.default_rng(0)
    per_seed = []
    for seed in range(3):
        base = rng.uniform(80, 95, size=50)
        method = np.clip(base + rng.normal(1.0 + seed, 1.0, size=50), 0, 100)
        per_seed.append((method - base).mean())
        for row, scores in (("Prototypical Network", base), ("L2G + Prototypical Network", method)):
            cell = Cell(row, column, seed=seed)
            R.write_record(R.make_record(benchmark=check.id, row=row, column=column, variant="main", scale="quick",
                                         metric="accuracy %", scores=scores, config=check.config(cell, "quick"), deviations=[],
                                         provenance={}, seed=seed), cell.slug)
    (claim,) = [c for c in claim_checks(check) if c["claim"] == "L2G improves Prototypical Networks" and c["protocol"] == "main"]
    half = stats.t.ppf(0.975, 2) * stats.sem(per_seed)
    assert claim["seeds"] == 3 and claim["method - baseline (across seeds)"] == f"{np.mean(per_seed):+.3f} ± {half:.3f}"
    assert claim["holds"] == ("yes" if np.mean(per_seed) > half else "no difference")


def test_seeded_cells_have_their_own_config_key_and_record():
    check = BENCHMARKS["l2g-omniglot"]
    cells = [Cell("Prototypical Network", "5-way 1-shot", seed=s) for s in range(3)]
    assert [c.slug for c in cells] == ["prototypical-network--5-way-1-shot--main",
                                       "prototypical-network--5-way-1-shot--main--seed1",
                                       "prototypical-network--5-way-1-shot--main--seed2"]
    assert [check.config(c, "quick")["train_seed"] for c in cells] == [0, 1, 2]
    assert len({check.training_key(c, "quick") for c in cells}) == 3
    assert Cell.parse("Prototypical Network/5-way 1-shot/main/seed=2") == cells[2]
    assert {c.seed for c in check.cells(scale="quick")} == {0, 1, 2} and {c.seed for c in check.cells(scale="smoke")} == {0}
    with pytest.raises(KeyError, match="seed 3"):
        check.check_cell(Cell("Prototypical Network", "5-way 1-shot", seed=3))
    with pytest.raises(ValueError, match="seed=N"):
        Cell.parse("Prototypical Network/5-way 1-shot/main/seed=x")


def test_a_way_shot_column_parses_to_its_numbers_and_other_columns_are_refused():
    assert [way_shot(c) for c in ("5-way 1-shot", "20-way 5-shot", "60-way 10-shot")] == [(5, 1), (20, 5), (60, 10)]
    for bad in ("5-way", "1-shot 5-way", "5-way 1-shot extra", "five-way 1-shot"):
        with pytest.raises(ValueError, match="like '5-way 1-shot'"):
            way_shot(bad)


# ----------------------------------------------------------------------------------------------------- schemas


def test_a_published_file_missing_a_field_is_named_with_its_cell(isolated_results, capsys):
    path = isolated_results / "published" / "alfa-table8.json"
    data = json.loads(path.read_text())
    del data["cells"][3]["mean"]
    path.write_text(json.dumps(data))
    assert main(["compare", "alfa-table8"]) == 2
    err = capsys.readouterr().err
    cell = data["cells"][3]
    assert str(path) in err and f"{cell['row']} / {cell['column']}" in err and "'mean' is a required property" in err


def test_a_record_with_a_wrong_type_is_named(isolated_results, capsys):
    bench = BENCHMARKS["alfa-table8"]
    cell = Cell("MAML", "2x40 5-shot")
    record = R.make_record(benchmark=bench.id, row=cell.row, column=cell.column, variant="main", scale="paper", metric="MSE",
                           scores=np.array([1.0, 1.2]), config=bench.config(cell, "paper"), deviations=[], provenance={})
    record["scores"] = "1.0, 1.2"
    path = R.write_record(record, cell.slug)
    assert main(["compare", "alfa-table8"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "MAML / 2x40 5-shot" in err and "field scores" in err
    path.write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        R.load_records("alfa-table8")


def test_a_file_validated_once_is_validated_again_when_its_bytes_change(tmp_path):
    """load_validated skips bytes it has validated (the regression suite loads each record many times); a file
    rewritten in place, same path, is new bytes and is checked again."""
    from metarepro.schemas import load_validated

    path = tmp_path / "published.json"
    good = json.loads((R.PROJECT_ROOT / "results" / "published" / "alfa-table8.json").read_text())
    path.write_text(json.dumps(good))
    assert load_validated(path, "published") == good
    assert load_validated(path, "published") == good  # the second time from the digest set: the same dict
    bad = json.loads(json.dumps(good))
    del bad["cells"][0]["mean"]
    path.write_text(json.dumps(bad))
    with pytest.raises(SchemaError, match="'mean' is a required property"):
        load_validated(path, "published")
    path.write_text(json.dumps(good))
    with pytest.raises(SchemaError, match="is not valid under|is not of type|required"):
        load_validated(path, "record")  # validated as a published file, not as a record: the kind is part of the key


# -------------------------------------------------------------------------------------- errors a user meets


@pytest.mark.parametrize("blow_up", [np.nan, 1e12])  # non-finite, and finite beyond ALFA Table 8's divergence threshold
def test_reproduce_exits_non_zero_naming_the_cells_that_left_no_record(isolated_results, monkeypatch, capsys, blow_up):
    bench = BENCHMARKS["alfa-table8"]
    original = type(bench).run_cell

    def diverged(self, cell, *args, **kwargs):
        result = original(self, cell, *args, **kwargs)
        result.scores[0] = blow_up
        return result

    monkeypatch.setattr(type(bench), "run_cell", diverged)
    code = main(["reproduce", "alfa-table8", "--scale", "smoke", "--cells", "MAML/2x40 5-shot", "--jobs", "1", "--no-progress"])
    assert code == 1 and "1 cell(s) left no record: MAML / 2x40 5-shot" in capsys.readouterr().err


def test_compare_json_carries_claims_and_records_of_a_claim_check(capsys):
    assert main(["compare", "l2g-omniglot", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cells"] == [] and report["claims"] and report["records"]
    assert {"claim", "seeds", "holds"} <= set(report["claims"][0])
    assert main(["list", "--format", "json"]) == 0
    assert {b["id"] for b in json.loads(capsys.readouterr().out)["benchmarks"]} == set(BENCHMARKS)


def _cli(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "benchmarks.harness.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kwargs)


def test_compare_into_a_closed_pipe_has_no_traceback():
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.harness.cli", "compare", "nichol2018-table1", "--all"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.read(10)
    process.stdout.close()  # as `| head -c 10` does
    err = process.stderr.read().decode()
    assert process.wait() == 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_the_cli_works_without_the_test_and_plot_extras(tmp_path):
    """`pip install -e .` without extras: no pytest, no matplotlib, no sklearn (blocked here by modules that refuse to import)."""
    blocked = tmp_path / "blocked"
    for name in ("pytest", "matplotlib", "sklearn", "scipy"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed (blocked by the test)')\n")
    results = tmp_path / "results"
    import shutil

    shutil.copytree(ROOT / "results", results)
    env = {"PYTHONPATH": f"{blocked}{os.pathsep}{ROOT}", "METAREPRO_RESULTS": str(results), "METAREPRO_RUNS": str(tmp_path / "runs")}
    listed = _cli("list", env=env)
    assert listed.returncode == 0 and "alfa-table8" in listed.stdout, listed.stderr
    compared = _cli("compare", "alfa-table8", "--format", "json", env=env)
    assert compared.returncode == 0 and json.loads(compared.stdout)["cells"], compared.stderr
    reproduced = _cli("reproduce", "alfa-table8", "--scale", "smoke", "--cells", "MAML/2x40 5-shot", "--jobs", "1", "--no-progress",
                      "--pin", env=env)
    assert reproduced.returncode == 0, reproduced.stderr
    assert (results / "reproduced" / "alfa-table8" / "smoke" / "maml--2x40-5-shot--main.json").exists()


def test_figures_without_matplotlib_are_skipped_with_a_note_and_kept(isolated_results, monkeypatch, capsys):
    from benchmarks.harness.cli import draw_figures

    bench = BENCHMARKS["l2g-fig2"]
    old = bench.figure_path("smoke")
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"\x89PNG old")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for name in [m for m in sys.modules if m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    from metarepro.figures import _require_matplotlib

    monkeypatch.setattr(type(bench), "render_figures", lambda self, scale: _require_matplotlib())
    assert draw_figures(bench, "smoke") == []
    assert "figures not drawn" in capsys.readouterr().err and old.read_bytes() == b"\x89PNG old"


# --------------------------------------------------------------------------------------------------- locks


def test_two_processes_on_one_cell_train_it_once(tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "published", results / "published")
    env = {"METAREPRO_RESULTS": str(results), "METAREPRO_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "benchmarks.harness.cli", "reproduce", "alfa-table8", "--scale", "smoke", "--cells", "MAML/2x40 5-shot",
            "--jobs", "1", "--no-progress", "--pin"]
    first = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    waited = [out + err for out, err in outputs if "another" in out + err or "up to date" in out + err]
    assert len(waited) == 1, outputs  # one trained; the other waited for its lock, or found the record already written
    record = json.loads((results / "reproduced" / "alfa-table8" / "smoke" / "maml--2x40-5-shot--main.json").read_text())
    (training,) = record["trainings"]
    assert [s["iterations"][0] for s in training["segments"]] == [0]  # one process trained it, from the start


@pytest.mark.parametrize("kind", ["flock", "lease"])  # METAREPRO_LOCK: one machine's locks, or leases for shared roots
def test_a_held_lock_makes_reproduce_wait_and_say_so(tmp_path, monkeypatch, kind):
    import shutil

    from metarepro.atomic import file_lock

    monkeypatch.setenv("METAREPRO_LOCK", kind)
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "published", results / "published")
    env = {**os.environ, "METAREPRO_RESULTS": str(results), "METAREPRO_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(ROOT)}
    bench = BENCHMARKS["alfa-table8"]
    (folder,) = bench.run_directories(Cell("MAML", "2x40 5-shot"), "smoke")
    lock = file_lock(tmp_path / "runs" / ".locks" / (folder.replace("/", "--") + ".lock"))
    path = results / "reproduced" / "alfa-table8" / "smoke" / "maml--2x40-5-shot--main.json"
    log = tmp_path / "stderr.txt"
    with lock, open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "benchmarks.harness.cli", "reproduce", "alfa-table8", "--scale", "smoke", "--cells",
                                    "MAML/2x40 5-shot", "--jobs", "1", "--no-progress", "--pin"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True)
        deadline = time.time() + 240
        while "waiting" not in log.read_text() and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        assert process.poll() is None and not path.exists()  # nothing is trained or written while another process holds the lock
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0 and "being trained by another metarepro process; waiting" in log.read_text() and path.exists(), out


def test_a_seed_without_a_timed_record_is_projected_from_seed_0s(isolated_results):
    import shutil

    from benchmarks.harness.runner import projected_seconds, timed_record

    check = BENCHMARKS["l2g-omniglot"]
    seed0, seed2 = Cell("L2G + Relation Network", "5-way 1-shot"), Cell("L2G + Relation Network", "5-way 1-shot", seed=2)
    target = R.record_path(check.id, "quick", seed0.slug)
    target.parent.mkdir(parents=True)
    shutil.copy(R.record_path(check.id, "quick", seed0.slug, root=ROOT / "results"), target)
    record = timed_record(check, seed2)
    assert record is not None and record.get("seed", 0) == 0
    t = record["timing"]
    by_hand = t["ms_per_iteration"] * t["iterations_timed"] / 1000 + t["test_s"]  # same budget: the timed run as it was
    assert projected_seconds(check, seed2, "quick") == pytest.approx(by_hand)


def test_the_cell_index_lists_every_published_cell_and_claim_record(isolated_results):
    import csv

    from benchmarks.harness.cli import INDEX_FIELDS, render_readme
    from benchmarks.harness.runner import comparison

    render_readme()
    rows = json.loads((isolated_results / "index.json").read_text())
    with open(isolated_results / "index.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and list(table[0]) == list(INDEX_FIELDS)
    assert len(rows) == sum(len(comparison(b)) for b in BENCHMARKS.values())  # no records here: the published cells alone


def test_dirty_means_the_code_differs_not_the_files_the_suite_writes(tmp_path):
    root = tmp_path / "repo"
    (root / "methods").mkdir(parents=True)
    (root / "results").mkdir()
    (root / "methods" / "m.py").write_text("x = 1\n")
    (root / "README.md").write_text("r\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c"]):
        subprocess.run(["git", *args], cwd=root, check=True)
    assert R.git_state(root)["dirty"] is False
    (root / "README.md").write_text("rendered summary\n")
    (root / "results" / "record.json").write_text("{}")
    assert R.git_state(root)["dirty"] is False  # a rendered page or a new record is not a change of code
    (root / "methods" / "new.py").write_text("y = 2\n")
    assert R.git_state(root)["dirty"] is True  # an untracked module would be imported
