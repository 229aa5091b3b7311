"""CI formula against numpy; samplers deterministic by (seed, split, index)."""

import math

import numpy as np
import pytest
import torch

from metarepro.episodes import SINUSOID_MAML, SINUSOID_METASGD, Episode
from metarepro.evaluate import mean_ci95


def test_mean_ci95_matches_numpy_loop():
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, 0.5, size=600)
    total = 0.0
    for s in scores:
        total += s
    mean = total / len(scores)
    var = sum((s - mean) ** 2 for s in scores) / len(scores)
    got_mean, got_ci = mean_ci95(scores)
    assert got_mean == pytest.approx(mean, rel=1e-12)
    assert got_ci == pytest.approx(1.96 * math.sqrt(var) / math.sqrt(600), rel=1e-12)


def test_mean_ci95_rejects_bad_input():
    with pytest.raises(ValueError):
        mean_ci95([])
    with pytest.raises(ValueError, match="NaN"):
        mean_ci95([1.0, float("nan")])


@pytest.mark.parametrize("df", [1, 2, 4, 9, 29, 30, 31, 45, 100, 1000])
def test_t_quantiles_match_scipy(df):
    from scipy.stats import t

    from metarepro.evaluate import t975

    assert t975(df) == pytest.approx(float(t.ppf(0.975, df)), abs=1e-8 if df <= 30 else 1e-6)


def test_an_interval_over_run_means_is_students_t_on_the_sample_deviation():
    from scipy import stats

    runs = np.array([61.2, 63.0, 62.1, 60.4, 62.9])
    mean, half = mean_ci95(runs, unit="run")
    low, high = stats.t.interval(0.95, len(runs) - 1, loc=runs.mean(), scale=stats.sem(runs))
    assert mean == pytest.approx(runs.mean()) and half == pytest.approx((high - low) / 2, rel=1e-8)
    assert half > 1.5 * mean_ci95(runs)[1]  # the normal, ddof=0 interval would be far too narrow at n = 5
    with pytest.raises(ValueError, match="two runs"):
        mean_ci95([60.0], unit="run")
    with pytest.raises(ValueError, match="unit"):
        mean_ci95(runs, unit="seed")


def test_sinusoid_sampler_is_deterministic_per_seed_and_index():
    a = SINUSOID_METASGD.train_batch(seed=1, index=5, n_tasks=4, n_support=5, n_query=7)
    b = SINUSOID_METASGD.train_batch(seed=1, index=5, n_tasks=4, n_support=5, n_query=7)
    c = SINUSOID_METASGD.train_batch(seed=2, index=5, n_tasks=4, n_support=5, n_query=7)
    d = SINUSOID_METASGD.train_batch(seed=1, index=6, n_tasks=4, n_support=5, n_query=7)
    for f in Episode._fields():
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert not torch.equal(a.support_x, c.support_x)
    assert not torch.equal(a.support_x, d.support_x)
    assert a.support_x.shape == (4, 5, 1) and a.query_y.shape == (4, 7, 1)


def test_test_episodes_are_fixed_by_index_whatever_the_count():
    few = SINUSOID_METASGD.test_episodes(seed=9, n_episodes=3, n_support=5, n_query=100)
    many = SINUSOID_METASGD.test_episodes(seed=9, n_episodes=10, n_support=5, n_query=100)
    assert torch.equal(few.query_x, many.query_x[:3])
    train = SINUSOID_METASGD.train_batch(seed=9, index=0, n_tasks=1, n_support=5, n_query=100)
    assert not torch.equal(train.support_x[0], many.support_x[0])  # test and train streams differ


def test_sinusoid_families_respect_their_published_ranges():
    """Recover amplitude, frequency and phase from dense samples of each task."""
    for family, freq_range in ((SINUSOID_MAML, (1.0, 1.0)), (SINUSOID_METASGD, (0.8, 1.2))):
        ep = family.train_batch(seed=0, index=0, n_tasks=200, n_support=0, n_query=400)
        x, y = ep.query_x[..., 0].double().numpy(), ep.query_y[..., 0].double().numpy()
        assert x.min() >= -5 and x.max() <= 5
        amplitude = np.abs(y).max(1)
        assert amplitude.max() <= 5.0 + 1e-6 and amplitude.min() >= 0.0
        for xi, yi in zip(x[:20], y[:20]):  # least squares for a sin(wx) + b cos(wx) on a frequency grid
            best = min(
                (np.linalg.lstsq(np.stack([np.sin(w * xi), np.cos(w * xi)], 1), yi, rcond=None)[1].sum(), w)
                for w in np.linspace(0.7, 1.3, 601)
            )[1]
            assert freq_range[0] - 2e-3 <= best <= freq_range[1] + 2e-3
