"""The DVC pipeline means what it says (issue #15): one stage per recorded training group, whose parameters are what
decides its numbers; ``dvc status`` names exactly the stale groups; pinned checkpoints re-score to their records."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from benchmarks import get_benchmark
from benchmarks.harness import checkpoints as C
from benchmarks.harness import dvc as D
from benchmarks.harness.base import Cell
from benchmarks.harness.cli import main
from metarepro import results as R
from tests.conftest import ROOT

yaml = pytest.importorskip("yaml")


def test_dvc_files_are_in_sync_with_the_records():
    assert D.out_of_sync() == [], "run `metarepro generate dvc` (and `--lock` after adding records)"
    assert D.lock_problems() == []
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    committed = {p.relative_to(ROOT).as_posix() for p in (ROOT / "results" / "reproduced").glob("*/*/*.json")
                 if p.parent.name in D.STAGE_SCALES}
    outs = {next(iter(o)) for s in pipeline.values() for o in s["outs"] if next(iter(o)).startswith("results/reproduced/")}
    # every committed record is some stage's output (methods run under a protocol excepted: none are committed today)
    assert outs == committed
    # a refactor must stale nothing: no stage depends on source files
    assert all("deps" not in s for s in pipeline.values())


def _stages_changed_by(monkeypatch, cls, version: int) -> set[str]:
    monkeypatch.setattr(cls, "PROTOCOL_VERSION", version, raising=False)
    return {s["name"] for s in D.stages() if s["params"] != s["recorded"]}


def test_a_protocol_bump_stales_exactly_the_groups_that_train_that_class(monkeypatch):
    from methods.protonet import ProtoNet

    assert _stages_changed_by(monkeypatch, ProtoNet, 1) == set()
    changed = _stages_changed_by(monkeypatch, ProtoNet, 2)
    # oracle: the rows whose models contain a prototypical network, read from the records' own row names
    expected = {s["name"] for s in D.stages() if any("Prototypical" in c.row for c in s["cells"])}
    assert changed == expected and len(expected) >= 10


@pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")
def test_dvc_status_names_exactly_the_bumped_groups(tmp_path, monkeypatch):
    """The real ``dvc status`` on a copy of the pipeline and the records: clean, then after a ProtoNet protocol bump
    it names exactly the stages whose params changed."""
    from methods.protonet import ProtoNet

    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    for name in ("dvc.yaml", "params.yaml", "dvc.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "results", tmp_path / "results", ignore=shutil.ignore_patterns("figures", "timing"))

    def status() -> dict:
        out = subprocess.run(["dvc", "status", "--json", "dvc.yaml"], cwd=tmp_path, check=True, capture_output=True, text=True)
        return json.loads(out.stdout or "{}")

    assert status() == {}
    monkeypatch.setattr(ProtoNet, "PROTOCOL_VERSION", 2, raising=False)
    all_stages = D.stages()
    (tmp_path / "params.yaml").write_text(D.params_yaml(all_stages))
    expected = {s["name"] for s in all_stages if s["params"]["protocol"].get("ProtoNet") == 2}
    assert set(status()) == expected and expected


def test_stage_names_are_valid_dvc_params_keys():
    benchmark = get_benchmark("guiroy-fig9")
    assert D.stage_name(benchmark, "quick", "regmaml-20w1s-85ecac104b5c43f8-g0.5") == "guiroy-fig9__quick__regmaml-20w1s-85ecac104b5c43f8-g0_5"


# -- pinned checkpoints -----------------------------------------------------------------------------------------------

@pytest.fixture
def pinning_smoke(isolated_results, monkeypatch):
    """Smoke records pin their checkpoints (paper scale does so in real runs)."""
    import benchmarks.harness.runner as runner

    monkeypatch.setattr(runner, "PINNED_SCALES", ("smoke", "paper"))
    return isolated_results


@pytest.mark.parametrize("benchmark_id, cell", [("alfa-table8", "MAML/2x40 5-shot"), ("l2g-omniglot", "Prototypical Network/5-way 1-shot")])
def test_a_pinned_checkpoint_rescores_to_its_record(pinning_smoke, benchmark_id, cell, capsys):
    from benchmarks.harness.runner import reproduce

    benchmark = get_benchmark(benchmark_id)
    [written] = reproduce(benchmark, "smoke", [Cell.parse(cell)], progress=False, log=lambda *_: None)
    record = json.loads(Path(written).read_text())
    pinned = pinning_smoke / record["checkpoint"]["path"]
    assert hashlib.sha256(pinned.read_bytes()).hexdigest() == record["checkpoint"]["sha256"]
    # the pinned weights are those the cell was scored with: the run's own file (best snapshot where it kept one)
    source = benchmark.scored_checkpoint(Cell.parse(cell), "smoke")
    ours, theirs = torch.load(pinned, weights_only=True)["model"], torch.load(source, weights_only=True)["model"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert set(torch.load(pinned, weights_only=True)) == {"format", "config_hash", "model"}  # no optimizer state

    assert record["provenance"]["conv4_cpu_layout"] == "channels_last"  # the arithmetic it was scored in, for evaluate
    args = ["evaluate", "--benchmark", benchmark_id, "--cell", cell, "--scale", "smoke"]
    assert main(args) == 0
    assert "identical" in capsys.readouterr().out
    data = pinned.read_bytes()
    pinned.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one byte changed
    assert main(args) == 1
    assert "sha256" in capsys.readouterr().err


def test_a_pinned_record_is_rescored_in_the_conv4_layout_it_names(pinning_smoke, monkeypatch):
    """A record made before the layout was recorded was made in NCHW and is re-scored so; a newer one in its own."""
    from benchmarks.harness.runner import reproduce
    from methods import backbones

    benchmark, cell = get_benchmark("alfa-table8"), Cell.parse("MAML/2x40 5-shot")
    [written] = reproduce(benchmark, "smoke", [cell], progress=False, log=lambda *_: None)
    record = json.loads(Path(written).read_text())
    seen = []
    monkeypatch.setattr(type(benchmark), "evaluate_checkpoint", lambda self, *a, **k: seen.append(backbones.conv4_cpu_layout()) or [0.0])
    for layout in ("nchw", "channels_last", None):
        provenance = {k: v for k, v in record["provenance"].items() if k != "conv4_cpu_layout"}
        C.rescore_pinned(benchmark, {**record, "provenance": provenance if layout is None else {**provenance, "conv4_cpu_layout": layout}})
    assert seen == ["nchw", "channels_last", "nchw"]
    assert backbones.conv4_cpu_layout() == "channels_last"  # restored after each


def test_weights_that_do_not_rescore_are_not_pinned(pinning_smoke, monkeypatch):
    from benchmarks.harness.runner import reproduce

    benchmark = get_benchmark("alfa-table8")
    cell = Cell.parse("MAML/2x40 5-shot")
    monkeypatch.setattr(type(benchmark), "evaluate_checkpoint", lambda self, *a, **k: torch.zeros(600).numpy())
    [written] = reproduce(benchmark, "smoke", [cell], progress=False, log=lambda *_: None)
    entry = json.loads(Path(written).read_text())["checkpoint"]
    assert entry["pinned"] is False and "did not give the record's scores" in entry["why"]
    assert not C.pinned_path(benchmark, cell, "smoke").exists()


def test_a_tuned_cell_pins_the_model_its_run_chose_and_an_older_record_gains_it_later(pinning_smoke, capsys):
    """A tuned row trains one model per coefficient and scores the one chosen on validation episodes: that model is pinned,
    under its own training key (the record's checkpoint_key), and re-scores to the record. A record made before pinning
    knew the choice gains the same file from ``promote --checkpoints``, its numbers untouched."""
    from benchmarks.harness.paths import runs_dir
    from benchmarks.harness.runner import pin_missing_checkpoints, reproduce

    benchmark, label = get_benchmark("unraveling-omniglot"), "Classical + R_FC (tuned)/SVM 1-shot"
    cell = Cell.parse(label)
    [written] = reproduce(benchmark, "smoke", [cell], progress=False, log=lambda *_: None)
    record = json.loads(Path(written).read_text())
    chosen, keys = record["checkpoint_key"], benchmark.model_keys(cell, "smoke")
    assert len(keys) == 3 and chosen == keys[list(record["selection"]["coefficients"]).index(record["selection"]["chosen"])]
    assert record["checkpoint"]["path"] == f"checkpoints/unraveling-omniglot/smoke/{chosen}.pt"
    pinned = torch.load(pinning_smoke / record["checkpoint"]["path"], weights_only=True)["model"]

    def run_weights(key):
        folder = runs_dir() / "unraveling-omniglot-heads" / "smoke" / key
        return torch.load(folder / "best.pt" if (folder / "best.pt").is_file() else folder / "checkpoint.pt", weights_only=True)["model"]

    same = [all(torch.equal(pinned[k], run_weights(key)[k]) for k in pinned) for key in keys]
    assert same == [key == chosen for key in keys]  # the chosen model's weights, not another coefficient's
    assert main(["evaluate", "--benchmark", benchmark.id, "--cell", label, "--scale", "smoke"]) == 0
    assert "identical" in capsys.readouterr().out
    # on a machine without the run folder the pinned file restores the chosen training alone, with its own progress
    from benchmarks.harness.checkpoints import pinned_training

    restored = pinned_training(chosen, "smoke")
    [own] = [t for t in record["trainings"] if Path(t["checkpoint"]).parent.name == chosen]
    assert len(record["trainings"]) == 3 and [t["checkpoint"] for t in restored.trainings()] == [own["checkpoint"]]
    assert restored.state().iteration == benchmark.model_config(cell.row, 0, "smoke", record["selection"]["chosen"])["iterations"]
    assert restored.state().segments == own["segments"]

    older = {**record, "checkpoint": {"pinned": False, "why": "no single trained model gave the cell's scores"}}
    (pinning_smoke / record["checkpoint"]["path"]).unlink()
    R.write_record(older, cell.slug)
    said = []
    [rewritten] = pin_missing_checkpoints(benchmark, "smoke", log=said.append)
    now = json.loads(Path(rewritten).read_text())
    assert now["checkpoint"]["path"] == record["checkpoint"]["path"] and now["scores"] == record["scores"] and now["config"] == record["config"]
    again = pinning_smoke / now["checkpoint"]["path"]
    assert hashlib.sha256(again.read_bytes()).hexdigest() == now["checkpoint"]["sha256"]
    assert all(torch.equal(pinned[k], v) for k, v in torch.load(again, weights_only=True)["model"].items())
    assert now["provenance"]["checkpoint_pinned"]["command"].startswith("metarepro")
    assert pin_missing_checkpoints(benchmark, "smoke", log=said.append) == []  # a record that pins one is left alone
    # the weights gone (a new machine): the record keeps pinning none, with the reason as it now stands, and only once
    (pinning_smoke / now["checkpoint"]["path"]).unlink()
    R.write_record(older, cell.slug)
    shutil.rmtree(runs_dir() / "unraveling-omniglot-heads" / "smoke" / chosen)
    [rewritten] = pin_missing_checkpoints(benchmark, "smoke", log=said.append)
    gone = json.loads(Path(rewritten).read_text())
    why = gone["checkpoint"]["why"]
    assert gone["checkpoint"]["pinned"] is False and why == f"no checkpoint at runs/unraveling-omniglot-heads/smoke/{chosen}/checkpoint.pt"
    assert gone["scores"] == record["scores"] and pin_missing_checkpoints(benchmark, "smoke", log=said.append) == []
    with pytest.raises(ValueError, match="pin no checkpoints"):
        pin_missing_checkpoints(benchmark, "quick")


def test_pinning_a_fine_tuning_cell_rescores_its_test_at_the_chosen_setting_without_the_grid(pinning_smoke, monkeypatch):
    from benchmarks.anchors.vinyals2016_table1 import Vinyals2016Table1
    from benchmarks.harness.runner import reproduce

    benchmark, cell = get_benchmark("vinyals2016-table1"), Cell.parse("Baseline classifier (fine-tuned)/5-way 1-shot")
    scored = []
    original = Vinyals2016Table1.score_episode
    monkeypatch.setattr(Vinyals2016Table1, "score_episode", lambda self, row, model, e, device, lr_steps=None, invert=False:
                        scored.append(lr_steps) or original(self, row, model, e, device, lr_steps, invert))
    [written] = reproduce(benchmark, "smoke", [cell], progress=False, log=lambda *_: None)
    record = json.loads(Path(written).read_text())
    cfg = benchmark.config(cell, "smoke")
    chosen = (record["fine_tuning"]["lr"], record["fine_tuning"]["steps"])
    assert "sha256" in record["checkpoint"]  # the test-only re-score gave the record's scores exactly
    run = len(cfg["finetune_grid"]) * cfg["val_episodes"] + cfg["test_episodes"]
    assert len(scored) == run + cfg["test_episodes"] and set(scored[run:]) == {chosen}  # the pin: the test only


def test_a_lost_training_is_restored_from_its_pinned_weights_not_trained_again(pinning_smoke, monkeypatch):
    """unraveling-omniglot measures the cross-head matrix's extractors; on a machine without their run folders it loads the
    weights a current heads record pinned: its record equals the one made from the run folder (scores and the segments
    that trained the model), and nothing is trained. A pinned file whose digest is not its record's is not used."""
    import shutil

    import benchmarks.unraveling.omniglot_heads as heads_module
    from benchmarks.harness.checkpoints import pinned_training
    from benchmarks.harness.paths import runs_dir
    from benchmarks.harness.runner import checkpointed_fraction, reproduce

    heads, claims = get_benchmark("unraveling-omniglot-heads"), get_benchmark("unraveling-omniglot")
    quiet = {"progress": False, "log": lambda *_: None}
    [pinned_record] = reproduce(heads, "smoke", [Cell.parse("ProtoNet/ProtoNet/main")], **quiet)
    measured = Cell.parse("ProtoNet/R_FC/main")
    [written] = reproduce(claims, "smoke", [measured], **quiet)
    from_run = json.loads(Path(written).read_text())

    Path(written).unlink()
    shutil.rmtree(runs_dir())  # a new machine: no runs/, nothing parked

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(heads_module, "train", no_training)
    assert checkpointed_fraction(claims, measured, "smoke") == 1.0  # plan counts it as done
    [written] = reproduce(claims, "smoke", [measured], **quiet)
    restored = json.loads(Path(written).read_text())
    assert restored["scores"] == from_run["scores"]
    assert [t["segments"] for t in restored["trainings"]] == [t["segments"] for t in from_run["trainings"]]
    weights = json.loads(Path(pinned_record).read_text())["checkpoint"]
    assert restored["trainings"][0]["weights_from"] == weights["path"]
    assert restored["checkpoint"] == from_run["checkpoint"]  # it pins the same weights, as the same file

    key = heads.training_key(Cell.parse("ProtoNet/ProtoNet/main"), "smoke")
    assert pinned_training(key, "smoke") is not None
    copies = sorted(pinning_smoke.glob(f"checkpoints/*/smoke/{key}.pt"))
    assert [p.parent.parent.name for p in copies] == ["unraveling-omniglot", "unraveling-omniglot-heads"]  # each pins one
    for path in copies:
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # not the weights the records pinned
    assert pinned_training(key, "smoke") is None


def test_a_finished_training_whose_weights_are_pinned_is_not_parked(pinning_smoke):
    """The cross-head matrix's other heads and unraveling-omniglot's cells still need the model, but restore it from the
    pinned weights: parking its ~4 MB checkpoint would add nothing to git."""
    from benchmarks.harness.parking import park
    from benchmarks.harness.runner import reproduce

    heads = get_benchmark("unraveling-omniglot-heads")
    cell = Cell.parse("ProtoNet/ProtoNet/main")
    reproduce(heads, "smoke", [cell], progress=False, log=lambda *_: None)
    folder = heads.run_directories(cell, "smoke")[0]
    assert folder not in {r["run"] for r in park(("smoke",)) if r["action"] == "parked"}
    (pinning_smoke / "checkpoints" / "unraveling-omniglot-heads" / "smoke" / f"{folder.rsplit('/', 1)[1]}.pt").unlink()
    assert {r["run"]: r["action"] for r in park(("smoke",))}[folder] == "parked"  # no pinned weights: parked


def test_a_record_without_a_pinned_checkpoint_says_so(isolated_results, capsys):
    from benchmarks.harness.runner import reproduce

    reproduce(get_benchmark("alfa-table8"), "smoke", [Cell.parse("MAML/2x40 5-shot")], progress=False, log=lambda *_: None)
    assert main(["evaluate", "--benchmark", "alfa-table8", "--cell", "MAML/2x40 5-shot", "--scale", "smoke"]) == 1
    assert "pins no checkpoint" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_under_dvc_the_stage_command_is_stopped_when_dvc_dies(tmp_path):
    """``dvc`` killed alone leaves its stage's command running; under ``DVC_STAGE`` the command asks for SIGTERM then."""
    marker = tmp_path / "got-sigterm"
    child = (f"import signal, time, pathlib\nfrom benchmarks.harness.cli import stop_with_dvc\n"
             f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(marker)!r}).write_text('yes'), exit(0)))\n"
             f"stop_with_dvc()\npathlib.Path({str(tmp_path / 'ready')!r}).write_text('')\ntime.sleep(60)\n")
    parent = (f"import subprocess, sys, os, time, pathlib\n"
              f"subprocess.Popen([sys.executable, '-c', {child!r}], env={{**os.environ, 'DVC_STAGE': 'x'}})\n"
              f"while not pathlib.Path({str(tmp_path / 'ready')!r}).exists(): time.sleep(0.05)\n"
              f"os.kill(os.getpid(), {int(signal.SIGKILL)})\n")
    subprocess.run([sys.executable, "-c", parent], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.read_text() == "yes"


# -- a user's own results root --------------------------------------------------------------------------------------

def test_a_users_run_writes_its_own_root_and_never_overwrites_a_pinned_record(isolated_results, tmp_path, monkeypatch, capsys):
    local = tmp_path / "local"
    monkeypatch.setenv("METAREPRO_LOCAL_RESULTS", str(local))
    args = ["reproduce", "alfa-table8", "--scale", "smoke", "--cells", "MAML/2x40 5-shot", "--jobs", "1", "--no-progress"]
    pinned = isolated_results / "reproduced" / "alfa-table8" / "smoke" / "maml--2x40-5-shot--main.json"
    assert main([*args, "--pin"]) == 0 and pinned.exists()
    before = pinned.read_bytes()
    assert main([*args, "--restart"]) == 0  # a user's run, even one that starts over
    assert pinned.read_bytes() == before
    mine = json.loads((local / "reproduced" / "alfa-table8" / "smoke" / "maml--2x40-5-shot--main.json").read_text())
    capsys.readouterr()
    assert main(["compare", "alfa-table8", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["local_records"]
    theirs = json.loads(before)
    assert row["yours"] == f"{mine['mean']:.3f} ± {mine['ci95']:.3f}" and row["pinned"] == f"{theirs['mean']:.3f} ± {theirs['ci95']:.3f}"


@pytest.mark.skipif(shutil.which("dvc") is None, reason="dvc is not installed")
def test_a_large_pinned_checkpoint_travels_through_a_dvc_remote(pinning_smoke, tmp_path, monkeypatch):
    """Above the git limit a pinned checkpoint is a DVC-cached output: pushed to a (local-directory) remote, deleted,
    pulled back byte for byte."""
    from benchmarks.harness.runner import reproduce

    monkeypatch.setattr(D, "PROJECT_ROOT", tmp_path)
    monkeypatch.setattr(D, "STAGE_SCALES", ("smoke",))
    monkeypatch.setattr(D, "GIT_LIMIT_BYTES", 0)  # every checkpoint counts as large
    [written] = reproduce(get_benchmark("alfa-table8"), "smoke", [Cell.parse("MAML/2x40 5-shot")], progress=False, log=lambda *_: None)
    entry = json.loads(Path(written).read_text())["checkpoint"]
    checkpoint = pinning_smoke / entry["path"]
    run = lambda *args: subprocess.run(["dvc", *args], cwd=tmp_path, check=True, capture_output=True, text=True)  # noqa: E731
    run("init", "--no-scm", "-q")
    D.write_dvc()
    D.write_lock()
    outs = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    [stage] = outs.values()
    assert {"results/" + entry["path"]: {"cache": True}} in stage["outs"]
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("push", "-q")
    checkpoint.unlink()
    shutil.rmtree(tmp_path / ".dvc" / "cache")
    run("pull", "-q")
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() == entry["sha256"]


def test_pinning_a_maml_head_cell_rescores_its_test_at_the_chosen_setting_without_the_grid(pinning_smoke, monkeypatch):
    """The cross-head matrix's MAML column chooses (step size, steps) on validation episodes; pinning re-scores the test
    alone at the run's choice (the count of scored episodes says so) and still reproduces the record exactly."""
    import benchmarks.unraveling.omniglot_heads as heads_module
    from benchmarks.harness.runner import reproduce

    heads, cell = get_benchmark("unraveling-omniglot-heads"), Cell.parse("Classical/MAML/main")
    cfg = heads.config(cell, "smoke")
    monkeypatch.setitem(heads_module.SCALES["smoke"], "maml_grid", [(0.01, 1), (0.03, 2)])
    scored, grids = [], []
    original, original_grid = heads_module.head_accuracies, heads_module.finetune_grid_accuracies
    monkeypatch.setattr(heads_module, "head_accuracies", lambda backbone, head, episodes, device:
                        scored.append((getattr(head, "lr", None), getattr(head, "steps", None), len(episodes)))
                        or original(backbone, head, episodes, device))
    monkeypatch.setattr(heads_module, "finetune_grid_accuracies", lambda backbone, grid, episodes, device:
                        grids.append((list(grid), len(episodes))) or original_grid(backbone, grid, episodes, device))
    [written] = reproduce(heads, "smoke", [cell], progress=False, log=lambda *_: None)
    record = json.loads(Path(written).read_text())
    chosen = (record["maml_head"]["lr"], record["maml_head"]["steps"])
    assert "sha256" in record["checkpoint"]  # the test-only re-score gave the record's scores exactly
    assert grids == [([(0.01, 1), (0.03, 2)], cfg["val_episodes"])]  # the run's grid, once: the pin re-scores no grid
    test = (*chosen, cfg["test_episodes"])
    assert scored[-2:] == [test, test]  # the run's test, then the pin's test alone


def test_promote_pins_a_users_own_current_record_as_reproduce_pin_would(pinning_smoke, tmp_path, monkeypatch):
    """A run without --pin writes to the user's root; ``promote`` copies its current record into the pinned root, pins
    the weights it was scored with (re-scored to the same scores), never overwrites a pinned record, and refuses a stale
    one."""
    from benchmarks.harness.runner import promote_local, reproduce

    monkeypatch.setenv("METAREPRO_LOCAL_RESULTS", str(tmp_path / "mine"))
    benchmark, cell = get_benchmark("alfa-table8"), Cell.parse("MAML/2x40 5-shot")
    [mine] = reproduce(benchmark, "smoke", [cell], progress=False, log=lambda *_: None)
    assert Path(mine).is_relative_to(tmp_path / "mine") and not R.record_path(benchmark.id, "smoke", cell.slug).exists()
    said = []
    [pinned_path] = promote_local(benchmark, "smoke", log=said.append)
    own, pinned = json.loads(Path(mine).read_text()), json.loads(Path(pinned_path).read_text())
    assert Path(pinned_path) == R.record_path(benchmark.id, "smoke", cell.slug)
    assert pinned["scores"] == own["scores"] and pinned["config"] == own["config"] and pinned["trainings"] == own["trainings"]
    assert pinned["provenance"]["promoted"]["from"] == "results/local"
    weights = pinning_smoke / pinned["checkpoint"]["path"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == pinned["checkpoint"]["sha256"]
    assert main(["evaluate", "--benchmark", benchmark.id, "--cell", "MAML/2x40 5-shot", "--scale", "smoke"]) == 0
    assert promote_local(benchmark, "smoke", log=said.append) == [] and "already pinned" in said[-1]
    R.record_path(benchmark.id, "smoke", cell.slug).unlink()
    own["config"] = {**own["config"], "inner_lr": 0.5}  # made under another configuration: stale
    R.write_record(own, cell.slug, tmp_path / "mine")
    assert promote_local(benchmark, "smoke", log=said.append) == [] and "stale" in said[-1]
