"""tox.ini's reproduce environments come from the registry; `reproduce tableN` runs every registered Table N."""

import pytest

from benchmarks import BENCHMARKS, UnknownBenchmarkError
from benchmarks.harness.cli import expand_targets, main
from benchmarks.harness.generate import committed_tox_block, tox_block, tox_in_sync, tox_path


def test_tox_ini_is_in_sync_with_the_registry():
    assert tox_in_sync(), "tox.ini's generated environments are out of date: run `metarepro generate tox`"
    block = committed_tox_block(tox_path().read_text())
    for benchmark_id in BENCHMARKS:
        assert f"[testenv:reproduce-{benchmark_id}]" in block
    assert "[testenv:reproduce-table1]" in block and "commands = metarepro reproduce table1 " in block


def test_a_new_benchmark_puts_tox_out_of_sync(monkeypatch):
    from types import SimpleNamespace

    import benchmarks.harness.generate as G

    new = SimpleNamespace(id="new-table4", title="a new table", requires_data=None)
    monkeypatch.setattr(G, "BENCHMARKS", {**BENCHMARKS, new.id: new})
    assert "[testenv:reproduce-table4]" in tox_block() and not tox_in_sync()


def test_table_selectors_expand_to_every_registered_table():
    assert [b.id for b in expand_targets(["table1"])] == [b for b in BENCHMARKS if b.endswith("-table1")]
    # a benchmark named and then selected again comes once, in the order asked
    assert [b.id for b in expand_targets(["unraveling-table8", "table8"])] == ["unraveling-table8", "alfa-table8"]
    with pytest.raises(UnknownBenchmarkError, match="table99"):
        expand_targets(["table99"])


def test_several_benchmarks_run_only_with_yes(isolated_results, capsys):
    assert main(["reproduce", "table1", "--scale", "smoke", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert "snell2017-table1" in out and "add --yes" in err
    assert not (isolated_results / "reproduced").exists()  # nothing ran
    with pytest.raises(ValueError, match="one benchmark"):
        expand_and_cells()


def expand_and_cells():
    from argparse import Namespace

    from benchmarks.harness.cli import cmd_reproduce

    cmd_reproduce(Namespace(benchmarks=["table1"], cells=["MAML/5-way 1-shot"], method=None))


def test_the_timing_runner_finds_its_modules():
    """`tox -e timing` ran nothing after benchmarks/ moved into folders (its root pointed at benchmarks/); it now finds
    the modules and an empty run fails."""
    from benchmarks.harness import timing

    assert len(list((timing.ROOT / "tests" / "timing").glob("test_*.py"))) >= 3
