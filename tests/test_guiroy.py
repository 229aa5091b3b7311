"""Guiroy et al.'s Fig. 8 machinery against independent oracles: per-task gradients against one autograd call per task on
a plain module, correlations and their across-run intervals against scipy, the hole-cut sine family against its bounds."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from benchmarks import BENCHMARKS
from benchmarks.harness.base import Cell
from benchmarks.harness.runner import correlation_checks, level_checks
from metarepro import results as R
from metarepro.episodes import uniform_outside
from metarepro.evaluate import correlation_across_runs
from metarepro.inner import batched_forward, mse_per_task
from metarepro.landscape import gradient_coherence, pearson, support_gradients


def test_support_gradients_are_each_tasks_own_gradient():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x, y = torch.randn(4, 6, 1, dtype=torch.float64), torch.randn(4, 6, 1, dtype=torch.float64)
    got = support_gradients(batched_forward(net), mse_per_task, dict(net.named_parameters()), x, y)
    want = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(((net(x[t]) - y[t]) ** 2).mean(), list(net.parameters()))])
                        for t in range(4)])
    assert got.shape == (4, sum(p.numel() for p in net.parameters()))
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)
    pairs = [want[i] @ want[j] for i in range(4) for j in range(4) if i != j]
    assert math.isclose(gradient_coherence(got).item(), float(np.mean(pairs)), rel_tol=1e-12)
    assert all(p.grad is None for p in net.parameters())  # the module's own gradients are untouched


def test_uniform_outside_a_hole_covers_the_rest_evenly():
    rng = np.random.default_rng(0)
    draws = uniform_outside(rng, (0.0, 10.0), (2.0, 6.0), (200_000,))
    assert draws.min() >= 0.0 and draws.max() < 10.0 and not np.any((draws >= 2.0) & (draws < 6.0))
    left = np.mean(draws < 2.0)  # 2 of the 6 units left: 1/3, binomial sd ~0.001
    assert abs(left - 1 / 3) < 0.005
    assert np.array_equal(uniform_outside(np.random.default_rng(1), (0.1, 5.0), None, (7, 1)),
                          np.random.default_rng(1).uniform(0.1, 5.0, size=(7, 1)))
    with pytest.raises(ValueError, match="inside"):
        uniform_outside(rng, (0.0, 1.0), (0.5, 2.0), (3,))


def test_pearson_and_the_fisher_interval_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = 0.5 * x + rng.normal(size=40)
    assert math.isclose(pearson(x.tolist(), y.tolist()), stats.pearsonr(x, y)[0], rel_tol=1e-12)
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    # two points whose float R rounds to -1.0000000000000002: clamped to -1, where Fisher's z takes it
    assert pearson([0.28183784439970383, 0.7558042041572239], [0.6183689966753316, 0.25050634136244054]) == -1.0
    rs = [0.8, 0.55, 0.7, 0.9]
    z = np.arctanh(rs)
    half = stats.t.ppf(0.975, 3) * stats.sem(z)
    mean, low, high = correlation_across_runs(rs)
    assert np.allclose([mean, low, high], np.tanh([z.mean(), z.mean() - half, z.mean() + half]), rtol=1e-9)
    assert correlation_across_runs([0.3]) == (0.3, None, None)
    with pytest.raises(ValueError):
        correlation_across_runs([1.5, 0.2])


def _write(benchmark, column, seed, curve):
    cell = Cell("MAML", column, seed=seed)
    R.write_record(R.make_record(benchmark=benchmark.id, row="MAML", column=column, variant="main", scale="quick", metric="MSE",
                                 scores=np.array([curve[-1]["target_mse_meta_test"]] * 3), config=benchmark.config(cell, "quick"),
                                 deviations=[], provenance={}, seed=seed, extra={"probe_curve": curve}), cell.slug)


def _probed(benchmark, cfg: dict, curve: list[dict]) -> dict:
    """A record's ``extra`` for ``curve`` as the benchmark's probes take it now (each point carrying their settings)."""
    settings = benchmark.probe_settings(cfg)
    return {"probe_curve": [{**p, "settings": settings} for p in curve] if settings is not None else curve}


def test_correlation_checks_take_one_r_per_run_and_the_interval_over_runs(isolated_results):
    fig8, rng = BENCHMARKS["guiroy-fig8"], np.random.default_rng(0)
    along, across = {}, {}
    for seed in range(3):
        for k, column in enumerate(fig8.columns):
            coherence = np.linspace(0, 5, 12) + rng.normal(0, 1.0, size=12)
            mse = 3 - 0.3 * coherence + rng.normal(0, 0.5 + k, size=12)  # noisier as k grows
            curve = [{"iteration": 200 * i, "gradient_coherence": float(c), "target_mse_meta_test": float(m)}
                     for i, (c, m) in enumerate(zip(coherence, mse))]
            _write(fig8, column, seed, curve)
            along.setdefault(column, []).append(stats.pearsonr(coherence, mse)[0])
            across.setdefault(seed, []).append((coherence[-1], mse[-1]))
    from benchmarks.harness.base import CHANGES_SUFFIX

    checks = [c for c in correlation_checks(fig8) if not c["claim"].endswith(CHANGES_SUFFIX)]  # the levels (changes: below)
    assert len(checks) == len(fig8.columns) + 1 and all(c["scale"] == "quick" and c["seeds"] == 3 for c in checks)
    for check in checks:
        rs = along.get(check["column"]) or [stats.pearsonr(*np.array(across[s]).T)[0] for s in range(3)]
        z = np.arctanh(rs)
        half = stats.t.ppf(0.975, 2) * stats.sem(z)
        assert check["R per run"] == "; ".join(f"{s}: {r:+.2f}" for s, r in enumerate(rs))
        # the claim is a negative correlation: it holds when the whole interval is below 0
        want = "yes" if z.mean() + half < 0 else ("reversed" if z.mean() - half > 0 else "no difference")
        assert check["holds"] == want
    assert checks[-1]["column"] == "2-shot .. 15-shot"
    assert {c["holds"] for c in checks[:-1]} >= {"yes", "no difference"}  # the noise of the late columns is felt


def test_a_claim_on_changes_correlates_epoch_to_epoch_differences_and_sees_through_a_shared_trend(isolated_results):
    """Two measures that each follow training's trend correlate in level whatever links them; their first differences
    (the untrained point left out) do not, unless they move together epoch by epoch. Against scipy on np.diff."""
    from benchmarks.harness.base import CHANGES_SUFFIX, CorrelationClaim

    fig8, rng = BENCHMARKS["guiroy-fig8"], np.random.default_rng(1)
    level_claim, changes_claim = (c for c in fig8.correlation_claims() if c.over == "training")
    assert changes_claim.changes and changes_claim.claim == level_claim.claim + CHANGES_SUFFIX and changes_claim.skip_untrained
    along = {}
    for seed in range(3):
        for column in fig8.columns:
            trend = np.linspace(0, 5, 30)
            coherence, mse = trend + rng.normal(0, 0.3, size=30), 4 - trend + rng.normal(0, 0.3, size=30)  # independent noise
            curve = [{"iteration": 200 * i, "gradient_coherence": float(c), "target_mse_meta_test": float(m)}
                     for i, (c, m) in enumerate(zip(coherence, mse))]
            _write(fig8, column, seed, curve)
            along.setdefault(column, []).append(stats.pearsonr(np.diff(coherence[1:]), np.diff(mse[1:]))[0])
    checks = [c for c in correlation_checks(fig8) if c["claim"] == changes_claim.claim]
    assert len(checks) == len(fig8.columns)
    for check in checks:
        assert check["R per run"] == "; ".join(f"{s}: {r:+.2f}" for s, r in enumerate(along[check["column"]]))
    levels = [c for c in correlation_checks(fig8) if c["claim"] == level_claim.claim]
    assert all(c["holds"] == "yes" for c in levels)  # the shared trend alone
    assert sum(c["holds"] == "yes" for c in checks) <= 1  # the changes: independent noise
    with pytest.raises(ValueError, match="changes"):
        CorrelationClaim("bad", "MAML", "iteration", "sharpness", changes=True)


def test_level_checks_pair_each_seeds_mean_absolute_coherence_and_take_the_t_interval_over_seeds(isolated_results):
    fig6, rng = BENCHMARKS["guiroy-fig6"], np.random.default_rng(1)
    levels = {}
    for row, centre in (("MAML", 0.30), ("First-Order MAML", 0.05), ("Finetune baseline", 0.04)):
        for seed in range(3):
            curve = [{"iteration": i, "trajectory_coherence": float(c), "gradient_coherence": float(-c)}
                     for i, c in enumerate(centre + rng.normal(0, 0.05, size=8))]
            cell = Cell(row, "5-way 1-shot", seed=seed)
            R.write_record(R.make_record(benchmark=fig6.id, row=row, column=cell.column, variant="main", scale="quick",
                                         metric="accuracy %", scores=np.array([50.0, 60.0]), config=fig6.config(cell, "quick"),
                                         deviations=[], provenance={}, seed=seed, extra=_probed(fig6, fig6.config(cell, "quick"), curve)),
                           cell.slug)
            levels[(row, seed)] = np.mean([abs(p["trajectory_coherence"]) for p in curve])
    checks = [c for c in level_checks(fig6) if "trajectory" in c["claim"]]
    assert len(checks) == 2 and all(c["scale"] == "quick" and c["seeds"] == 3 for c in checks)
    for check, row in zip(checks, ("MAML", "First-Order MAML")):
        diffs = np.array([levels[("Finetune baseline", s)] - levels[(row, s)] for s in range(3)])
        half = stats.t.ppf(0.975, 2) * stats.sem(diffs)
        assert check["method - baseline across runs"] == f"{diffs.mean():+.4g} ± {half:.3g}"
        want = "yes" if diffs.mean() + half < 0 else ("reversed" if diffs.mean() - half > 0 else "no difference")
        assert check["holds"] == want
    assert [c["holds"] for c in checks] == ["yes", "no difference"]  # far below MAML's 0.30; level with first-order's 0.05


def _tiny_maml():
    from methods.backbones import MLP
    from methods.maml import MAML

    torch.manual_seed(3)
    return MAML(MLP([1, 6, 1], init="torch").double(), mse_per_task, 0.1, 2, frozen=("layers.1.bias",))


def _task_loss_at(model, flat, names, shapes, fixed, x, y):
    """Oracle forward: the module's own functional call on one task, the ``names`` weights taken from ``flat``."""
    params, offset = dict(fixed), 0
    for n, shape in zip(names, shapes):
        size = int(np.prod(shape))
        params[n] = flat[offset : offset + size].view(shape)
        offset += size
    return ((torch.func.functional_call(model.backbone, params, (x,)) - y) ** 2).mean()


def test_adapted_sharpness_is_the_largest_absolute_eigenvalue_over_the_adapted_weights():
    from benchmarks.guiroy.omniglot import adapted_sharpness

    model = _tiny_maml()
    x, y = torch.randn(3, 5, 1, dtype=torch.float64), torch.randn(3, 5, 1, dtype=torch.float64)
    adapted = {n: v.detach() for n, v in model.adapt(x, y).params.items()}
    got = adapted_sharpness(model, adapted, x, y, iterations=3000, generator=torch.Generator().manual_seed(0))
    names = [n for n in adapted if n != "layers.1.bias"]
    shapes = [adapted[n].shape[1:] for n in names]
    for t in range(3):
        fixed = {"layers.1.bias": adapted["layers.1.bias"][t]}
        flat = torch.cat([adapted[n][t].flatten() for n in names])
        hessian = torch.autograd.functional.hessian(lambda v, t=t, fixed=fixed: _task_loss_at(model, v, names, shapes, fixed, x[t], y[t]), flat)
        want = torch.linalg.eigvalsh(hessian).abs().max().item()
        assert abs(got[t].value - want) < 2e-3 * want and got[t].converged  # power iteration stops at a relative change of 1e-3
    capped = adapted_sharpness(model, adapted, x, y, iterations=2, generator=torch.Generator().manual_seed(0))
    assert [(c.products, c.converged) for c in capped] == [(2, False)] * 3 and all(c.value <= g.value * (1 + 1e-9) for c, g in zip(capped, got))


def test_probe_gradients_keep_the_adapted_weights_columns_only():
    from benchmarks.guiroy.omniglot import _fast_columns

    model = _tiny_maml()
    params = {n: p.detach() for n, p in model.meta_parameters().items()}
    names = [n for n in params if n != "layers.1.bias"]
    x, y = torch.randn(4, 5, 1, dtype=torch.float64), torch.randn(4, 5, 1, dtype=torch.float64)
    got = support_gradients(batched_forward(model.backbone), mse_per_task, params, x, y)[:, _fast_columns(params, names)]
    fast = [p for n, p in model.backbone.named_parameters() if n in names]
    want = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(((model.backbone(x[t]) - y[t]) ** 2).mean(), fast)])
                        for t in range(4)])
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)


def test_a_probe_point_matches_each_task_measured_alone():
    """landscape_measure against task-by-task oracles: each task adapted alone by plain autograd on the module, the
    accuracies, distances, unit-direction and gradient inner products by loops over pairs, the support loss and the
    Hessian's norm from the full Hessian (tasks in chunks of 3 that do not divide the 7 meta-test tasks)."""
    from benchmarks.guiroy.omniglot import landscape_measure
    from metarepro.episodes import Episode
    from metarepro.inner import cross_entropy_per_task
    from methods.backbones import MLP
    from methods.maml import MAML

    torch.manual_seed(5)
    model = MAML(MLP([4, 6, 3], init="torch").double(), cross_entropy_per_task, 0.5, 3, frozen=("layers.1.bias",))

    def tasks(count):
        return Episode(torch.randn(count, 6, 4, dtype=torch.float64), torch.arange(3).repeat(2).expand(count, 6).clone(),
                       torch.randn(count, 9, 4, dtype=torch.float64), torch.randint(3, (count, 9)))

    sets = {"test": tasks(7), "train": tasks(4)}
    cfg = {"probe_chunk": 3, "coherence_tasks": 7, "sharpness_tasks": 4, "power_iterations": 3000, "probe_seed": 0}
    got = landscape_measure(sets, cfg, "cpu")(model, 0)

    net = model.backbone
    names = [n for n, _ in net.named_parameters() if n != "layers.1.bias"]

    def loss(params, x, y):
        return torch.nn.functional.cross_entropy(torch.func.functional_call(net, params, (x,)), y)

    def adapt_alone(x, y):  # three plain gradient steps of 0.5 on the fast weights, one task
        params = {n: p.detach().clone() for n, p in net.named_parameters()}
        for _ in range(3):
            fast = {n: params[n].requires_grad_(True) for n in names}
            grads = torch.autograd.grad(loss({**params, **fast}, x, y), [fast[n] for n in names])
            params = {**params, **{n: (fast[n] - 0.5 * g).detach() for n, g in zip(names, grads)}}
        return params

    def accuracy(e):
        hits = [(torch.func.functional_call(net, adapt_alone(e.support_x[t], e.support_y[t]), (e.query_x[t],)).argmax(-1)
                 == e.query_y[t]).double().mean() for t in range(e.query_x.shape[0])]
        return 100.0 * float(torch.stack(hits).mean())

    test = sets["test"]
    start = torch.cat([dict(net.named_parameters())[n].detach().flatten() for n in names])
    moved = [torch.cat([adapt_alone(test.support_x[t], test.support_y[t])[n].flatten() for n in names]) - start for t in range(7)]
    grads = [torch.cat([g.flatten() for g in torch.autograd.grad(loss(dict(net.named_parameters()), test.support_x[t], test.support_y[t]),
                                                                 [dict(net.named_parameters())[n] for n in names])]) for t in range(7)]
    pairs = [(i, j) for i in range(7) for j in range(7) if i != j]
    want = {"target_accuracy_meta_test": accuracy(test), "target_accuracy_meta_train": accuracy(sets["train"]),
            "trajectory_distance": float(np.mean([float(m.norm()) for m in moved])),
            "trajectory_coherence": float(np.mean([float(moved[i] @ moved[j] / (moved[i].norm() * moved[j].norm())) for i, j in pairs])),
            "gradient_coherence": float(np.mean([float(grads[i] @ grads[j]) for i, j in pairs]))}
    for key, value in want.items():
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-12), key
    shapes = [dict(net.named_parameters())[n].shape for n in names]
    support, sharpness = [], []
    for t in range(4):
        adapted = adapt_alone(test.support_x[t], test.support_y[t])
        support.append(float(loss(adapted, test.support_x[t], test.support_y[t])))
        fixed = {"layers.1.bias": adapted["layers.1.bias"]}
        flat = torch.cat([adapted[n].flatten() for n in names])

        def at(v, t=t, fixed=fixed):
            params, offset = dict(fixed), 0
            for n, shape in zip(names, shapes):
                params[n] = v[offset : offset + shape.numel()].view(shape)
                offset += shape.numel()
            return loss(params, test.support_x[t], test.support_y[t])

        sharpness.append(torch.linalg.eigvalsh(torch.autograd.functional.hessian(at, flat)).abs().max().item())
    assert math.isclose(got["support_loss"], float(np.mean(support)), rel_tol=1e-9)
    assert abs(got["sharpness"] - float(np.mean(sharpness))) < 2e-3 * float(np.mean(sharpness))  # power iteration's 1e-3 stop
    assert got["sharpness_tasks_at_cap"] == 0 and 1 < got["sharpness_products_mean"] < 3000  # how it ended, kept with the point

    # without sharpness tasks (Fig. 12's runs) the flatness keys are gone and the rest is unchanged
    flat_free = landscape_measure(sets, {**cfg, "sharpness_tasks": 0}, "cpu")(model, 0)
    assert not {"sharpness", "support_loss", "sharpness_products_mean", "sharpness_tasks_at_cap"} & set(flat_free)
    for key, value in want.items():
        assert math.isclose(flat_free[key], value, rel_tol=1e-9, abs_tol=1e-12), key


def test_figures_2_10_11_share_one_run_per_cell_and_seed_and_follow_appendix_a3():
    from benchmarks.guiroy.omniglot import FIG2, FIG10, FIG11, FIG12

    cell = Cell("MAML", "5-way 1-shot", seed=2)
    folders = {b.run_directories(cell, "paper")[0] for b in (FIG2, FIG10, FIG11)}
    assert len(folders) == 1 and next(iter(folders)).startswith("guiroy-omniglot/paper/maml-5w1s-")
    assert FIG2.run_directories(Cell("First-Order MAML", "5-way 1-shot", seed=2), "paper") != list(folders)
    assert FIG2.run_directories(Cell("MAML", "5-way 1-shot", seed=1), "paper") != list(folders)
    assert FIG12.run_directories(cell, "paper") != list(folders)  # sec. 5.3 trains with one inner step
    # appendix A.3: 5 steps at lr 0.1 in training and test, meta-batch 16 (1-shot) / 8 (5-shot), epochs of 500 iterations
    cfg, five_shot = FIG11.config(cell, "paper"), FIG11.config(Cell("MAML", "20-way 5-shot"), "paper")
    assert (cfg["inner_steps"], cfg["test_steps"], cfg["inner_lr"], cfg["meta_batch"], five_shot["meta_batch"]) == (5, 5, 0.1, 16, 8)
    assert (cfg["iterations"], cfg["epoch"], cfg["sharpness_tasks"], cfg["coherence_tasks"]) == (50_000, 500, 60, 500)
    fig12 = FIG12.config(cell, "paper")
    assert (fig12["inner_steps"], fig12["test_steps"], fig12["sharpness_tasks"]) == (1, 1, 0)  # Fig. 12 plots no sharpness


def test_probe_settings_leave_the_training_key_alone_and_the_epoch_does_not(monkeypatch):
    """A changed probe (task counts, power iterations) keeps the trained run and is re-taken from its snapshots
    (metarepro.trainer.reprobe); the epoch decides which weights are snapshotted, so it is the training's."""
    from benchmarks.guiroy import miniimagenet as M
    from benchmarks.guiroy import omniglot as G

    cells = {G.FIG2: Cell("MAML", "5-way 1-shot", seed=1), M.FIG3: Cell(M.FIG3.rows[0], M.FIG3.columns[0], seed=1)}
    keys = {b: b.training_key(c, "paper") for b, c in cells.items()}
    settings = {b: G.probe_settings(b.config(c, "paper")) for b, c in cells.items()}
    monkeypatch.setitem(G.PROBES, "coherence_tasks", 400)
    monkeypatch.setitem(M.PROTOCOL, "coherence_tasks", 400)
    for b, c in cells.items():
        assert b.training_key(c, "paper") == keys[b] and G.probe_settings(b.config(c, "paper")) != settings[b]
    for b, c in cells.items():  # the test adaptation the probes run is part of what they measure
        cfg = b.config(c, "paper")
        assert G.probe_settings({**cfg, "test_queries": cfg["test_queries"] + 1}) != G.probe_settings(cfg)
        before = G.probe_settings(cfg)  # so is the probe code's version
        monkeypatch.setattr(G, "PROBE_VERSION", G.PROBE_VERSION + 1)
        assert G.probe_settings(cfg) != before and b.training_key(c, "paper") == keys[b]
        monkeypatch.setattr(G, "PROBE_VERSION", G.PROBE_VERSION - 1)
    monkeypatch.setitem(G.PROBES, "epoch", 250)
    assert G.FIG2.training_key(cells[G.FIG2], "paper") != keys[G.FIG2]


def test_a_record_probed_by_older_probe_code_is_stale_and_dvc_names_its_group(isolated_results, monkeypatch):
    """PROBE_VERSION is outside the configuration (a probe fix keeps the training): the points' own settings decide."""
    from benchmarks.guiroy import miniimagenet as M
    from benchmarks.guiroy import omniglot as G
    from benchmarks.harness.dvc import record_params
    from benchmarks.harness.plan import cell_id
    from benchmarks.harness.runner import change_since_made, record_is_current

    for benchmark, cell in ((G.FIG2, Cell("MAML", "5-way 1-shot", seed=1)), (M.FIG3, Cell(M.FIG3.rows[0], M.FIG3.columns[0], seed=1))):
        cfg = benchmark.config(cell, "quick")
        curve = [{"iteration": 100 * i, "sharpness": 1.0, "settings": G.probe_settings(cfg)} for i in range(4)]
        record = R.make_record(benchmark=benchmark.id, row=cell.row, column=cell.column, variant="main", scale="quick",
                               metric="accuracy %", scores=np.array([50.0] * 3), config=cfg, deviations=[], provenance={},
                               seed=cell.seed, extra={"probe_curve": curve})
        assert record_is_current(benchmark, record) and change_since_made(benchmark, record) is None
        assert record_params(benchmark, [record], {"protocol": {}})["config"] == {cell_id(cell): R.result_hash(cfg)}
        monkeypatch.setattr(G, "PROBE_VERSION", G.PROBE_VERSION + 1)  # a fix to what a point measures
        assert R.result_hash(cfg) == benchmark.result_hash(cell, "quick")  # the configuration alone would not see it
        assert not record_is_current(benchmark, record)
        assert "4 of 4 probe points" in change_since_made(benchmark, record)
        assert record_params(benchmark, [record], {"protocol": {}})["config"] == {cell_id(cell): "probed under other settings"}
        retaken = {**record, "probe_curve": [{**p, "settings": G.probe_settings(cfg)} for p in curve[:3]] + curve[3:]}
        assert "1 of 4 probe points" in change_since_made(benchmark, retaken) and "iteration 300" in change_since_made(benchmark, retaken)
        monkeypatch.setattr(G, "PROBE_VERSION", G.PROBE_VERSION - 1)


def test_a_claim_after_a_peak_reads_the_curve_after_its_maximum():
    """The maximum itself is left out: a segment that starts at its own maximum leans negative on noise alone."""
    from benchmarks.harness.base import CorrelationClaim

    claim = CorrelationClaim("falls after its peak", "MAML", "iteration", "sharpness", expected_sign=-1, after_peak_of="sharpness")
    curve = [{"iteration": i, "sharpness": s} for i, s in enumerate([1.0, 4.0, 3.0, 3.5, 2.0])]
    assert [p["iteration"] for p in claim.points(curve)] == [2, 3, 4]
    assert pearson([2, 3, 4], [3.0, 3.5, 2.0]) < 0
    with pytest.raises(ValueError):
        CorrelationClaim("bad", "MAML", "x", "y", over="epochs")


def test_peak_split_claims_hold_on_pure_noise_no_more_often_than_their_interval_promises():
    """Curves of i.i.d. noise (100 points, 3 runs a trial, 600 trials): "rises to its peak" and "falls after it" may hold
    (the one-sided 95% interval over runs excluding 0) in about 2.5% of trials; with the peak kept in the segments they
    held in about 7%."""
    from benchmarks.harness.base import CorrelationClaim

    rng = np.random.default_rng(0)
    rise = CorrelationClaim("rises", "MAML", "iteration", "y", until_peak_of="y")
    fall = CorrelationClaim("falls", "MAML", "iteration", "y", expected_sign=-1, after_peak_of="y")
    held = {rise: 0, fall: 0}
    for _ in range(600):
        curves = [[{"iteration": i, "y": float(v)} for i, v in enumerate(rng.normal(size=100))] for _ in range(3)]
        for claim in held:
            rs = [pearson([p["iteration"] for p in pts], [p["y"] for p in pts]) for pts in map(claim.points, curves) if len(pts) > 2]
            if len(rs) == 3:
                _, low, high = correlation_across_runs(rs)
                held[claim] += (low > 0) if claim.expected_sign > 0 else (high < 0)
    assert max(held.values()) / 600 < 0.045, held


def test_the_shuffled_steps_z_is_the_mean_over_every_order_of_the_steps():
    """Against an exact loop over all 720 orders of a 7-point curve's steps (Monte Carlo at 20,000 surrogates, within 4
    standard errors)."""
    import itertools

    from metarepro.evaluate import peak_segment_z_of_shuffled_steps

    x, y = np.array([0.0, 1, 2, 4, 5, 7, 8]), np.array([0.3, 1.0, 0.2, 2.5, 1.1, 0.4, 0.9])
    for after in (False, True):
        zs = []
        for order in itertools.permutations(np.diff(y)):
            curve = y[0] + np.concatenate([[0.0], np.cumsum(order)])
            peak = int(np.argmax(curve))
            xs, ys = (x[peak + 1:], curve[peak + 1:]) if after else (x[:peak], curve[:peak])
            if len(xs) > 2:
                zs.append(np.arctanh(np.clip(stats.pearsonr(xs, ys)[0], -1 + 1e-9, 1 - 1e-9)))  # three points can line up
        estimate = peak_segment_z_of_shuffled_steps(x, y, after, surrogates=20_000, seed=3)
        assert abs(estimate - np.mean(zs)) < 4 * np.std(zs) / math.sqrt(20_000 * len(zs) / 720), (after, estimate, np.mean(zs))


def test_peak_split_claims_judged_over_shuffled_steps_hold_on_random_walks_as_the_interval_promises():
    """Random walks (106 points, 3 runs a trial, 300 trials) rise to their maximum and fall after it: on the R of the
    peak's two sides the claims held in ~17% of trials; over the same steps in random order, at most ~2.5%. A clear rise
    and fall still holds."""
    from benchmarks.harness.base import CorrelationClaim
    from benchmarks.harness.runner import across_seeds, claim_verdict

    rise = CorrelationClaim("rises", "MAML", "iteration", "y", until_peak_of="y")
    fall = CorrelationClaim("falls", "MAML", "iteration", "y", expected_sign=-1, after_peak_of="y")
    assert rise.splits_at_its_own_peak and not CorrelationClaim("c", "MAML", "iteration", "y", after_peak_of="accuracy").splits_at_its_own_peak

    def holds(claim, ys) -> bool:
        z = [claim.z_over_shuffled_steps([{"iteration": 500 * (i + 1), "y": float(v)} for i, v in enumerate(y)]) for y in ys]
        z = [v for v in z if math.isfinite(v)]
        return len(z) == 3 and claim_verdict(claim.expected_sign * across_seeds(z)[0], across_seeds(z)[1], True, 3) == "yes"

    rng, t = np.random.default_rng(0), np.arange(106) / 10.0
    for claim in (rise, fall):
        assert sum(holds(claim, [np.cumsum(rng.normal(size=106)) for _ in range(3)]) for _ in range(300)) / 300 < 0.045
        assert sum(holds(claim, [t * np.exp(-t / 2) + 0.02 * rng.normal(size=106) for _ in range(3)]) for _ in range(40)) >= 38


def test_a_claim_can_leave_out_the_untrained_model_and_read_up_to_a_peak():
    from benchmarks.harness.base import CorrelationClaim

    curve = [{"iteration": 500 * i, "sharpness": s} for i, s in enumerate([9.0, 1.0, 4.0, 3.0, 3.5, 2.0])]  # 9: untrained, at 0
    rise = CorrelationClaim("rises to its peak", "MAML", "iteration", "sharpness", until_peak_of="sharpness", skip_untrained=True)
    fall = CorrelationClaim("falls after its peak", "MAML", "iteration", "sharpness", expected_sign=-1, after_peak_of="sharpness",
                            skip_untrained=True)
    assert [p["iteration"] for p in rise.points(curve)] == [500]
    assert [p["iteration"] for p in fall.points(curve)] == [1500, 2000, 2500]
    assert [p["iteration"] for p in CorrelationClaim("all", "MAML", "iteration", "sharpness").points(curve)][0] == 0
    assert rise.peak_iteration(curve) == fall.peak_iteration(curve) == 1000  # the untrained model's 9.0 is not the peak
    # points probed between epochs: read before or after a peak, not by a claim over the whole curve
    early = [curve[0], {"iteration": 100, "sharpness": 0.5, "between": True}, {"iteration": 250, "sharpness": 0.8, "between": True},
             *curve[1:]]
    assert [p["iteration"] for p in rise.points(early)] == [100, 250, 500]
    assert [p["iteration"] for p in CorrelationClaim("all", "MAML", "iteration", "sharpness").points(early)] == [0, 500, 1000, 1500,
                                                                                                               2000, 2500]
    assert CorrelationClaim("all", "MAML", "iteration", "sharpness").peak_iteration(curve) is None
    with pytest.raises(ValueError, match="not both"):
        CorrelationClaim("bad", "MAML", "x", "y", after_peak_of="y", until_peak_of="y")


def test_a_run_whose_peak_is_its_last_point_is_shown_undefined_not_counted(isolated_results):
    from benchmarks.guiroy.omniglot import FIG2

    for seed in range(3):
        cell = Cell("MAML", "5-way 1-shot", seed=seed)
        rising = seed == 0  # seed 0 is still sharpening at its last epoch; seeds 1 and 2 peak, then flatten
        curve = [{"iteration": 50 * i, "sharpness": float(i if rising else [1, 5, 4, 3, 2.5][i]), "support_loss": 5.0 - i}
                 for i in range(5)]
        R.write_record(R.make_record(benchmark=FIG2.id, row="MAML", column=cell.column, variant="main", scale="quick",
                                     metric="meta-test accuracy %", scores=np.array([50.0, 60.0]), config=FIG2.config(cell, "quick"),
                                     deviations=[], provenance={}, seed=seed, extra=_probed(FIG2, FIG2.config(cell, "quick"), curve)),
                       cell.slug)
    checks = {c["claim"]: c for c in correlation_checks(FIG2) if c["column"] == "5-way 1-shot"}
    after_peak = checks["MAML: after its peak, meta-test sharpness keeps falling (sec. 5.1)"]
    assert after_peak["R per run"].startswith("0: undefined (peak at iteration 200); 1: ") and after_peak["seeds"] == 2
    assert after_peak["holds"] == "too few seeds (2 of 3)"
    falling = checks["MAML: the meta-test support loss falls along meta-training (sec. 5.1)"]
    assert falling["seeds"] == 3 and falling["holds"] == "yes"


def test_the_finetune_baseline_tests_by_maml_steps_on_a_new_xavier_head():
    """Against a deep copy fine-tuned by ``torch.optim.SGD`` (BatchNorm offsets held, as MAML's code holds them), with the
    head re-drawn independently from the same seed."""
    import copy

    from benchmarks.anchors.finn2017_table1 import maml_task_loss
    from methods.backbones import ConvNet
    from methods.finetune_baseline import FinetuneBaseline

    torch.manual_seed(0)
    make = lambda ways: ConvNet(3, ways, 4, pool=True, features="flatten", image_size=28, bn_scale=False).double()  # noqa: E731
    frozen = tuple(f"norms.{i}.bias" for i in range(4))
    baseline = FinetuneBaseline(make, 10, maml_task_loss(2), inner_lr=0.05, test_steps=3, frozen=frozen)
    trained = {k: v.clone() for k, v in baseline.network.state_dict().items()}
    learner = baseline.test_learner(5, seed=7)
    assert all(torch.equal(v, trained[k]) for k, v in baseline.network.state_dict().items())  # the trained net is untouched
    net = learner.backbone
    assert all(torch.equal(v, trained[k]) for k, v in net.state_dict().items() if not k.startswith("head."))
    head = torch.empty(5, net.head.weight.shape[1], dtype=torch.float64)
    torch.nn.init.xavier_uniform_(head, generator=torch.Generator().manual_seed(7))
    assert torch.equal(net.head.weight, head) and not net.head.bias.any()

    x = torch.rand(1, 10, 3, 28, 28, dtype=torch.float64)
    y = torch.arange(5).repeat_interleave(2).unsqueeze(0)
    query = torch.rand(1, 6, 3, 28, 28, dtype=torch.float64)
    oracle = copy.deepcopy(net)
    sgd = torch.optim.SGD([p for n, p in oracle.named_parameters() if n not in frozen], lr=0.05)
    for _ in range(3):
        sgd.zero_grad()
        (torch.nn.functional.cross_entropy(oracle(x[0]), y[0], reduction="sum") / 2).backward()
        sgd.step()
    from metarepro.episodes import Episode

    got = learner.predict(Episode(x, y, query, torch.zeros(1, 6, dtype=torch.long)))
    assert torch.allclose(got[0], oracle(query[0]), rtol=1e-10, atol=1e-12)


def test_the_mini_imagenet_family_follows_appendix_a():
    from benchmarks.guiroy.miniimagenet import FIG3, FIG6, FIG7

    maml, fo5 = FIG3.config(Cell("MAML", "5-way 1-shot"), "paper"), FIG3.config(Cell("First-Order MAML", "5-way 5-shot"), "paper")
    assert (maml["filters"], maml["inner_steps"], maml["test_steps"], maml["inner_lr"], maml["meta_batch"], maml["epoch"]) == (
        48, 5, 5, 0.01, 4, 500)
    assert (fo5["meta_batch"], fo5["first_order"], fo5["iterations"]) == (2, True, 50_000)
    one, five = FIG6.config(Cell("Finetune baseline", "5-way 1-shot"), "paper"), FIG6.config(Cell("Finetune baseline", "5-way 5-shot"), "paper")
    assert (one["classical_batch"], one["epoch"], five["classical_batch"], five["epoch"], one["epochs"]) == (64, 25, 128, 12, 100)
    assert FIG7.config(Cell("MAML", "5-way 5-shot"), "paper")["inner_steps"] == 1
    assert FIG3.run_directories(Cell("MAML", "5-way 1-shot"), "paper") == FIG6.run_directories(Cell("MAML", "5-way 1-shot"), "paper")
    assert FIG7.run_directories(Cell("MAML", "5-way 1-shot"), "paper") != FIG3.run_directories(Cell("MAML", "5-way 1-shot"), "paper")


def test_fig10s_gap_claim_pairs_each_runs_meta_train_and_meta_test_accuracy(isolated_results):
    """Sec. 6's generalisation gap: per run, the mean over its probe points of meta-train minus meta-test target accuracy;
    across seeds, the t interval (oracle: the same arithmetic written out)."""
    fig10, rng = BENCHMARKS["guiroy-fig10"], np.random.default_rng(2)
    gaps = {}
    for row, gap in (("MAML", 2.0), ("First-Order MAML", 0.0)):
        for seed in range(3):
            test = 90 + rng.normal(0, 1, size=6)
            train = test + gap + rng.normal(0, 0.5, size=6)
            curve = [{"iteration": 50 * i, "target_accuracy_meta_train": float(a), "target_accuracy_meta_test": float(b)}
                     for i, (a, b) in enumerate(zip(train, test))]
            cell = Cell(row, "5-way 1-shot", seed=seed)
            R.write_record(R.make_record(benchmark=fig10.id, row=row, column=cell.column, variant="main", scale="quick",
                                         metric="meta-test accuracy %", scores=np.array([50.0, 60.0]), config=fig10.config(cell, "quick"),
                                         deviations=[], provenance={}, seed=seed, extra=_probed(fig10, fig10.config(cell, "quick"), curve)),
                           cell.slug)
            gaps[(row, seed)] = float(np.mean(train) - np.mean(test))
    checks = {c["claim"].split(":")[0]: c for c in level_checks(fig10) if c["column"] == "5-way 1-shot"}
    assert set(checks) == {"MAML", "First-Order MAML"}
    for row, want in (("MAML", "yes"), ("First-Order MAML", "no difference")):
        diffs = np.array([gaps[(row, s)] for s in range(3)])
        half = stats.t.ppf(0.975, 2) * stats.sem(diffs)
        assert checks[row]["method - baseline across runs"] == f"{diffs.mean():+.4g} ± {half:.3g}"
        assert checks[row]["holds"] == want
