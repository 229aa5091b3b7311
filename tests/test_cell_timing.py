"""``metarepro time``: per-cell time per meta-iteration, per-task loop (before) vs batched (after)."""

import json

import pytest

from benchmarks import get_benchmark
from benchmarks.harness.base import Cell
from benchmarks.harness.cell_timing import before_after, load_timings, resolve_engine, save_timing, time_cell, timings_path


def test_maml_cells_time_both_engines_and_reptile_its_own_loop(isolated_results):
    maml = time_cell(get_benchmark("finn2017-table1"), Cell("MAML", "5-way 1-shot"), "smoke", rounds=1)
    assert set(maml["engines"]) == {"func", "loop", "higher"} and all(0 < s < 60 for s in maml["engines"].values())
    reptile = time_cell(get_benchmark("nichol2018-table1"), Cell("Reptile", "5-way 1-shot"), "smoke", rounds=1)
    assert set(reptile["engines"]) == {"func"}  # tasks run one after another by the algorithm: no "before"


def test_before_after_columns():
    assert before_after({"engines": {"func": 0.1, "loop": 0.25, "higher": 0.3}}) == {
        "loop ms (before)": 250.0, "higher ms": 300.0, "batched ms": 100.0, "fastest": "batched", "speed-up": "2.50x"}
    assert before_after({"engines": {"func": 0.3, "loop": 0.2, "higher": 0.25}})["fastest"] == "per-task loop"
    assert before_after({"engines": {"func": 0.3, "loop": 0.2, "higher": 0.25}})["speed-up"] == "1.00x"
    # within 5%: a tie, broken toward the suite's own engines (func, then loop) over higher
    assert before_after({"engines": {"func": 0.99, "loop": 0.96, "higher": 0.95}})["fastest"] == "batched"
    assert before_after({"engines": {"func": 1.2, "loop": 1.0, "higher": 0.97}})["fastest"] == "per-task loop"
    assert before_after({"engines": {"func": 1.2, "loop": 1.0, "higher": 0.9}})["fastest"] == "per-task loop (higher)"
    reptile = before_after({"engines": {"func": 0.04}})
    assert reptile["loop ms (before)"] == "- (sequential)" and reptile["batched ms"] == 40.0 and reptile["speed-up"] == "-"
    assert before_after(None)["speed-up"] == "-"


def test_auto_engine_is_the_measured_fastest_for_the_cell(isolated_results):
    fast_loop, fast_batched = Cell("MAML", "20-way 5-shot"), Cell("MAML", "5-way 1-shot")
    assert resolve_engine("auto", "finn2017-table1", fast_loop) == "func"  # nothing measured on this device: batched
    save_timing("finn2017-table1", fast_loop, {"engines": {"func": 12.0, "loop": 9.5, "higher": 10.0}})
    save_timing("finn2017-table1", fast_batched, {"engines": {"func": 0.2, "loop": 0.4, "higher": 0.45}})
    assert resolve_engine("auto", "finn2017-table1", fast_loop) == "loop"
    assert resolve_engine("auto", "finn2017-table1", fast_batched) == "func"
    assert resolve_engine("higher", "finn2017-table1", fast_batched) == "higher"  # asked for: kept


def test_time_command_writes_each_cell_once_per_trained_model(isolated_results, capsys):
    from benchmarks.harness.cli import main

    cells = ["Reptile/5-way 1-shot", "Reptile/5-way 5-shot"]  # one Reptile model per way count serves both shot columns
    assert main(["time", "nichol2018-table1", "--scale", "smoke", "--rounds", "1", "--cells", *cells]) == 0
    data = json.loads(timings_path().read_text())["nichol2018-table1"]
    a, b = (data[Cell.parse(c).label] for c in cells)
    assert a["engines"] == b["engines"]
    assert a["provenance"]["command"] == ("metarepro time nichol2018-table1 --scale smoke --rounds 1 --cells "
                                          "'Reptile/5-way 1-shot' 'Reptile/5-way 5-shot'")
    assert load_timings() == json.loads(timings_path().read_text())
    assert "(sequential)" in capsys.readouterr().out


def test_time_command_rejects_benchmarks_without_meta_iterations(isolated_results):
    with pytest.raises(ValueError, match="gradient-based Omniglot"):
        time_cell(get_benchmark("snell2017-table1"), Cell("Prototypical Networks", "5-way 1-shot"), "smoke")
    with pytest.raises(ValueError, match="gradient-based Omniglot"):  # a model and batches, but no optimizer of its own
        time_cell(get_benchmark("unraveling-omniglot"), Cell("Reptile", "1-shot"), "smoke")


def test_reproduce_trains_each_cell_on_its_auto_engine(isolated_results):
    from benchmarks.harness.runner import reproduce

    cell = Cell("MAML", "5-way 1-shot")
    save_timing("finn2017-table1", cell, {"engines": {"func": 0.3, "loop": 0.1, "higher": 0.2}})
    logged = []
    [path] = reproduce(get_benchmark("finn2017-table1"), "smoke", [cell], progress=False, log=logged.append)
    assert json.loads(open(path).read())["provenance"]["engine"] == "loop"
    assert any("MAML / 5-way 1-shot: loop" in line for line in logged)
