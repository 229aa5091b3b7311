"""A training that stops on a non-finite loss leaves no record but a divergence note: a finding the claim checks and
``compare`` name, which ``reproduce`` does not train again (it would diverge again) unless ``--restart``, and which a
record of the cell, or a changed configuration or protocol version, supersedes."""

import numpy as np
import pytest

from benchmarks import get_benchmark
from benchmarks.harness.base import Cell, CellResult
from metarepro import results as R
from metarepro.trainer import NonFiniteLossError, TrainState

BENCH = "alfa-sinusoid-ablations"
MAML, ALFA = Cell("MAML", "2x40 5-shot"), Cell("ALFA+MAML", "2x40 5-shot")


def _fake_run_cell(calls: list, diverging: set):
    """``run_cell`` that trains nothing: scores from the cell's seed and row, or a NaN at iteration 700 for ``diverging``."""

    def run_cell(self, cell, scale, runs_dir, engine="func", progress=True, device="cpu", progress_position=None):
        calls.append(cell)
        if (cell.row, cell.seed) in diverging:
            state = TrainState(iteration=700, segments=[{"protocol_versions": {"trainer": 1}}], val_curve=[[500, 0.3]])
            raise NonFiniteLossError(f"{cell.label}: outer loss is nan at iteration 700; stopped.", state)
        rng = np.random.default_rng(100 * cell.seed + len(cell.row))
        return CellResult(scores=rng.uniform(0.1, 0.2, size=20) + (0.0 if cell.row == "MAML" else -0.05), deviations=[],
                          wall_time_s=1.0, train_wall_time_s=1.0, extra={})

    return run_cell


def test_a_diverged_training_is_noted_named_by_the_claims_and_not_trained_again(isolated_results, monkeypatch):
    from benchmarks.harness.cli import divergence_lines, render_readme
    from benchmarks.harness.runner import claim_checks, current_divergence, reproduce

    bench = get_benchmark(BENCH)
    calls: list[Cell] = []
    monkeypatch.setattr(type(bench), "run_cell", _fake_run_cell(calls, {("ALFA+MAML", 2)}))
    cells = [Cell(c.row, c.column, seed=s) for c in (MAML, ALFA) for s in range(3)]
    with pytest.raises(NonFiniteLossError, match="1 of 6 training group"):  # the others ran and wrote their records
        reproduce(bench, "quick", cells, pin=True, progress=False, log=lambda *a: None)
    assert len(calls) == 6 and len(R.load_records(BENCH)) == 5
    note = current_divergence(bench, Cell("ALFA+MAML", "2x40 5-shot", seed=2), "quick")
    assert (note["iteration"], note["iterations"], note["seed"]) == (700, bench.config(ALFA, "quick")["iterations"], 2)
    assert note["provenance"]["validations"] == [[500, 0.3]]
    # the claim names the lost seed instead of counting it as a run not made
    [check] = [c for c in claim_checks(bench) if c["claim"].startswith("ALFA improves MAML") and c["protocol"] == "main"]
    assert check["seeds"] == 2 and check["holds"] == "too few seeds (2 of 3)"
    assert check["diverged (no record)"] == "ALFA+MAML seed 2 at iteration 700"
    assert divergence_lines(bench) == [f"- ALFA+MAML / 2x40 5-shot [main] seed 2 (quick): the outer loss was not finite at iteration 700 of "
                                       f"{note['iterations']} (commit {(note['provenance']['commit'] or '?')[:10]}); no record"]
    render_readme()
    assert "Trainings that diverged (noted by the runs):" in (R.results_dir() / "README.md").read_text()
    # a second reproduce trains nothing: five records are current, the sixth diverged before
    logged: list[str] = []
    reproduce(bench, "quick", cells, pin=True, progress=False, log=logged.append)
    assert len(calls) == 6 and any("diverged before, not trained again: ALFA+MAML" in line for line in logged)
    # --restart trains it again; a record of the cell supersedes its note
    monkeypatch.setattr(type(bench), "run_cell", _fake_run_cell(calls, set()))
    reproduce(bench, "quick", [Cell("ALFA+MAML", "2x40 5-shot", seed=2)], pin=True, progress=False, restart=True, log=lambda *a: None)
    assert len(calls) == 7 and not R.divergence_path(BENCH, "quick", Cell("ALFA+MAML", "2x40 5-shot", seed=2).slug).exists()
    assert [c for c in claim_checks(bench) if c["claim"].startswith("ALFA improves MAML")][0]["seeds"] == 3


def test_a_divergence_note_stands_only_beside_the_configuration_and_versions_it_was_made_under(isolated_results, monkeypatch):
    from benchmarks.harness import runner
    from benchmarks.harness.runner import current_divergence

    bench = get_benchmark(BENCH)
    note = {"benchmark": BENCH, "row": ALFA.row, "column": ALFA.column, "variant": "main", "scale": "quick", "seed": 0,
            "config_hash": bench.result_hash(ALFA, "quick"), "protocol_versions": {"trainer": 1, "ALFA": 1}, "iteration": 7,
            "iterations": 9, "message": "nan", "provenance": {}}
    R.write_divergence(note, ALFA.slug)
    monkeypatch.setattr(runner, "current_protocol_versions", lambda: {"trainer": 1, "ALFA": 1, "MAML": 3})
    assert current_divergence(bench, ALFA, "quick")["iteration"] == 7
    monkeypatch.setattr(runner, "current_protocol_versions", lambda: {"trainer": 1, "ALFA": 2})  # a fix to ALFA's numerics
    assert current_divergence(bench, ALFA, "quick") is None
    monkeypatch.setattr(runner, "current_protocol_versions", lambda: {"trainer": 1, "ALFA": 1})
    R.write_divergence({**note, "config_hash": "another"}, ALFA.slug)  # made under another configuration
    assert current_divergence(bench, ALFA, "quick") is None
    with pytest.raises(ValueError, match="needs"):
        R.write_divergence({k: v for k, v in note.items() if k != "iteration"}, ALFA.slug)


def test_a_loss_above_the_benchmarks_bound_is_a_divergence_with_its_loss_and_bound(isolated_results, monkeypatch):
    """A benchmark with a loss bound stops a real training whose outer loss rises above it and notes it as a divergence,
    naming the loss and the bound (alfa-sinusoid-ablations' training, given a bound below its first losses)."""
    from benchmarks.alfa import sinusoid_ablations as A
    from benchmarks.harness.cli import divergence_lines
    from benchmarks.harness.runner import current_divergence, reproduce

    bench = get_benchmark(BENCH)
    assert bench.loss_bound is A.LOSS_BOUND is None  # the real protocol trains through a finite blow-up, as the code does
    monkeypatch.setattr(type(bench), "loss_bound", 0.5)  # below the first losses of a fresh MLP (~4 on these sines)
    with pytest.raises(NonFiniteLossError, match="1 of 1 training group"):
        reproduce(bench, "smoke", [ALFA], pin=True, progress=False, log=lambda *a: None)
    note = current_divergence(bench, ALFA, "smoke")
    assert note["iteration"] == 0 and note["bound"] == 0.5 and note["loss"] > 0.5
    assert "above the divergence bound 0.5" in note["message"] and R.load_records(BENCH) == []
    [line] = divergence_lines(bench)
    assert f"the outer loss reached {note['loss']:.3g}, above the divergence bound 0.5, at iteration 0 of 150" in line
    assert "runs/alfa-sinusoid-ablations/smoke/" in note["message"] and str(isolated_results.parent) not in note["message"]
    # a bound raised above the loss it saw, or dropped, lets the cell train again; one still below it keeps the note
    monkeypatch.setattr(type(bench), "loss_bound", note["loss"] * 0.9)
    assert current_divergence(bench, ALFA, "smoke") is not None
    for raised in (note["loss"], None):
        monkeypatch.setattr(type(bench), "loss_bound", raised)
        assert current_divergence(bench, ALFA, "smoke") is None
