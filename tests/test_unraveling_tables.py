"""Goldblum et al.'s Tables 1-9 and Figs 2-3 as benchmarks: what the modules derive from the paper, held to the paper's
printed numbers and to independent computations."""

import json

import numpy as np
import pytest
import torch

from benchmarks import BENCHMARKS
from benchmarks.families.unraveling_images import Conv4Trunk, conv4_net, uninformative_metric
from benchmarks.harness.base import Cell
from benchmarks.unraveling.table3 import COEFFICIENTS
from benchmarks.unraveling.table7 import parse_runtime, runtime_roundings
from metarepro import results as R
from methods.feature_clustering import feature_clustering, hyperplane_variation_of_batch

IDS = ["unraveling-table1", "unraveling-table2", "unraveling-table3", "unraveling-table4", "unraveling-table5", "unraveling-table6",
       "unraveling-table7", "unraveling-table8", "unraveling-table9", "unraveling-fig2", "unraveling-fig3"]


def published(benchmark_id):
    return {(c.row, c.column): c for c in R.load_published(benchmark_id)}


def test_every_table_and_figure_is_registered_with_every_printed_cell():
    assert all(i in BENCHMARKS for i in IDS)
    for i in IDS:
        cells = {(c.row, c.column) for c in BENCHMARKS[i].cells(scale="paper")}
        assert set(published(i)) <= cells, i  # every printed number has a cell that reproduces it
    counts = {i: len(published(i)) for i in IDS}
    assert counts == {"unraveling-table1": 16, "unraveling-table2": 16, "unraveling-table3": 32, "unraveling-table4": 6,
                      "unraveling-table5": 8, "unraveling-table6": 16, "unraveling-table7": 32, "unraveling-table8": 96,
                      "unraveling-table9": 16, "unraveling-fig2": 0, "unraveling-fig3": 0}


def test_interval_kinds_one_standard_error_except_the_quoted_rows():
    cited = {(i, row) for i in IDS for (row, _), c in published(i).items() if c.cited}
    assert cited == {("unraveling-table1", "R2-D2-M"), ("unraveling-table6", "R2-D2-M"), ("unraveling-table3", "R2-D2"),
                     ("unraveling-table5", "FOMAML"), ("unraveling-table5", "Reptile"), ("unraveling-table9", "0 (Reptile)")}
    for i in IDS:
        for (row, column), c in published(i).items():
            want = "ci95" if c.cited else ("none" if c.interval is None else "se")
            assert c.interval_kind == want, (i, row, column)
    # the quoted R2-D2 cells are the same number in the three tables that print it
    assert published("unraveling-table1")[("R2-D2-M", "SVM")].mean == published("unraveling-table3")[("R2-D2", "mini-ImageNet 1-shot")].mean
    assert published("unraveling-table6")[("R2-D2-M", "SVM")].mean == published("unraveling-table3")[("R2-D2", "mini-ImageNet 5-shot")].mean


def test_table3_coefficients_are_the_table8_cells_table3_prints():
    """Each regularised Table 3 cell is Table 8's SVM cell at the coefficient the module reads off, to Table 3's digits."""
    t3, t8 = published("unraveling-table3"), published("unraveling-table8")
    checked = 0
    for (row, column), cell in t3.items():
        if "w/" not in row:
            continue
        backbone = "R2-D2" if "(R2-D2)" in row else "MetaOptNet"
        reg = "R_FC" if "R_FC" in row else "R_HV"
        dataset = "mini_imagenet" if column.startswith("mini") else "cifar_fs"
        coefficient = COEFFICIENTS[(backbone, reg[2:].lower(), dataset)]
        name8 = {"R2-D2": "R2-D2", "MetaOptNet": "ResNet-12"}[backbone]
        other = t8[(f"{name8} / {reg} / {coefficient:g} / SVM", column)]
        decimals = len(cell.printed.split("\\pm")[0].split(".")[1].rstrip("$ "))
        assert round(other.mean, decimals) == cell.mean, (row, column, other.mean, cell.mean)
        checked += 1
    assert checked == 16
    # and the benchmark trains exactly that model
    cfg = BENCHMARKS["unraveling-table3"].config(Cell("Classical w/ R_HV (MetaOptNet)", "CIFAR-FS 1-shot"), "paper")
    assert (cfg["training"], cfg["coefficient"], cfg["dataset"], cfg["backbone"]) == ("classical-hv", 0.05, "cifar_fs", "MetaOptNet")


def test_runtimes_parse_as_printed():
    assert parse_runtime("16m/16.8h") == (960.0, pytest.approx(60480.0))
    assert parse_runtime("1.4 m / 7.0 h") == (pytest.approx(84.0), 25200.0)
    assert parse_runtime("4s/22m") == (4.0, 1320.0)
    assert runtime_roundings("16m/16.8h") == (30.0, pytest.approx(180.0))
    assert runtime_roundings("44s/45m") == (0.5, 30.0)
    with pytest.raises(ValueError):
        parse_runtime("16m")
    t7 = published("unraveling-table7")
    assert t7[("MetaOptNet-SVM", "mini-ImageNet total")].mean == 88.0 * 3600
    assert t7[("MetaOptNet-SVM", "mini-ImageNet total")].half_width == pytest.approx(180.0)


@pytest.mark.parametrize("classes,per_class", [(10, 2), (64, 2), (5, 4)])
def test_uninformative_metric_values_match_simulation(classes, per_class):
    """Features with no class structure (i.i.d. Gaussian, 256-d) give the closed forms, averaged over 400 draws."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(classes).repeat_interleave(per_class)
    fc = [float(feature_clustering(torch.randn(len(labels), 256, generator=g, dtype=torch.float64), labels)) for _ in range(400)]
    assert np.mean(fc) == pytest.approx(uninformative_metric("R_FC", classes, per_class), rel=0.02)
    if per_class == 2:
        hv = [float(hyperplane_variation_of_batch(torch.randn(len(labels), 256, generator=g, dtype=torch.float64), labels)) for _ in range(50)]
        assert np.mean(hv) == pytest.approx(uninformative_metric("R_HV", classes, per_class), rel=0.01)


def test_conv4_trunk_gives_the_heads_inputs_and_owns_no_head():
    torch.manual_seed(0)
    net = conv4_net({"image_size": 32, "maml_filters": 8}, 5, "reptile").double()
    trunk = Conv4Trunk(net)
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    manual = trunk(x) @ net.head.weight.T + net.head.bias
    assert torch.allclose(net(x), manual, atol=1e-12)
    names = {n for n, _ in trunk.named_parameters()}
    assert names and not any(n.startswith("head") for n in names) and len(names) == len(list(net.parameters())) - 2


def test_tables_that_name_the_same_model_train_it_once():
    b = BENCHMARKS
    same = [(("unraveling-table1", "MetaOptNet-M", "SVM"), ("unraveling-table6", "MetaOptNet-M", "MAML")),
            (("unraveling-table1", "R2-D2-C", "RR"), ("unraveling-table2", "R2-D2-C", "mini-ImageNet R_HV")),
            (("unraveling-table5", "W-Clustering", "1-shot"), ("unraveling-table9", "5.0e-05", "5-shot")),
            (("unraveling-table9", "0 (Reptile)", "1-shot"), ("unraveling-fig3", "Reptile", "5-shot")),
            (("unraveling-table3", "Classical w/ R_FC (R2-D2)", "CIFAR-FS 1-shot"),
             ("unraveling-table8", "R2-D2 / R_FC / 0.05 / NN", "CIFAR-FS 5-shot")),
            (("unraveling-table4", "MAML-1", "R_FC"), ("unraveling-fig2", "MAML", "LDA"))]
    for (i, r, c), (j, s, d) in same:
        assert b[i].run_directories(Cell(r, c), "paper") == b[j].run_directories(Cell(s, d), "paper"), (i, r, j, s)
    different = [(("unraveling-table5", "Reptile", "1-shot"), ("unraveling-table5", "W-Clustering", "1-shot")),
                 (("unraveling-table4", "MAML-1", "R_FC"), ("unraveling-table4", "MAML-5", "R_FC")),
                 (("unraveling-table2", "R2-D2-C", "CIFAR-FS R_FC"), ("unraveling-table2", "R2-D2-C", "mini-ImageNet R_FC"))]
    for (i, r, c), (j, s, d) in different:
        assert b[i].run_directories(Cell(r, c), "paper") != b[j].run_directories(Cell(s, d), "paper"), (i, r, j, s)


def test_weight_clustering_coefficient_is_the_printed_product_halved():
    t9 = BENCHMARKS["unraveling-table9"]
    model = t9.build_model(t9.config(Cell("5.0e-05", "1-shot"), "smoke"))
    assert model.alpha == pytest.approx(2.5e-5)
    assert t9.build_model(t9.config(Cell("0 (Reptile)", "1-shot"), "smoke")).alpha == 0.0


def test_table7_is_not_comparable_and_reports_ratios(isolated_results):
    t7 = BENCHMARKS["unraveling-table7"]
    for row, seconds in (("MetaOptNet-SVM", 50.0), ("Classical (MetaOptNet)", 10.0)):
        cell = Cell(row, "mini-ImageNet epoch")
        record = R.make_record(benchmark=t7.id, row=row, column=cell.column, variant="main", scale="quick", metric=t7.metric,
                               scores=np.array([seconds, seconds + 1.0]), config=t7.config(cell, "quick"), deviations=[],
                               provenance=R.provenance())
        R.write_record(record, cell.slug)
    from benchmarks.harness.runner import comparison

    rows = {(r["row"], r["column"]): r for r in comparison(t7)}
    assert rows[("MetaOptNet-SVM", "mini-ImageNet epoch")]["verdict"] == "not_comparable"
    assert rows[("R2-D2", "mini-ImageNet epoch")]["verdict"] == "not_reproduced"
    notes = {(n["ratio"], n["column"]): n for n in t7.comparison_notes()}
    note = notes[("MetaOptNet-SVM / Classical (MetaOptNet)", "mini-ImageNet epoch")]
    assert note["published"] == f"{5400 / 84:.1f}x" and note["measured"].startswith(f"{50.5 / 10.5:.1f}x")


def test_published_files_carry_the_transcription_marks():
    data = json.loads((R.PROJECT_ROOT / "results" / "published" / "unraveling-table1.json").read_text())
    bold = {(c["row"], c["column"]) for c in data["cells"] if c.get("bold")}
    assert bold == {("MetaOptNet-M", "ProtoNet")}  # the only bold cell Table 1's text carries


def test_omniglot_claims_share_the_heads_models_and_sweep_the_coefficients():
    from benchmarks.unraveling.omniglot import BENCHMARK as OMNIGLOT
    from benchmarks.unraveling.omniglot import COEFFICIENTS
    from benchmarks.unraveling.omniglot_heads import BENCHMARK as HEADS

    assert len(OMNIGLOT.cells(scale="smoke")) == 38 and len(OMNIGLOT.cells(scale="paper")) == 3 * 38
    for row in ("ProtoNet", "R2-D2", "MetaOptNet-SVM", "Classical"):  # the same trained model as the heads benchmark's
        assert OMNIGLOT.run_directories(Cell(row, "R_FC", seed=2), "paper") == HEADS.run_directories(Cell(row, "MAML", seed=2), "paper")
    tuned = OMNIGLOT.config(Cell("Classical + R_HV (tuned)", "NN 5-shot"), "paper")
    assert [m["regularizer_coefficient"] for m in tuned["models"]] == list(COEFFICIENTS)
    assert len(OMNIGLOT.run_directories(Cell("Classical + R_HV (tuned)", "SVM 1-shot"), "paper")) == 3
    # claim 2's control: one model, plain cross-entropy (coefficient 0) on the regularised rows' 64 x 2 batches
    control = OMNIGLOT.config(Cell("Classical (64 x 2 batches)", "SVM 1-shot"), "paper")["models"]
    assert len(control) == 1 and control[0]["regularizer_coefficient"] == 0.0 and control[0]["training"] == "classical-fc"
    assert OMNIGLOT.build_model(control[0], 10).coefficient == 0.0
    controls = [c for c in OMNIGLOT.paired_claims() if c[1] == "Classical (64 x 2 batches)"]
    assert sorted(c[2] for c in controls) == ["Classical + R_FC (tuned)", "Classical + R_HV (tuned)"]
    # the sweep's models differ from the heads benchmark's coefficient-1 model only in the coefficient
    one = OMNIGLOT.model_key(OMNIGLOT.model_config("Classical + R_FC (tuned)", 0, "paper", 1.0))
    assert one == HEADS.training_key(Cell("Classical + R_FC", "SVM"), "paper")
    assert OMNIGLOT.build_model(OMNIGLOT.config(Cell("W-Clustering", "1-shot"), "smoke")["models"][0]).alpha == pytest.approx(2.5e-5)
    assert OMNIGLOT.build_model(OMNIGLOT.config(Cell("Reptile", "1-shot"), "smoke")["models"][0]).alpha == 0.0
    with pytest.raises(KeyError, match="measured in"):
        OMNIGLOT.check_cell(Cell("MAML", "SVM 1-shot"))
    assert [OMNIGLOT.column_higher_is_better(c) for c in ("R_FC", "SVM 1-shot", "5-shot", "distance 1-shot")] == [False, True, True, False]


def test_omniglot_meta_rows_record_where_they_depart_from_their_authors_code():
    """Reptile's rows are set beside supervised-reptile's numbers: their SGD inner loop, BatchNorm over 75 queries and
    test size are recorded with every record; MAML's rows the data pipeline only; the suite's own rows nothing."""
    from benchmarks.unraveling.omniglot import BENCHMARK as OMNIGLOT
    from benchmarks.unraveling.omniglot import ROWS
    from benchmarks.unraveling.reptile_rate import BENCHMARK as RATE

    def deviations(benchmark, row, column, scale="paper"):
        return [d.split(":")[0] for d in benchmark.protocol_deviations(Cell(row, column, seed=1), scale)]

    reptile = ["data", "inner loop", "test BatchNorm", "test"]
    assert deviations(OMNIGLOT, "Reptile", "distance 5-shot") == deviations(OMNIGLOT, "W-Clustering", "1-shot") == reptile
    assert deviations(RATE, RATE.rows[0], "validation 1-shot") == deviations(RATE, RATE.rows[-1], "validation 5-shot") == reptile
    assert deviations(OMNIGLOT, "MAML", "R_HV") == deviations(OMNIGLOT, "First-order MAML", "R_FC") == ["data"]
    assert deviations(OMNIGLOT, "Reptile", "1-shot", "smoke") == reptile[1:]  # the fixtures have no authors' split
    for row in ("Classical", "Classical (MAML's Conv-4)", "Classical + R_FC (tuned)", "ProtoNet"):
        assert deviations(OMNIGLOT, row, ROWS[row][1][0]) == []


def test_head_accuracies_score_an_episode_with_non_finite_logits_as_nan_not_as_chance():
    from benchmarks.families.unraveling_images import head_accuracies
    from metarepro.episodes import Episode

    query_y = torch.tensor([0, 1, 1, 0])
    right = torch.nn.functional.one_hot(query_y, 2).float()
    half = right.clone()
    half[2:] = 1 - half[2:]  # 2 of 4 queries wrong
    nan, inf = right.clone(), half.clone()
    nan[1, 0], inf[3, 1] = float("nan"), float("inf")  # one non-finite logit, not on the argmax

    class ScriptedHead(torch.nn.Module):  # the next scripted logits at each call, (1, queries, ways)
        def __init__(self, logits):
            super().__init__()
            self.logits = iter(logits)

        def forward(self, support, support_y, query, ways):
            return next(self.logits)[None]

    episodes = [Episode(torch.rand(2, 1, 2, 2), torch.tensor([0, 1]), torch.rand(4, 1, 2, 2), query_y) for _ in range(4)]
    scores = head_accuracies(torch.nn.Flatten(), ScriptedHead([nan, right, inf, half]), episodes, "cpu")
    assert np.isnan(scores[0]) and np.isnan(scores[2]) and scores[1] == 100.0 and scores[3] == 50.0


def test_the_maml_heads_grid_never_chooses_a_diverged_point_and_flags_an_edge_choice(monkeypatch):
    """The grid is scored by a scripted stand-in for finetune_grid_accuracies (per (lr, steps) a validation mean, NaN:
    diverged)."""
    from benchmarks.unraveling import omniglot_heads as H

    def scripted(table):
        return lambda backbone, grid, episodes, device: {point: np.array([table.get(point, 10.0)]) for point in grid}

    monkeypatch.setattr(H.BENCHMARK, "fixed_episodes", lambda pool, cfg, split, n: [])
    cfg = {**H.BENCHMARK.config(Cell("ProtoNet", "MAML"), "paper")}
    inner = {(0.003, 5): 90.0, (0.1, 5): float("nan"), (0.4, 10): float("nan")}
    monkeypatch.setattr(H, "finetune_grid_accuracies", scripted(inner))
    head, extra = H.BENCHMARK.test_head(None, "MAML", cfg, {"val": None}, "cpu")
    chosen = extra["maml_head"]
    assert (head.lr, head.steps, chosen["on_grid_edge"]) == (0.003, 5, False)
    assert chosen["grid"]["lr=0.1 steps=5"] == "diverged" and chosen["grid"]["lr=0.003 steps=5"] == 90.0
    monkeypatch.setattr(H, "finetune_grid_accuracies", scripted({(0.001, 5): 90.0}))  # the smallest rate: more may lie below
    assert H.BENCHMARK.test_head(None, "MAML", cfg, {"val": None}, "cpu")[1]["maml_head"]["on_grid_edge"]
    monkeypatch.setattr(H, "finetune_grid_accuracies", lambda backbone, grid, *a: {point: np.array([float("nan")]) for point in grid})
    with pytest.raises(FloatingPointError, match="every choice diverged"):
        H.BENCHMARK.test_head(None, "MAML", cfg, {"val": None}, "cpu")


def test_the_maml_heads_grid_is_a_test_setting_and_leaves_the_training_key_alone(monkeypatch):
    from benchmarks.unraveling import omniglot_heads as H

    cell = Cell("Classical", "MAML", seed=1)
    before = H.BENCHMARK.training_key(cell, "paper")
    monkeypatch.setitem(H.PROTOCOL, "maml_grid", [(0.5, 3)])
    assert H.BENCHMARK.training_key(cell, "paper") == before
    monkeypatch.setitem(H.PROTOCOL, "iterations", 9_999)
    assert H.BENCHMARK.training_key(cell, "paper") != before


def test_the_long_maml_head_variant_rescores_the_same_models_with_more_steps_only():
    """The variant widens the MAML column's grid in steps, keeps every (step size, steps) point of the main grid, trains
    nothing new (same key), and exists for no other column nor in ``unraveling-omniglot``."""
    from benchmarks.unraveling import omniglot_heads as H
    from benchmarks.unraveling.omniglot import BENCHMARK as OMNIGLOT

    main, long = Cell("R2-D2", "MAML", seed=2), Cell("R2-D2", "MAML", H.LONG_MAML_HEAD, seed=2)
    assert H.BENCHMARK.training_key(long, "paper") == H.BENCHMARK.training_key(main, "paper")
    main_cfg, long_cfg = H.BENCHMARK.config(main, "paper"), H.BENCHMARK.config(long, "paper")
    assert {k for k in main_cfg if main_cfg[k] != long_cfg[k]} == {"maml_grid"}
    assert set(main_cfg["maml_grid"]) < set(long_cfg["maml_grid"])
    assert max(s for _, s in long_cfg["maml_grid"]) == 40 and {lr for lr, _ in long_cfg["maml_grid"]} == {lr for lr, _ in main_cfg["maml_grid"]}
    with pytest.raises(KeyError, match="does not apply"):
        H.BENCHMARK.check_cell(Cell("R2-D2", "SVM", H.LONG_MAML_HEAD))
    assert {c.column for c in H.BENCHMARK.cells(variants=["all"], scale="paper") if c.variant != "main"} == {"MAML"}
    assert {c.variant for c in OMNIGLOT.cells(variants=["all"], scale="paper")} == {"main", "task-batchnorm", "novel-classes"}
    # a re-scoring cell is projected by its test, which the longer grid makes longer: the training is the main cell's
    (main_train, main_test), (long_train, long_test) = (H.BENCHMARK.estimated_train_test(c, "paper") for c in (main, long))
    assert long_train == main_train and long_test > 2 * main_test > 0


def test_a_lower_separation_metric_holds_the_claim(isolated_results):
    """Claims read each column's direction: ProtoNet's lower R_FC than classical training's supports the claim."""
    from benchmarks.harness.runner import claim_checks
    from benchmarks.unraveling.omniglot import BENCHMARK as OMNIGLOT

    g = np.random.default_rng(0)
    for seed in range(3):
        base = g.normal(2.0, 0.1, size=20)
        for row, shift in (("Classical", 0.0), ("ProtoNet", -0.5)):
            cell = Cell(row, "R_FC", seed=seed)
            record = R.make_record(benchmark=OMNIGLOT.id, row=row, column="R_FC", variant="main", scale="quick", metric=OMNIGLOT.metric,
                                   scores=base + shift + g.normal(0, 0.01, size=20), config=OMNIGLOT.config(cell, "quick"), deviations=[],
                                   provenance=R.provenance(), seed=seed)
            R.write_record(record, cell.slug)
    claims = [c for c in claim_checks(OMNIGLOT) if c["claim"].startswith("ProtoNet") and c["column"] == "R_FC"]
    assert len(claims) == 1 and claims[0]["seeds"] == 3 and claims[0]["holds"].startswith("yes"), claims


def test_the_code_variant_lays_batches_out_as_the_released_script_reads_them(tmp_path):
    """``[first of A; second of A; first of B; second of B]`` per group (``methods.feature_clustering._groups``); the paper's
    form keeps each class's two images together."""
    from benchmarks.families.unraveling_images import image_pools

    t3 = BENCHMARKS["unraveling-table3"]
    code = t3.config(Cell("Classical w/ R_HV (MetaOptNet)", "CIFAR-FS 1-shot", "code-regularisers"), "smoke")
    pool = image_pools(code, tmp_path)["train"]
    labels = t3.train_batch(pool, code, 0).y.numpy()
    q = len(labels) // 4
    assert len(labels) % 4 == 0 and (labels[:q] == labels[q:2 * q]).all() and (labels[2 * q:3 * q] == labels[3 * q:]).all()
    assert (labels[:q] != labels[2 * q:3 * q]).all()  # each group pairs two distinct classes
    assert len(labels) == code["classical_batch"]
    paper = t3.config(Cell("Classical w/ R_HV (MetaOptNet)", "CIFAR-FS 1-shot"), "smoke")
    labels = t3.train_batch(pool, paper, 0).y.numpy()
    assert (labels[0::2] == labels[1::2]).all() and len(set(labels)) == len(pool)  # every class, in pairs
    # A.2's batch size is kept when the classes are fewer than half of it: every class, batch / classes images each
    # (mini-ImageNet: 256 = 64 classes x 4; the fixture's 10 classes x 24 here)
    big = {**paper, "classical_batch": 256}
    labels = t3.train_batch(pool, big, 0).y.numpy()
    assert len(labels) == 240 and set(np.bincount(labels)) == {24}
    assert t3.build_model(code, len(pool)).regularizer == "code-hv" and t3.build_model(paper, len(pool)).regularizer == "hv"


def test_compare_prints_the_published_numbers_as_printed_with_their_kind():
    from benchmarks.harness.runner import comparison

    ids = ("unraveling-table5", "unraveling-table7", "unraveling-table2", "unraveling-table6")
    rows = {(r["row"], r["column"]): R.published_text(r) for i in ids for r in comparison(BENCHMARKS[i], include_variants=False)}
    assert rows[("Classical", "1-shot")] == "28.72 ± 0.16 (SE; ± 0.314 at 95%)"
    assert rows[("FOMAML", "5-shot")] == "63.15 ± 0.91 (95%, cited)"
    assert rows[("R2-D2-M", "RR")] == "72.09 ± 0.25 (SE; ± 0.49 at 95%)"  # bold in the paper, its numbers as printed
    assert rows[("MetaOptNet-C", "CIFAR-FS R_FC")] == "1.84 (rounding ± 0.005)"
    assert rows[("Classical (MetaOptNet)", "mini-ImageNet epoch")] == "1.4 m / 7.0 h = 84 (rounding ± 3)"


class _NoisePool:
    """Classes whose 800-d "images" are i.i.d. noise: no class structure for LDA to find."""

    def __init__(self, classes=6, per_class=300):
        self.counts = np.full(classes, per_class)
        self._rng = np.random.default_rng(0)

    def images(self, classes, items):
        return self._rng.integers(0, 256, size=(len(classes), 1, 1, 8, 100), dtype=np.uint8)

    def __len__(self):
        return len(self.counts)


def test_lda_separation_scores_held_out_images_so_noise_looks_like_noise():
    """Fitted and scored on the same 300 points, LDA separates 800-d noise (in-sample R_FC ~1.7, measured); held out, the
    projection of noise has no class structure: R_FC of the order of C (n - 1) / (C - 1) = 148.5 for 3 classes x 100 (its
    mean is larger, ~2x: the 2-D between-class sum is a chi-square of 4 degrees of freedom in the denominator)."""
    from benchmarks.families.unraveling_images import lda_separation

    cfg = {"lda_draws": 5, "lda_classes": 3, "lda_samples": 100, "test_seed": 0}
    scores, extra = lda_separation(torch.nn.Flatten(), _NoisePool(), cfg, "cpu")
    assert scores.min() > 10  # heavy-tailed (a ratio of 2-D sums), but far from separated classes (< 1 in the smoke runs)
    assert len(extra["lda_points"]["x"]) == 300
    # what held-out scoring avoids: the same noise, LDA fitted and scored on the same 300 points, looks separated
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    g = np.random.default_rng(1)
    noise, labels = g.integers(0, 256, size=(300, 800)).astype(float), np.repeat(np.arange(3), 100)
    in_sample = LinearDiscriminantAnalysis(n_components=2).fit_transform(noise, labels)
    assert float(feature_clustering(torch.from_numpy(in_sample), torch.from_numpy(labels))) < 5


def test_the_printed_separation_values_are_out_of_the_papers_formulas_reach():
    """The paper's R_HV is at most 1 (triangle inequality), yet Tables 2 and 4 print values up to 1.94; the released
    script's arithmetic (the code-metrics variant) ranges to 2 (and to 4 for its within / between ratio) on features with
    no class structure, which ``uninformative_metric(..., form="code")`` gives, held to simulation here."""
    from methods.feature_clustering import code_feature_clustering, code_hyperplane_variation

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(16).repeat_interleave(2)
    hv = [float(hyperplane_variation_of_batch(torch.randn(32, 64, generator=g, dtype=torch.float64) * s, labels))
          for s in (0.1, 1.0, 10.0) for _ in range(20)]
    assert max(hv) <= 1.0
    printed = [c.mean for i in ("unraveling-table2", "unraveling-table4") for (_, col), c in published(i).items() if col.endswith("R_HV")]
    assert max(printed) > 1.5 and sum(v > 1 for v in printed) >= 8
    groups = [torch.randn(4 * 32, 256, generator=g, dtype=torch.float64) for _ in range(20)]
    assert np.mean([float(code_hyperplane_variation(x)) for x in groups]) == pytest.approx(uninformative_metric("R_FC", 64, 2, "code"), rel=0.05)
    assert np.mean([float(code_feature_clustering(x)) for x in groups]) == pytest.approx(uninformative_metric("R_HV", 64, 2, "code"), rel=0.05)


def test_the_gbml_models_keys_ignore_the_heads_benchmarks_own_settings(monkeypatch):
    from benchmarks.unraveling import omniglot_heads as H
    from benchmarks.unraveling.omniglot import BENCHMARK as OMNIGLOT

    rows = ("MAML", "First-order MAML", "Reptile", "W-Clustering")
    before = {row: OMNIGLOT.model_keys(Cell(row, OMNIGLOT_COLUMN[row], seed=1), "paper") for row in rows}
    for setting, value in (("svm_C", 0.2), ("classical_lr", 0.05), ("iterations", 9_999), ("meta_lr", 0.2)):
        monkeypatch.setitem(H.PROTOCOL, setting, value)
    assert {row: OMNIGLOT.model_keys(Cell(row, OMNIGLOT_COLUMN[row], seed=1), "paper") for row in rows} == before
    monkeypatch.setitem(H.PROTOCOL, "filters", 32)  # the network's width is the model's
    assert OMNIGLOT.model_keys(Cell("MAML", "R_FC", seed=1), "paper") != before["MAML"]


OMNIGLOT_COLUMN = {"MAML": "R_FC", "First-order MAML": "R_FC", "Reptile": "1-shot", "W-Clustering": "1-shot"}


def test_the_task_batchnorm_variant_measures_the_strided_rows_again_in_mamls_passes():
    """Claim 1's strided nets normalise every forward pass by its own statistics: the variant measures the same trained
    models from the passes MAML's tasks make (random 5-class tasks, a task's first images one pass and its second images
    another: support, then query), the metric still over the whole 64-class batch."""
    from benchmarks.families.unraveling_images import separation_metrics
    from benchmarks.unraveling import omniglot as O

    main, variant = Cell("MAML", "R_HV", seed=1), Cell("MAML", "R_HV", O.TASK_BATCHNORM, seed=1)
    assert O.BENCHMARK.training_key(variant, "paper") == O.BENCHMARK.training_key(main, "paper")  # nothing trains again
    assert O.BENCHMARK.config(variant, "paper")["metric_task_classes"] == 5
    extra = {(c.row, c.column) for c in O.BENCHMARK.cells(variants=["all"], scale="paper") if c.variant == O.TASK_BATCHNORM}
    assert extra == {(r, c) for r in O.STRIDED_ROWS for c in ("R_FC", "R_HV")}
    with pytest.raises(KeyError, match="does not apply"):
        O.BENCHMARK.check_cell(Cell("ProtoNet", "R_FC", O.TASK_BATCHNORM))

    class Pool:  # 12 classes of 4 drawings; pixel values name the class and the drawing
        counts = np.full(12, 4)

        def __len__(self):
            return 12

        def images(self, classes, items):
            return (np.asarray(classes)[:, None, None, None] * 20 + np.asarray(items)[:, :, None, None] * np.ones((1, 1, 3, 3))).astype(np.uint8)

    class BatchCentred(torch.nn.Module):  # features depend on the pass, as batch-statistics BatchNorm makes them
        def __init__(self):
            super().__init__()
            self.passes = []

        def forward(self, x):
            self.passes.append(x)
            f = x.flatten(1) + torch.linspace(0, 1, 9) * x.flatten(1) ** 2
            return f - f.mean(0)

    cfg = {"metric_batches": 2, "metric_classes": 7, "test_seed": 3, "measure": "R_FC"}
    tasks, whole = BatchCentred(), BatchCentred()
    got = separation_metrics(tasks, Pool(), {**cfg, "metric_task_classes": 3}, "cpu")
    one_pass = separation_metrics(whole, Pool(), cfg, "cpu")
    # 7 classes in tasks of 3: 3 + 3 + 1, each task two passes of one image per class
    assert [len(x) for x in tasks.passes] == [3, 3, 3, 3, 1, 1] * 2 and [len(x) for x in whole.passes] == [14, 14]
    for b in range(2):
        passes = tasks.passes[6 * b:6 * b + 6]
        pixel = [torch.round(p.flatten(1)[:, 0] * 255).long() for p in passes]
        classes, drawings = [px // 20 for px in pixel], [px % 20 for px in pixel]
        batch = torch.round(whole.passes[b].flatten(1)[:, 0] * 255).long()
        assert sorted(torch.cat(pixel).tolist()) == sorted(batch.tolist())  # the batch's images, each passed once
        for t in range(0, 6, 2):  # a task's support and query: the same classes, one image each, its two drawings apart
            assert classes[t].tolist() == classes[t + 1].tolist() and len(set(classes[t].tolist())) == len(classes[t])
            assert all(a != c for a, c in zip(drawings[t].tolist(), drawings[t + 1].tolist()))
        # oracle: each pass centred on its own, then R_FC over the batch's 7 classes (the order of rows does not matter)
        feats = []
        for p in passes:
            f = p.flatten(1) + torch.linspace(0, 1, 9) * p.flatten(1) ** 2
            feats.append(f - f.mean(0))
        assert got[b] == pytest.approx(float(feature_clustering(torch.cat(feats).double(), torch.cat(classes))), rel=1e-12)
    assert not np.allclose(got, one_pass)  # per-pass statistics change the number
    assert any(sorted(c.tolist()) != c.tolist() for c in classes)  # tasks are drawn at random, not in class order


def test_the_novel_classes_variant_measures_every_claim_1_row_on_the_test_classes():
    """The same trained models, R_FC / R_HV over batches of test classes: the metric batch comes from the test pool,
    drawn exactly as the main protocol draws it from the training pool."""
    from benchmarks.families.unraveling_images import separation_metrics
    from benchmarks.unraveling import omniglot as O

    extra = {(c.row, c.column) for c in O.BENCHMARK.cells(variants=["all"], scale="paper") if c.variant == O.NOVEL_CLASSES}
    assert extra == {(r, c) for r, (_, columns) in O.ROWS.items() if "R_FC" in columns for c in ("R_FC", "R_HV")}
    main, variant = Cell("ProtoNet", "R_FC", seed=2), Cell("ProtoNet", "R_FC", O.NOVEL_CLASSES, seed=2)
    assert O.BENCHMARK.training_key(variant, "paper") == O.BENCHMARK.training_key(main, "paper")  # nothing trains again
    main_cfg, cfg = O.BENCHMARK.config(main, "paper"), O.BENCHMARK.config(variant, "paper")
    assert {k for k in {*main_cfg, *cfg} if main_cfg.get(k) != cfg.get(k)} == {"variant", "metric_split"}
    with pytest.raises(KeyError, match="does not apply"):
        O.BENCHMARK.check_cell(Cell("Reptile", "1-shot", O.NOVEL_CLASSES))

    class Pool:  # classes of 4 drawings, the pixel values naming the pool, the class and the drawing
        counts = np.full(9, 4)

        def __init__(self, offset):
            self.offset = offset

        def __len__(self):
            return 9

        def images(self, classes, items):
            return (self.offset + np.asarray(classes)[:, None, None, None] * 8
                    + np.asarray(items)[:, :, None, None] * np.ones((1, 1, 2, 2))).astype(np.uint8)

    seen = []

    def extractor(x):
        seen.append(torch.round(x.flatten(1)[:, 0] * 255).long())
        return x.flatten(1) + torch.linspace(0, 1, 4) * x.flatten(1) ** 2

    net = torch.nn.Module()
    net.forward = extractor
    pools = {"train": Pool(0), "test": Pool(100)}
    small = {"metric_batches": 2, "metric_classes": 5, "test_seed": 3}
    got = O.BENCHMARK.measure(net, {**cfg, **small, "measure": "separation", "column": "R_FC"}, pools, "cpu")
    assert all(int(batch.min()) >= 100 for batch in seen)  # every image from the test pool
    oracle = separation_metrics(net, pools["test"], {**small, "measure": "R_FC"}, "cpu")
    assert got.tolist() == oracle.tolist()
    on_train = O.BENCHMARK.measure(net, {**main_cfg, **small, "measure": "separation", "column": "R_FC"}, pools, "cpu")
    assert not np.allclose(on_train, got)
