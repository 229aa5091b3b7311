"""The bilevel metric-learning tables' shared machinery (benchmarks/families/fewshot_metric.py) against independent oracles."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.families.fewshot_metric import build_learner, parse_setting, row_method, use_batch_statistics
from benchmarks.harness.base import Cell
from benchmarks.hyperrepr.fig1 import BENCHMARK as HYPER_FIG1
from benchmarks.hyperrepr.omniglot import BENCHMARK as HYPER_OMNIGLOT
from benchmarks.hyperrepr.table1 import BENCHMARK as HYPER_TABLE1
from benchmarks.l2g.fig2 import BENCHMARK as FIG2
from benchmarks.l2g.fig2 import final_loss
from benchmarks.l2g.fig3 import BENCHMARK as FIG3
from benchmarks.l2g.omniglot import BENCHMARK as L2G_OMNIGLOT
from benchmarks.l2g.table1 import BENCHMARK as TABLE1
from benchmarks.l2g.table2 import BENCHMARK as TABLE2
from benchmarks.l2g.table3 import BENCHMARK as TABLE3
from methods.l2g import L2G, TaskPairs
from methods.maml_metric import MAMLMetric
from methods.relationnet import RelationNet


def test_rows_name_their_learner_and_wrapper():
    assert row_method("L2G + Relation Network") == ("relationnet", "l2g")
    assert row_method("MAML + Prototypical Network") == ("protonet", "maml")
    assert row_method("MAML") == ("maml", None)
    assert row_method("Prototypical Networks") == ("protonet", None)
    with pytest.raises(KeyError):
        row_method("L2G + Siamese Network")


def test_column_settings():
    assert parse_setting("10-way 5-shot") == ([10], [5])
    assert parse_setting("tiered-ImageNet 5-way 5-shot") == ([5], [5])
    assert parse_setting("Any-shot") == ([5], [1, 5, 10])
    assert parse_setting("Any-way") == ([5, 7, 10], [5])
    assert parse_setting("Any-shot & Any-way") == ([5, 7, 10], [1, 5, 10])


def test_batch_statistics_in_eval_mode_match_a_hand_normalisation():
    """RelationNet's BN (Sung et al.'s code never calls eval()) must normalise with the batch even in eval mode."""
    torch.manual_seed(0)
    bn = use_batch_statistics(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))
    with torch.no_grad():
        bn[0].weight.uniform_(0.5, 2)
        bn[0].bias.uniform_(-1, 1)
    bn.eval()
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    xn = x.numpy()
    mean, var = xn.mean(axis=(0, 2, 3), keepdims=True), xn.var(axis=(0, 2, 3), keepdims=True)
    w, b = bn[0].weight.detach().double().numpy()[None, :, None, None], bn[0].bias.detach().double().numpy()[None, :, None, None]
    expected = (xn - mean) / np.sqrt(var + bn[0].eps) * w + b
    np.testing.assert_allclose(bn.double()(x).detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_each_row_builds_the_model_its_paper_describes():
    cfg = lambda row, col="5-way 1-shot": TABLE1.config(Cell(row, col), "paper")  # noqa: E731
    rn = build_learner(cfg("L2G + Relation Network"), 5)
    assert isinstance(rn, L2G) and isinstance(rn.model, RelationNet) and rn.inner_lr == 1e-2
    # mini-ImageNet RelationNet: 84x84 -> 64x19x19 feature maps, unpadded relation convs -> 64x3x3 into fc1 (Sung et al.)
    assert rn.model.relation.fc1.in_features == 64 * 3 * 3
    assert all(m.running_mean is None for m in rn.modules() if isinstance(m, torch.nn.BatchNorm2d))
    proto = build_learner(cfg("MAML + Prototypical Network"), 5)
    assert isinstance(proto, MAMLMetric)
    assert all(m.running_mean is not None for m in proto.modules() if isinstance(m, torch.nn.BatchNorm2d))
    maml = build_learner(cfg("MAML", "10-way 5-shot"), 10)
    assert maml.backbone.filters == 32 and maml.test_steps == 10
    hyper = build_learner(HYPER_TABLE1.config(Cell("Hyper-Representation", "5-way 1-shot"), "paper"), 5)
    assert hyper.representation.blocks[0][0].out_channels == 32 and float(hyper.eta.detach()) == pytest.approx(0.1)


def test_protocol_numbers_are_the_papers():
    c = TABLE1.config(Cell("L2G + Prototypical Network", "5-way 1-shot"), "paper")
    assert (c["tasks_per_update"], c["inner_lr"], c["lr"], c["decay_every"], c["runs"], c["test_episodes"]) == (5, 1e-2, 1e-3, 10_000, 5, 600)
    assert TABLE1.config(Cell("L2G + Relation Network", "5-way 1-shot"), "paper")["decay_every"] == 100_000
    maml = TABLE1.config(Cell("MAML", "5-way 1-shot"), "paper")
    assert (maml["tasks_per_update"], maml["maml_inner_lr"], maml["maml_inner_steps"]) == (4, 0.01, 5)
    assert TABLE1.config(Cell("MAML", "5-way 5-shot"), "paper")["tasks_per_update"] == 2
    h = HYPER_TABLE1.config(Cell("Hyper-Representation", "5-way 1-shot"), "paper")
    assert (h["tasks_per_update"], h["hyperrepr_filters"]) == (4, 32)
    assert len(TABLE1.cells()) == 30  # 8 rows x 4 columns, less Matching Nets' two 10-way cells (printed "-")


@pytest.fixture(scope="module")
def mini_pools(tmp_path_factory):
    cfg = TABLE1.config(Cell("Prototypical Network", "5-way 1-shot"), "smoke")
    return TABLE1.pools(cfg, tmp_path_factory.mktemp("runs")), cfg


def test_l2g_batches_pair_tasks_of_disjoint_classes_and_table3_fixes_the_first_task(mini_pools):
    pools, _ = mini_pools
    cfg = TABLE3.config(Cell("L2G + Prototypical Networks", "Any-shot & Any-way"), "paper")
    cfg["queries"] = 1
    settings = set()
    for index in range(30):
        pairs = TABLE3.train_batch(pools["train"], cfg, 0, index)
        assert isinstance(pairs, TaskPairs) and len(pairs.first) == 5
        for a, b, ca, cb in zip(pairs.first, pairs.second, pairs.first_classes, pairs.second_classes):
            assert len(np.intersect1d(ca, cb)) == 0
            assert (int(a.support_y.max()) + 1, len(a.support_y) // (int(a.support_y.max()) + 1)) == (5, 5)
            ways = int(b.support_y.max()) + 1
            settings.add((ways, len(b.support_y) // ways))
    assert settings <= {(w, s) for w in (5, 7, 10) for s in (1, 5, 10)} and len(settings) >= 6


def test_test_episodes_cycle_through_the_settings_and_are_fixed(mini_pools):
    pools, _ = mini_pools
    cfg = {**TABLE3.config(Cell("Prototypical Networks", "Any-way"), "smoke"), "queries": 1}
    episodes = TABLE3.fixed_episodes(pools["test"], cfg, "test", 6)
    assert [int(e.support_y.max()) + 1 for e in episodes] == [5, 7, 10, 5, 7, 10]
    again = TABLE3.fixed_episodes(pools["test"], cfg, "test", 6)
    assert all(torch.equal(a.query_x, b.query_x) for a, b in zip(episodes, again))


def test_a_cell_of_several_runs_scores_their_means(tmp_path):
    cell = Cell("Prototypical Network", "5-way 1-shot")
    original = TABLE1.scale_overrides["smoke"]
    TABLE1.scale_overrides["smoke"] = {**original, "runs": 2, "iterations": 2}
    try:
        result = TABLE1.run_cell(cell, "smoke", tmp_path, progress=False)
    finally:
        TABLE1.scale_overrides["smoke"] = original
    per_run = [np.mean(s) for s in result.extra["episode_scores_per_run"]]
    assert len(result.scores) == 2 and np.allclose(result.scores, per_run) and result.score_unit == "run"
    assert len(result.extra["episode_scores_per_run"][0]) == original["test_episodes"]
    assert not np.array_equal(*result.extra["episode_scores_per_run"])  # two seeds, two models


def test_figures_share_the_tables_trainings():
    for column, table in (("mini-ImageNet 5-way 5-shot", TABLE1), ("tiered-ImageNet 5-way 5-shot", TABLE2)):
        for row in FIG2.rows:
            assert FIG2.training_key(Cell(row, column), "paper") == table.training_key(Cell(row, "5-way 5-shot"), "paper")
    for row in FIG3.rows:
        assert FIG3.training_key(Cell(row, "meta-test classes"), "paper") == TABLE2.training_key(Cell(row, "5-way 5-shot"), "paper")
    # hyperrepr-fig1's T = 5 model is the one hyperrepr-table1 trains for T = 5 in its 1-shot grid
    t5 = [c for c in HYPER_TABLE1.candidates(Cell("Hyper-Representation", "5-way 1-shot"), "paper") if c["ground_steps"] == 5]
    assert HYPER_FIG1.training_key(Cell("Hyper-Representation", "T = 5"), "paper") == HYPER_TABLE1.key_of(t5[0])
    assert (HYPER_OMNIGLOT.training_key(Cell("Prototypical Network", "20-way 5-shot"), "paper")
            == L2G_OMNIGLOT.training_key(Cell("Prototypical Network", "20-way 5-shot"), "paper"))


def test_final_loss_is_the_mean_of_the_last_tenth():
    curve = [[i, float(v)] for i, v in enumerate(range(100, 0, -1))]  # 100 points, last ten are 10..1
    assert final_loss(curve) == pytest.approx(5.5)
    assert final_loss([[0, 2.0], [1, 3.0]]) == 3.0
    with pytest.raises(ValueError):
        final_loss([])
    assert FIG2.trivial_score(Cell("Prototypical Network", "mini-ImageNet 5-way 5-shot"), "smoke") == pytest.approx(math.log(5))
    # a uniform 1/5 relation score against a one-hot target: (4 * (1/5)^2 + (4/5)^2) / 5
    uniform = F.mse_loss(torch.full((5,), 0.2), F.one_hot(torch.tensor(0), 5).float()).item()
    assert FIG2.trivial_score(Cell("Relation Network", "mini-ImageNet 5-way 5-shot"), "smoke") == pytest.approx(uniform)


def test_hyper_representation_keeps_the_t_of_best_validation(tmp_path, monkeypatch):
    """run_cell trains one model per T and tests the one whose validation accuracy is highest."""
    from types import SimpleNamespace

    tested = []

    def fake_train_run(cfg, run, runs_dir, progress, device, position, desc):
        model = torch.nn.Module()
        model.eta = torch.tensor(0.3)
        state = SimpleNamespace(best_value={1: 40.0, 3: 25.0}[cfg["ground_steps"]], elapsed_s=1.0, iteration=2, loss_curve=[[1, 0.5]])
        return model, state, {"test": None}

    def fake_score(model, pools, cfg, device, state=None):
        tested.append(cfg["ground_steps"])
        return np.array([50.0, 60.0]), {}

    monkeypatch.setattr(HYPER_TABLE1, "train_run", fake_train_run)
    monkeypatch.setattr(HYPER_TABLE1, "score_run", fake_score)
    result = HYPER_TABLE1.run_cell(Cell("Hyper-Representation", "5-way 1-shot"), "smoke", tmp_path, progress=False)
    assert tested == [3] and result.extra["selected_T"] == 3  # validation error 25% < 40%
    assert json.dumps(result.extra["validation_accuracy_by_T"]) == json.dumps({"1": 60.0, "3": 75.0})


def test_the_l2g_claim_checks_controls_change_only_what_they_name(mini_pools):
    """'summed losses' (L2G rows): the paper's sums in L2G; '5 tasks per update' (base rows): 5 stacked episodes. Main cells keep
    their configuration (and so their records)."""
    from benchmarks.l2g.omniglot import FIVE_TASKS, SUMMED

    pools, _ = mini_pools
    column = "5-way 1-shot"
    main, summed = (L2G_OMNIGLOT.config(Cell("L2G + Relation Network", column, v), "paper") for v in ("main", SUMMED))
    assert {k: v for k, v in summed.items() if k != "l2g_loss"} == main and summed["l2g_loss"] == "sum"
    assert build_learner(summed, 5).loss == "sum" and build_learner(main, 5).loss == "mean"
    base, five = (L2G_OMNIGLOT.config(Cell("Prototypical Network", column, v), "paper") for v in ("main", FIVE_TASKS))
    assert {**base, "tasks_per_update": 5} == five and base["tasks_per_update"] == 1
    batch = L2G_OMNIGLOT.train_batch(pools["train"], {**five, "queries": 1}, 0, 0)
    assert batch.n_tasks == 5
    assert not L2G_OMNIGLOT.variant_applies("Prototypical Network", column, SUMMED)
    assert not L2G_OMNIGLOT.variant_applies("L2G + Prototypical Network", column, FIVE_TASKS)
    assert {c.variant for c in L2G_OMNIGLOT.cells(["all"]) if c.row == "L2G + Relation Network"} == {"main", SUMMED}
