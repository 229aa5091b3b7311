"""Parked trainings (benchmarks/harness/parking.py): unfinished checkpoints copied under results/parked, restored by a
new checkout's ``reproduce`` with their training history, pruned once their records are current, dropped by --restart."""

import json
import shutil

from benchmarks import BENCHMARKS
from benchmarks.harness.base import Cell
from benchmarks.harness.cli import main
from metarepro.data.store import file_digest


def _checkpoint_at(path, iteration: int) -> None:
    from metarepro.trainer import CHECKPOINT_FORMAT, save_checkpoint

    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "config_hash": None, "state": {"iteration": iteration}})


def test_park_copies_unfinished_trainings_and_unpark_restores_only_what_is_ahead(isolated_results):
    from benchmarks.harness.parking import park, parked_root, unpark
    from benchmarks.harness.runner import runs_dir

    l2g = BENCHMARKS["l2g-omniglot"]
    folder = l2g.run_directories(Cell("Prototypical Network", "5-way 1-shot"), "paper")[0]
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 5000)
    _checkpoint_at(runs_dir() / folder / "best.pt", 4000)
    _checkpoint_at(runs_dir() / "l2g-omniglot" / "smoke" / "anything" / "checkpoint.pt", 3)  # smoke: never parked
    summed = l2g.run_directories(Cell("L2G + Prototypical Network", "5-way 1-shot", "summed losses"), "paper")[0]
    _checkpoint_at(runs_dir() / summed / "checkpoint.pt", 100)  # a variant's training under way, no record of it yet
    obsolete = parked_root() / "l2g-omniglot" / "paper" / "protonet-0123456789abcdef"
    _checkpoint_at(obsolete / "checkpoint.pt", 7)

    rows = {r["run"]: r for r in park()}
    assert rows[folder]["action"] == "parked" and rows[folder]["iteration"] == 5000 and rows[summed]["action"] == "parked"
    assert rows[obsolete.relative_to(parked_root()).as_posix()]["action"].startswith("removed") and not obsolete.exists()
    for name in ("checkpoint.pt", "best.pt"):
        assert file_digest(parked_root() / folder / name) == file_digest(runs_dir() / folder / name)
    assert not list(parked_root().glob("*/smoke/*"))
    assert {r["run"]: r["action"] for r in park()}[folder] == "unchanged"

    shutil.rmtree(runs_dir())  # a new machine: no runs/
    assert unpark([folder, "l2g-omniglot/paper/not-parked"]) == [folder]
    assert file_digest(runs_dir() / folder / "best.pt") == file_digest(parked_root() / folder / "best.pt")
    _checkpoint_at(runs_dir() / folder / "checkpoint.pt", 6000)  # trained on since: the parked copy is behind
    assert unpark([folder]) == [] and file_digest(runs_dir() / folder / "checkpoint.pt") != file_digest(parked_root() / folder / "checkpoint.pt")


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
