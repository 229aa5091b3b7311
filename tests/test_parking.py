"""Parked trainings (benchmarks/harness/parking.py): unfinished checkpoints copied under results/parked, restored by a
new checkout's ``reproduce`` with their training history, pruned once their records are current, dropped by --restart."""

import json
import shutil

import numpy as np

from benchmarks import BENCHMARKS
from benchmarks.harness.base import Cell
from benchmarks.harness.cli import main
from metarepro import results as R
from metarepro.data.store import file_digest


def _checkpoint_at(path, iteration: int, started: str = "2026-12-01T00:00:00+00:00") -> None:
    """A checkpoint of a training whose first segment started at ``started`` (its identity), at ``iteration``."""
    from metarepro.trainer import CHECKPOINT_FORMAT, save_checkpoint

    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "config_hash": None,
                           "state": {"iteration": iteration, "segments": [{"started_utc": started, "host": "vm"}]}})


def test_park_copies_unfinished_trainings_and_unpark_restores_only_what_is_ahead(isolated_results):
    from benchmarks.harness.parking import park, parked_root, progress, unpark
    from benchmarks.harness.runner import runs_dir

    l2g = BENCHMARKS["l2g-omniglot"]
    folder = l2g.run_directories(Cell("Prototypical Network", "5-way 1-shot"), "paper")[0]
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 5000)
    _checkpoint_at(runs_dir() / folder / "best.pt", 4000)
    (runs_dir() / folder / "evaluation-a-cell.json").write_text('{"series": {"test": [50.0]}}')  # a stopped evaluation's journal
    _checkpoint_at(runs_dir() / "l2g-omniglot" / "smoke" / "anything" / "checkpoint.pt", 3)  # smoke: never parked
    summed = l2g.run_directories(Cell("L2G + Prototypical Network", "5-way 1-shot", "summed losses"), "paper")[0]
    _checkpoint_at(runs_dir() / summed / "checkpoint.pt", 100)  # a variant's training under way, no record of it yet
    obsolete = parked_root() / "l2g-omniglot" / "paper" / "protonet-0123456789abcdef"
    _checkpoint_at(obsolete / "checkpoint.pt", 7)

    rows = {r["run"]: r for r in park()}
    assert rows[folder]["action"] == "parked" and rows[folder]["iteration"] == 5000 and rows[summed]["action"] == "parked"
    assert rows[obsolete.relative_to(parked_root()).as_posix()]["action"].startswith("removed") and not obsolete.exists()
    for name in ("checkpoint.pt", "best.pt", "evaluation-a-cell.json"):
        assert file_digest(parked_root() / folder / name) == file_digest(runs_dir() / folder / name)
    assert not list(parked_root().glob("*/smoke/*"))
    assert {r["run"]: r["action"] for r in park()}[folder] == "unchanged"

    shutil.rmtree(runs_dir())  # a new machine: no runs/
    from benchmarks.harness.runner import checkpointed_fraction, checkpointed_runs

    proto = Cell("Prototypical Network", "5-way 1-shot")  # plan and run order count the parked progress
    assert checkpointed_fraction(l2g, proto, "paper") == 5000 / l2g.config(proto, "paper")["iterations"]
    listed = {r["run"]: r for r in checkpointed_runs() if r["run"].endswith("(parked)")}
    assert sorted(r["iteration"] for r in listed.values()) == [100, 5000]  # the summed-losses run and the ProtoNet one
    assert unpark([folder, "l2g-omniglot/paper/not-parked"]) == [folder]
    for name in ("best.pt", "evaluation-a-cell.json"):
        assert file_digest(runs_dir() / folder / name) == file_digest(parked_root() / folder / name)
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 6000)  # trained on since: the parked copy is behind
    assert unpark([folder]) == [] and file_digest(runs_dir() / folder / "checkpoint.pt") != file_digest(parked_root() / folder / "checkpoint.pt")
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 3000)  # the same training, behind its parked copy: restored
    assert unpark([folder]) == [folder]
    assert file_digest(runs_dir() / folder / "checkpoint.pt") == file_digest(parked_root() / folder / "checkpoint.pt")

    # a machine still holding another training (from before a --restart) neither overwrites the parked copy nor is
    # overwritten by it, whichever is further on; a stale machine of the same training does not set the parked copy back
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 9000, started="2026-11-01T00:00:00+00:00")
    assert unpark([folder], log=lambda *_: None) == [] and park()[0]["action"].startswith("kept: the parked copy is another training")
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 1000)
    assert park()[0]["action"].startswith("kept: the parked copy is further on") and progress(parked_root() / folder)[1] == 5000


def test_early_stopping_snapshots_are_parked_as_one_set_and_stale_ones_dropped(isolated_results):
    from benchmarks.harness.parking import park, parked_root
    from benchmarks.harness.runner import runs_dir

    alfa = BENCHMARKS["alfa-table1"]
    folder = next(f for c in alfa.cells() for f in alfa.run_directories(c, "paper"))  # an ALFA model: keeps its 5 best
    for name, iteration in (("checkpoint.pt", 900), ("best.pt", 600), ("top-600.pt", 600), ("top-300.pt", 300)):
        _checkpoint_at(runs_dir() / folder / name, iteration)
    park()
    assert sorted(p.name for p in (parked_root() / folder).iterdir()) == ["best.pt", "checkpoint.pt", "top-300.pt", "top-600.pt"]
    (runs_dir() / folder / "top-300.pt").unlink()  # fell out of the best
    _checkpoint_at(runs_dir() / folder / "top-900.pt", 900)
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 1200)
    assert park()[0]["action"] == "parked"
    assert sorted(p.name for p in (parked_root() / folder).iterdir()) == ["best.pt", "checkpoint.pt", "top-600.pt", "top-900.pt"]


def test_a_variant_cell_keeps_a_finished_training_parked_only_once_that_cell_has_a_record(isolated_results):
    from benchmarks.harness.parking import park
    from benchmarks.harness.runner import runs_dir

    bench = BENCHMARKS["alfa-table8"]
    main_cell = Cell("MAML", "2x40 5-shot")
    folder = bench.run_directories(main_cell, "paper")[0]
    shared = [c for c in bench.cells(variants=["all"], scale="paper") if bench.run_directories(c, "paper")[0] == folder]
    variant = next(c for c in shared if c.variant != "main")  # a test-time variant sharing the main cell's training
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 70_000)
    assert [r["run"] for r in park()] == [folder]  # the main cell has no record yet
    for cell in (main_cell, variant):
        R.write_record(R.make_record(benchmark=bench.id, row=cell.row, column=cell.column, variant=cell.variant, scale="paper",
                                     metric="MSE", scores=np.ones(3), config=bench.config(cell, "paper"), deviations=[],
                                     provenance={"test": True}), cell.slug)
        assert [r["action"] for r in park()] == ["removed (its cells' records are current)"], cell
        R.record_path(bench.id, "paper", main_cell.slug).unlink()  # the variant's record alone does not finish it
        assert [r["run"] for r in park()] == [folder]
        R.write_record(R.make_record(benchmark=bench.id, row=main_cell.row, column=main_cell.column, variant="main", scale="paper",
                                     metric="MSE", scores=np.ones(3), config=bench.config(main_cell, "paper"), deviations=[],
                                     provenance={"test": True}), main_cell.slug)


def test_a_new_checkout_resumes_a_parked_training_with_its_history_and_restart_drops_it(isolated_results, capsys):
    from benchmarks.harness.parking import park, parked_root
    from benchmarks.harness.runner import runs_dir

    cell = ["--cells", "MAML/2x40 5-shot", "--jobs", "1", "--no-progress"]
    assert main(["reproduce", "alfa-table8", "--scale", "smoke", *cell]) == 0
    record_path = isolated_results / "reproduced" / "alfa-table8" / "smoke" / f"{Cell('MAML', '2x40 5-shot').slug}.json"
    first = json.loads(record_path.read_text())["trainings"]
    folder = BENCHMARKS["alfa-table8"].run_directories(Cell("MAML", "2x40 5-shot"), "smoke")[0]
    assert [r["run"] for r in park(("smoke",))] == []  # its record is current: nothing to keep
    record_path.unlink()  # as if the machine had gone before the record was written
    assert [r["run"] for r in park(("smoke",))] == [folder]
    shutil.rmtree(runs_dir())
    capsys.readouterr()
    assert main(["reproduce", "alfa-table8", "--scale", "smoke", *cell]) == 0
    assert f"resuming runs/{folder} from its parked copy" in capsys.readouterr().out
    assert json.loads(record_path.read_text())["trainings"] == first  # no iteration trained again; the history kept
    assert [r["action"] for r in park(("smoke",))] == ["removed (its cells' records are current)"]
    assert not (parked_root() / folder).exists()

    record_path.unlink()
    park(("smoke",))
    assert (parked_root() / folder / "checkpoint.pt").is_file()
    assert main(["reproduce", "alfa-table8", "--scale", "smoke", "--restart", *cell]) == 0
    assert not (parked_root() / folder).exists()
    assert json.loads(record_path.read_text())["trainings"][0]["segments"][0]["started_utc"] != first[0]["segments"][0]["started_utc"]


def test_a_training_writing_while_it_is_parked_is_copied_again_as_one_set(isolated_results, monkeypatch):
    from benchmarks.harness import parking
    from benchmarks.harness.runner import runs_dir

    folder = BENCHMARKS["l2g-omniglot"].run_directories(Cell("Prototypical Network", "5-way 1-shot"), "paper")[0]
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 500)
    _checkpoint_at(runs_dir() / folder / "best.pt", 500)
    copy, calls = shutil.copyfile, []

    def copy_while_training(source, target):  # the training validates and checkpoints at 1000 between the two copies
        calls.append(source)
        copy(source, target)
        if len(calls) == 1:
            _checkpoint_at(runs_dir() / folder / "best.pt", 1000)
            _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 1000)

    monkeypatch.setattr(parking.shutil, "copyfile", copy_while_training)
    assert parking.park()[0]["iteration"] == 1000 and len(calls) > 2
    for name in ("checkpoint.pt", "best.pt"):
        assert file_digest(parking.parked_root() / folder / name) == file_digest(runs_dir() / folder / name)
