"""ALFA's image tables (benchmarks/alfa/images.py, image_tables.py): the protocol against the authors' configuration
(baiksung/ALFA ``experiment_config/alfa+maml.json``, facts read in session 13), parameter counts by hand, and the
trainings the tables share."""

import numpy as np
import pytest
import torch

from benchmarks import BENCHMARKS
from benchmarks.alfa.images import norm_parameters, parse_setting, split_row
from benchmarks.harness.base import Cell
from methods.alfa import ALFA
from methods.l2f import L2F

TABLE1, TABLE2, TABLE4, TABLE5, TABLE7 = (BENCHMARKS[f"alfa-table{t}"] for t in (1, 2, 4, 5, 7))


def test_paper_scale_is_the_authors_configuration():
    five = TABLE1.config(Cell("ALFA + MAML (4-CONV)", "miniImageNet 5-shot"), "paper")
    expected = {"filters": 48, "image_size": 84, "inner_steps": 5, "inner_lr": 0.01, "weight_decay": 5e-4, "meta_lr": 1e-3,
                "meta_batch": 2, "epochs": 100, "epoch": 500, "iterations": 50_000, "queries": 15, "test_queries": 15,
                "val_tasks": 600, "test_tasks": 600, "alfa_form": "code", "generator_layers": 2, "ways": 5, "shots": 5}
    assert {k: five[k] for k in expected} == expected
    one = TABLE1.config(Cell("ALFA + MAML (ResNet12)", "tieredImageNet 1-shot"), "paper")
    assert (one["meta_batch"], one["resnet_widths"], one["train_data"], one["test_data"]) == (4, [64, 128, 256, 512], "tiered_imagenet",
                                                                                               "tiered_imagenet")
    maml = TABLE1.config(Cell("MAML (4-CONV)", "miniImageNet 5-shot"), "paper")
    assert "alfa_form" not in maml and "generator_input" not in maml  # no generator, no ALFA switches in its key


def test_cells_parse_into_settings():
    assert parse_setting("miniImageNet 20-way 1-shot") == ("mini_imagenet", 20, 1)
    assert parse_setting("tieredImageNet 5-shot") == ("tiered_imagenet", 5, 5)
    assert split_row("ALFA + MAML + L2F (ResNet12)") == ("ALFA + MAML + L2F", "ResNet12")
    assert TABLE4.config(Cell("ALFA+MAML", "miniImageNet 20-way 5-shot"), "paper")["ways"] == 20
    assert TABLE7.config(Cell("ALFA+MAML", "step 3"), "paper")["inner_steps"] == 3
    assert TABLE5.config(Cell("ALFA+MAML, gradient only", "miniImageNet 5-shot"), "paper")["generator_input"] == "gradients"
    cub = TABLE2.config(Cell("ALFA + MAML (4-CONV)", "miniImageNet -> CUB 5-shot"), "paper")
    assert (cub["train_data"], cub["test_data"], cub["shots"], cub["cub_crop_from"]) == ("mini_imagenet", "cub", 5, 96)


def test_one_training_serves_every_table_that_runs_it():
    """Table 5's full row, Table 7's step 5 and Tables 1 and 2's ALFA + MAML (4-CONV) at 5 shots are one model; the
    ablations and other settings are not."""
    def folders(benchmark, row, column, seed=0):
        return benchmark.run_directories(Cell(row, column, seed=seed), "paper")

    shared = folders(TABLE1, "ALFA + MAML (4-CONV)", "miniImageNet 5-shot")
    assert folders(TABLE5, "ALFA+MAML, weight + gradient (ALFA)", "miniImageNet 5-shot") == shared
    assert folders(TABLE7, "ALFA+MAML", "step 5") == shared
    assert folders(TABLE2, "ALFA + MAML (4-CONV)", "miniImageNet -> CUB 5-shot") == shared
    assert folders(TABLE5, "MAML", "miniImageNet 5-shot") == folders(TABLE1, "MAML (4-CONV)", "miniImageNet 5-shot")
    others = [folders(TABLE5, "ALFA+MAML, weight only", "miniImageNet 5-shot"), folders(TABLE7, "ALFA+MAML", "step 4"),
              folders(TABLE1, "ALFA + MAML (4-CONV)", "miniImageNet 5-shot", seed=1),
              folders(TABLE1, "ALFA + MAML (4-CONV)", "tieredImageNet 5-shot")]
    assert all(o != shared for o in others) and len({o[0] for o in others}) == len(others)
    assert TABLE1.run_directories(Cell("Random Init (4-CONV)", "miniImageNet 5-shot"), "paper") == []  # nothing trained


def test_4conv_parameters_counted_by_hand_and_alfa_adapts_its_ten_layers():
    """At 84 px, 5-way: conv 3->48 (3*9*48 + 48), three 48->48 (48*9*48 + 48), four BatchNorms (2*48), a linear head
    on the 5x5x48 block (1200*5 + 5). ALFA's code adapts 10 tensors (BatchNorm excluded), so its generator is
    Linear(20, 20) -> ReLU -> Linear(20, 20) and its per-step per-layer post-multipliers are (5, 10)."""
    cfg = TABLE1.config(Cell("ALFA + MAML (4-CONV)", "miniImageNet 5-shot"), "paper")
    model = TABLE1.build_model(cfg)
    assert isinstance(model, ALFA) and model.form == "code" and model.attenuator is None
    backbone = sum(p.numel() for p in model.backbone.parameters())
    assert backbone == (3 * 9 * 48 + 48) + 3 * (48 * 9 * 48 + 48) + 4 * 2 * 48 + (5 * 5 * 48 * 5 + 5)
    assert len(model.names) == 10 and not any("norm" in n for n in model.names)
    assert [tuple(m.weight.shape) for m in model.generator if isinstance(m, torch.nn.Linear)] == [(20, 20), (20, 20)]
    assert model.alpha0.shape == model.beta0.shape == (5, 10)
    assert set(norm_parameters(model.backbone)) == {n for n, _ in model.backbone.named_parameters() if n.startswith("norms.")}


@pytest.mark.parametrize("row, kind, trained", [
    ("ALFA + Random Init (4-CONV)", ALFA, {"alpha0", "beta0", "generator", "beta0_per_param"}),
    ("MAML + L2F (ResNet12)", L2F, {"backbone", "attenuator"}),
    ("ALFA + MAML + L2F (4-CONV)", ALFA, {"backbone", "alpha0", "beta0", "generator", "attenuator"}),
])
def test_each_row_meta_learns_what_the_authors_code_trains(row, kind, trained):
    """ALFA + Random Init keeps the seeded network fixed (the code keeps the classifier out of Adam); L2F's own code takes
    the attenuator's gradient input without a graph, ALFA's code (ALFA + MAML + L2F) with one."""
    model = TABLE1.build_model(TABLE1.config(Cell(row, "miniImageNet 1-shot"), "smoke"))
    assert isinstance(model, kind)
    assert {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad} == trained
    graph = model.train_loop.start_graph if isinstance(model, L2F) else model.inner_loop(True).start_graph
    assert graph == (kind is ALFA)


def test_random_init_meta_learns_nothing():
    cell = Cell("Random Init (ResNet12)", "miniImageNet 1-shot")
    cfg = TABLE1.config(cell, "paper")
    assert cfg["iterations"] == 0 and TABLE1.protocol_model(cell, "paper") is None
    assert TABLE1.estimated_train_test(cell, "paper")[0] == 0.0


def test_images_are_normalised_per_channel_as_alfas_data_loader_does():
    """Oracle: numpy, channel by channel, ImageNet's mean and standard deviation (ALFA's data.py); Omniglot is left as is."""
    from benchmarks.alfa.images import normalised
    from metarepro.episodes import Episode

    cfg = TABLE1.config(Cell("MAML (4-CONV)", "miniImageNet 1-shot"), "paper")
    x = torch.rand(2, 5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    out = normalised(Episode(x, torch.zeros(2, 5), x + 1, torch.zeros(2, 5)), cfg["normalise"])
    mean, std = np.array(cfg["normalise"][0]), np.array(cfg["normalise"][1])
    # float32 against a float64 oracle: an absolute floor for pixels near the mean (a relative bound alone failed at
    # 6e-8 off on a value of 0.01); a wrong channel's statistics are off by more than 1e-3
    for c in range(3):
        np.testing.assert_allclose(out.support_x[:, :, c].numpy(), (x[:, :, c].numpy() - mean[c]) / std[c], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out.query_x[:, :, c].numpy(), (x[:, :, c].numpy() + 1 - mean[c]) / std[c], rtol=1e-6, atol=1e-6)
    assert BENCHMARKS["alfa-omniglot"].config(Cell("MAML", "Omniglot 5-way 1-shot"), "paper")["normalise"] is None
    text = " ".join(BENCHMARKS["alfa-omniglot"].protocol_deviations(Cell("MAML", "Omniglot 5-way 1-shot"), "paper"))
    assert "8 of MAML++'s 100" in text


def test_table6_readings_share_their_models_and_vary_one_hyperparameter():
    """The check marks saying which printed row is per step were lost: the two readings assign the same four models
    (per initialisation and hyperparameter) to the printed rows the opposite way; the other hyperparameter is off."""
    table6 = BENCHMARKS["alfa-table6"]

    def cfg(row, column, variant="main"):
        return table6.config(Cell(row, column, variant), "paper")

    first, second = "MAML, alpha, first row", "MAML, alpha, second row"
    assert (cfg("fixed", first)["alpha"], cfg("fixed", first)["beta"]) == ("fixed-step", "off")
    assert cfg("adaptive", second)["alpha"] == "adaptive-layer"
    assert cfg("adaptive", second, "swapped")["alpha"] == "adaptive-step"
    assert table6.run_directories(Cell("fixed", first), "paper") == table6.run_directories(Cell("fixed", second, "swapped"), "paper")
    assert table6.run_directories(Cell("fixed", first), "paper") != table6.run_directories(Cell("fixed", second), "paper")
    random_beta = cfg("adaptive", "Random, beta, first row")
    assert (random_beta["method"], random_beta["alpha"], random_beta["beta"]) == ("ALFA + Random Init", "off", "adaptive-step")
    model = table6.build_model({**random_beta, "resnet_widths": None})
    assert model.generator is not None and model.widths == (0, 1)  # one generated weight decay per step, shared by the layers


@pytest.mark.parametrize("engine", ["func", "loop"])
def test_fig3_traces_the_hyperparameters_a_hand_written_alfa_loop_applies(engine):
    """Oracle: ALFA's code-form update written out per task in float64 (layer-wise means of weights and gradients ->
    generator -> alpha = alpha0[j, l] alpha1_l, beta = beta0[j, l] beta1_l -> theta <- (1 - beta) theta - alpha g)."""
    from benchmarks.alfa.fig3 import generated_hyperparameters, quantile_table
    from metarepro.episodes import Episode
    from metarepro.inner import mse_per_task
    from methods.backbones import MLP

    torch.manual_seed(0)
    model = ALFA(MLP([1, 6, 1], init="torch"), mse_per_task, 0.05, 2, form="code", generator_layers=2, engine=engine).double()
    with torch.no_grad():
        model.alpha0.uniform_(0.01, 0.1)
        model.beta0.uniform_(1e-3, 1e-2)
    x, y = torch.randn(3, 4, 1, dtype=torch.float64), torch.randn(3, 4, 1, dtype=torch.float64)
    alpha, beta = generated_hyperparameters(model, Episode(x, y, x, y))
    assert alpha.shape == beta.shape == (2, len(model.names), 3)
    for t in range(3):
        params = {n: p.detach().clone().requires_grad_() for n, p in model.backbone.named_parameters()}
        for step in range(2):
            pred = torch.func.functional_call(model.backbone, params, (x[t],))
            grads = dict(zip(params, torch.autograd.grad(((pred - y[t]) ** 2).mean(), list(params.values()))))
            state = torch.stack([params[n].mean() for n in model.names] + [grads[n].mean() for n in model.names])
            out = model.generator(state).detach()
            n_layers = len(model.names)
            a = [float(model.alpha0[step, i].detach() * out[i]) for i in range(n_layers)]
            b = [float(model.beta0[step, i].detach() * out[n_layers + i]) for i in range(n_layers)]
            np.testing.assert_allclose(alpha[step, :, t], a, rtol=1e-10)
            np.testing.assert_allclose(beta[step, :, t], b, rtol=1e-10)
            params = {n: ((1 - b[i]) * params[n] - a[i] * grads[n]).detach().requires_grad_() for i, n in enumerate(model.names)}
    table = quantile_table(alpha)
    assert table[1][0][2] == pytest.approx(float(np.median(alpha[0, 1])))  # [layer][step] = quantiles over tasks


def test_fig3_draws_alfa_omniglots_models():
    cell = Cell("ALFA + MAML", "Omniglot 5-way 1-shot", seed=2)
    fig3, omniglot = BENCHMARKS["alfa-fig3"], BENCHMARKS["alfa-omniglot"]
    assert fig3.run_directories(cell, "paper") == omniglot.run_directories(cell, "paper")
    cfg = omniglot.config(cell, "paper")
    expected = {"image_size": 28, "filters": 64, "meta_batch": 8, "queries": 1, "test_queries": 15, "inner_lr": 0.1, "iterations": 4000}
    assert {k: cfg[k] for k in expected} == expected
    assert omniglot.build_model(cfg).backbone.in_channels == 1


def test_the_ensemble_averages_its_members_logits_after_each_adapts():
    """ALFA's test-time ensemble of its best epochs: each member adapts to the task itself, the query logits are averaged."""
    from benchmarks.alfa.images import LogitEnsemble
    from metarepro.episodes import Episode

    cfg = TABLE1.config(Cell("ALFA + MAML (4-CONV)", "miniImageNet 1-shot"), "smoke")
    members = [TABLE1.build_model({**cfg, "train_seed": seed}) for seed in (0, 1, 2)]
    x = torch.rand(2, 5, 3, 16, 16)
    batch = Episode(x, torch.arange(5).repeat(2, 1), x.flip(1), torch.arange(5).flip(0).repeat(2, 1))
    expected = sum(m.predict(batch) for m in members) / 3
    assert torch.allclose(LogitEnsemble(members).predict(batch), expected, atol=1e-6)
    assert cfg["test_ensemble"] == 2 and TABLE1.config(Cell("ALFA + MAML (4-CONV)", "miniImageNet 1-shot"), "paper")["test_ensemble"] == 5
    assert TABLE1.scored_checkpoint(Cell("ALFA + MAML (4-CONV)", "miniImageNet 1-shot"), "paper") is None  # several models


def test_a_diverged_training_is_tested_on_the_epochs_before_its_nan_as_alfas_code_would(isolated_results, monkeypatch):
    """ALFA's code trains on through a NaN (its NaN weights validate at chance), so its test ensemble is the best epochs
    before it: a run whose loss goes non-finite after two validated epochs (smoke: epochs of 10 iterations, an ensemble of
    2) is scored as a clean run of those two epochs is, and says where it diverged; with fewer epochs, no record."""
    from metarepro.episodes import Episode
    from metarepro.trainer import NonFiniteLossError

    bench = BENCHMARKS["alfa-omniglot"]
    cell = Cell("ALFA + MAML", "Omniglot 5-way 1-shot")
    cfg = bench.config(cell, "smoke")
    assert (cfg["epoch"], cfg["test_ensemble"], cfg["iterations"]) == (10, 2, 40)
    clean_batch = type(bench).train_batch

    def poisoned_from(first_bad: int):
        def train_batch(self, pool, cfg, index):
            batch = clean_batch(self, pool, cfg, index)
            return Episode(batch.support_x * float("nan"), batch.support_y, batch.query_x, batch.query_y) if index >= first_bad else batch
        return train_batch

    from benchmarks.harness.paths import runs_dir

    monkeypatch.setattr(type(bench), "train_batch", poisoned_from(25))
    diverged = bench.run_cell(cell, "smoke", runs_dir() / bench.id / "smoke", progress=False)
    assert diverged.extra["diverged_at_iteration"] == 25 and diverged.deviations[0].startswith("training diverged")
    assert [i for i, *_ in diverged.extra["selection"]["val_curve"]] == [10, 20]
    # the oracle: a clean training of the same two epochs, in a fresh runs folder, tested the same way
    monkeypatch.setattr(type(bench), "train_batch", clean_batch)
    two_epochs = {**cfg, "epochs": 2, "iterations": 20}
    monkeypatch.setattr(type(bench), "config", lambda self, c, scale: dict(two_epochs))
    clean = bench.run_cell(cell, "smoke", runs_dir() / "elsewhere" / "smoke", progress=False)
    assert clean.deviations == [] and "diverged_at_iteration" not in clean.extra
    np.testing.assert_array_equal(diverged.scores, clean.scores)
    # diverging before the ensemble's two epochs were validated leaves no record
    monkeypatch.setattr(type(bench), "config", lambda self, c, scale: {**cfg, "train_seed": 1})
    monkeypatch.setattr(type(bench), "train_batch", poisoned_from(15))
    with pytest.raises(NonFiniteLossError):
        bench.run_cell(cell, "smoke", runs_dir() / bench.id / "smoke", progress=False)


def test_alfa_omniglots_largest_scale_is_shown_as_its_claim_budget_not_the_papers(isolated_results):
    """Records keep the harness's scale ("paper"); the records table and the claim table call it "claim budget"."""
    from benchmarks.harness.cli import records_table
    from benchmarks.harness.runner import claim_checks
    from metarepro import results as R

    bench = BENCHMARKS["alfa-omniglot"]
    rng = np.random.default_rng(0)
    for row in ("MAML", "ALFA + MAML"):
        for seed in range(3):
            cell = Cell(row, "Omniglot 5-way 1-shot", seed=seed)
            scores = rng.uniform(90, 100, size=20) + (2.0 if row == "ALFA + MAML" else 0.0)
            R.write_record(R.make_record(benchmark=bench.id, row=row, column=cell.column, variant="main", scale="paper",
                                         metric="accuracy %", scores=scores, config=bench.config(cell, "paper"), deviations=[],
                                         provenance={}, seed=seed), cell.slug)
    assert {r["scale"] for r in R.load_records(bench.id)} == {"paper"}
    table = records_table(bench)
    assert "claim budget" in table and "| paper " not in table
    checks = [c for c in claim_checks(bench) if c["claim"].startswith("ALFA improves MAML")]
    assert [(c["scale"], c["seeds"]) for c in checks] == [("claim budget", 3)]
    assert BENCHMARKS["alfa-table1"].scale_name("paper") == "paper"
    from benchmarks.harness.cli import render_readme

    section = render_readme().read_text().split("## `alfa-omniglot`")[1].split("\n## ")[0]
    assert "Claim budget records: 6 from 6 trained models" in section and "Paper-scale" not in section
