"""``metarepro time``: per-cell time per meta-iteration, per-task loop (before) vs batched (after)."""

import json

import pytest

from benchmarks import get_benchmark
from benchmarks.base import Cell
from benchmarks.cell_timing import before_after, load_timings, time_cell, timings_path


def test_maml_cells_time_both_engines_and_reptile_its_own_loop(isolated_results):
    maml = time_cell(get_benchmark("finn2017-table1"), Cell("MAML", "5-way 1-shot"), "smoke", rounds=1)
    assert set(maml["engines"]) == {"func", "higher"} and all(0 < s < 60 for s in maml["engines"].values())
    reptile = time_cell(get_benchmark("nichol2018-table1"), Cell("Reptile", "5-way 1-shot"), "smoke", rounds=1)
    assert set(reptile["engines"]) == {"func"}  # tasks run one after another by the algorithm: no "before"


def test_before_after_columns():
    assert before_after({"engines": {"func": 0.1, "higher": 0.25}}) == {
        "loop ms (before)": 250.0, "batched ms (after)": 100.0, "speed-up": "2.50x"}
    assert before_after({"engines": {"func": 0.04}}) == {"loop ms (before)": "- (sequential)", "batched ms (after)": 40.0,
                                                        "speed-up": "-"}
    assert before_after(None)["speed-up"] == "-"


def test_time_command_writes_each_cell_once_per_trained_model(isolated_results, capsys):
    from benchmarks.cli import main

    cells = ["Reptile/5-way 1-shot", "Reptile/5-way 5-shot"]  # one Reptile model per way count serves both shot columns
    assert main(["time", "nichol2018-table1", "--scale", "smoke", "--rounds", "1", "--cells", *cells]) == 0
    data = json.loads(timings_path().read_text())["nichol2018-table1"]
    a, b = (data[Cell.parse(c).label] for c in cells)
    assert a["engines"] == b["engines"] and a["provenance"]["command"] == "metarepro time"
    assert load_timings() == json.loads(timings_path().read_text())
    assert "(sequential)" in capsys.readouterr().out


def test_time_command_rejects_benchmarks_without_meta_iterations(isolated_results):
    with pytest.raises(ValueError, match="gradient-based Omniglot"):
        time_cell(get_benchmark("snell2017-table1"), Cell("Prototypical Networks", "5-way 1-shot"), "smoke")
