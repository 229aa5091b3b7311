"""`metarepro plan`: training groups are the cells that share one model, each with hours, data and currency."""

import json

import pytest

from benchmarks import BENCHMARKS
from benchmarks.harness.base import Cell
from benchmarks.harness.cli import main
from benchmarks.harness.plan import cell_id, plan
from benchmarks.harness.runner import group_seconds


def test_cells_sharing_a_model_form_one_group():
    nichol = BENCHMARKS["nichol2018-table1"]
    groups = plan(nichol, nichol.cells(scale="paper"), "paper")
    reptile_5way = [g for g in groups if set(g["cells"]) == {f"{row}/5-way {k}-shot/main" for row in ("Reptile", "Reptile + Transduction")
                                                               for k in (1, 5)}]
    assert len(reptile_5way) == 1  # one Reptile model per way count serves both shots and both evaluation modes
    assert sum(len(g["cells"]) for g in groups) == len(nichol.cells(scale="paper"))
    (g,) = reptile_5way
    cells = [Cell.parse(c) for c in g["cells"]]
    assert g["projected_hours"] * 3600 == pytest.approx(group_seconds(nichol, cells, "paper"), rel=1e-3)
    assert g["data"] == "omniglot" and g["current"] is True and g["projection"].startswith("measured")
    assert g["remaining_hours"] == 0.0  # every cell pinned: reproduce runs nothing, whatever runs/ holds
    assert [g["projected_hours"] for g in groups] == sorted((g["projected_hours"] for g in groups), reverse=True)


def test_seeds_are_groups_of_their_own_and_cell_ids_round_trip():
    check = BENCHMARKS["l2g-omniglot"]
    cells = [Cell("Prototypical Network", "5-way 1-shot", seed=s) for s in range(3)]
    groups = plan(check, cells, "quick")
    assert len(groups) == 3 and [Cell.parse(cell_id(c)) for c in cells] == cells


def test_plan_json_from_the_cli(capsys):
    assert main(["plan", "finn2017-table1", "--scale", "paper", "--format", "json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert len(groups) == 4 and all(g["projected_hours"] > 0 and g["run_directories"] for g in groups)


def test_cluster_hours_is_the_longest_first_queue_within_grahams_bound_of_the_best_schedule():
    import itertools
    import random

    from benchmarks.harness.plan import cluster_hours

    assert cluster_hours([5, 4, 3, 3, 3], 1) == 18
    assert cluster_hours([5, 4, 3, 3, 3], 2) == 10  # 5 | 4, then 3s to the machine free soonest: 8 | 10 (the best is 9)
    assert cluster_hours([5, 4, 3, 3, 3], 9) == 5
    assert cluster_hours([], 4) == 0
    rng = random.Random(0)
    for _ in range(200):
        hours = [rng.randint(1, 20) for _ in range(rng.randint(1, 7))]
        machines = rng.randint(1, 4)
        best = min(max(sum(h for h, m in zip(hours, assign) if m == k) for k in range(machines))
                   for assign in itertools.product(range(machines), repeat=len(hours)))
        got = cluster_hours(hours, machines)
        assert best <= got <= (4 / 3 - 1 / (3 * machines)) * best + 1e-9, (hours, machines, got, best)


def test_a_cell_without_a_record_is_projected_from_its_timed_meta_iteration(isolated_results):
    """``metarepro time``'s measurement of a cell's meta-iteration (fastest engine) times its iterations, plus the
    benchmark's rough overhead (Guiroy's probes) and test; every seed of the cell trains alike; a measurement of another
    meta-batch is not used."""
    from benchmarks.harness.cell_timing import save_timing

    fig2 = BENCHMARKS["guiroy-fig2"]
    cells = [Cell("First-Order MAML", "5-way 1-shot", seed=s) for s in (0, 1)]
    cfg = fig2.config(cells[0], "paper")
    rough = [plan(fig2, [c], "paper")[0] for c in cells]
    assert all(g["projection"].startswith("rough") for g in rough)
    entry = {"engines": {"func": 0.25, "loop": 0.5}, "meta_batch": cfg["meta_batch"], "inner_steps": cfg["inner_steps"],
             "load_average_1min": 1.0, "threads": 1, "device": "cpu"}
    save_timing(fig2.id, cells[0], entry, git={"commit": "0" * 40, "dirty": False})
    overhead, test = fig2.estimated_training_overhead(cells[0], "paper"), fig2.estimated_train_test(cells[0], "paper")[1]
    for cell in cells:
        [group] = plan(fig2, [cell], "paper")
        assert group["projection"].startswith("metarepro time")
        assert group["projected_hours"] == pytest.approx((0.25 * cfg["iterations"] + overhead + test) / 3600, abs=1e-3)
    save_timing(fig2.id, cells[0], {**entry, "meta_batch": cfg["meta_batch"] * 2}, git={"commit": "0" * 40, "dirty": False})
    assert plan(fig2, [cells[0]], "paper")[0]["projected_hours"] == rough[0]["projected_hours"]
