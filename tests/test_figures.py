"""metarepro.figures: silhouette against scikit-learn, t-SNE behaviour, and the PNGs it writes."""

import struct
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from sklearn.metrics import silhouette_score  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from metarepro import figures  # noqa: E402
from metarepro.figures import embedding_panels, line_figure, silhouette, tsne_2d  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_thread():
    """t-SNE and BLAS on one thread: small inputs, and the machine is shared."""
    with threadpool_limits(limits=1):
        yield


def _blobs(rng: np.random.Generator, k: int, per: int, d: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(k, d)) * spread
    labels = np.repeat(np.arange(k), per)
    return centres[labels] + rng.normal(size=(k * per, d)), labels


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _rgb_pixels(path) -> set[tuple[int, int, int]]:
    from PIL import Image

    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    return {tuple(int(v) for v in px) for px in np.unique(rgb, axis=0)}


def _tab10_rgb(c: int) -> tuple[int, int, int]:
    from matplotlib import colormaps

    return tuple(int(round(255 * v)) for v in colormaps["tab10"](c)[:3])


# ---------------------------------------------------------------- silhouette


@pytest.mark.parametrize("seed", range(6))
def test_silhouette_matches_sklearn_with_a_singleton_cluster(seed):
    rng = np.random.default_rng(seed)
    k = 3 + seed % 3
    n = int(rng.integers(30, 80))
    d = int(rng.integers(2, 6))
    points = rng.normal(size=(n, d)) + rng.normal(size=d) * 5  # off-centre, to exercise the distance arithmetic
    labels = rng.integers(0, k - 1, size=n)
    labels[int(rng.integers(n))] = k - 1  # class k - 1 has exactly one member
    assert np.bincount(labels).min() == 1 and len(np.unique(labels)) == k
    labels = labels * 7 - 3  # arbitrary (non-contiguous, negative) ids
    assert silhouette(points, labels) == pytest.approx(silhouette_score(points, labels), abs=1e-10)


def test_silhouette_matches_sklearn_across_chunks_and_string_labels():
    rng = np.random.default_rng(11)
    points = rng.normal(size=(130, 3))
    labels = rng.choice(np.array(["a", "b", "c", "d"]), size=130)
    expected = silhouette_score(points, labels)
    assert silhouette(points, labels, chunk=17) == pytest.approx(expected, abs=1e-10)
    assert silhouette(points, labels) == pytest.approx(expected, abs=1e-10)


def test_silhouette_well_separated_clusters_near_one():
    rng = np.random.default_rng(0)
    points, labels = _blobs(rng, k=4, per=25, d=3, spread=100.0)
    assert silhouette(points, labels) > 0.9


def test_silhouette_identical_distributions_near_zero():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(2000, 2))
    labels = rng.integers(0, 3, size=2000)
    assert abs(silhouette(points, labels)) < 0.1


def test_silhouette_rejects_one_label_or_all_distinct():
    points = np.random.default_rng(2).normal(size=(5, 2))
    with pytest.raises(ValueError):
        silhouette(points, np.zeros(5, dtype=int))
    with pytest.raises(ValueError):
        silhouette(points, np.arange(5))
    with pytest.raises(ValueError):
        silhouette(points, np.array([0, 1, 0, 1]))


# --------------------------------------------------------------------- t-SNE


def test_tsne_shape_finite_deterministic_and_separates_blobs():
    rng = np.random.default_rng(3)
    features, labels = _blobs(rng, k=3, per=30, d=20, spread=4.0)
    first = tsne_2d(features, seed=5)
    assert first.shape == (90, 2)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, tsne_2d(features, seed=5))
    assert silhouette(first, labels) > 0.5


def test_tsne_clips_perplexity_for_few_points_and_rejects_too_few():
    rng = np.random.default_rng(4)
    out = tsne_2d(rng.normal(size=(4, 6)), perplexity=30.0)  # sklearn alone would refuse perplexity >= n
    assert out.shape == (4, 2) and np.isfinite(out).all()
    with pytest.raises(ValueError):
        tsne_2d(rng.normal(size=(3, 6)))
    with pytest.raises(ValueError):
        tsne_2d(rng.normal(size=12))


# ------------------------------------------------------------------- figures


def test_line_figure_writes_png_with_bands_and_log_scale(tmp_path):
    xs = np.arange(1, 21, dtype=float)
    series = {"MAML": [(x, 1.0 / x) for x in xs], "Reptile": [(x, 2.0 / x) for x in xs]}
    bands = {"MAML": [(x, 0.8 / x, 1.2 / x) for x in xs]}
    path = tmp_path / "new" / "sub" / "curve.png"
    out = line_figure(series, path, "loss", "step", "loss", logy=True, bands=bands)
    assert out == path
    width, height = _png_size(path)
    assert width > 100 and height > 100
    assert list(path.parent.iterdir()) == [path]
    pixels = _rgb_pixels(path)
    assert _tab10_rgb(0) in pixels and _tab10_rgb(1) in pixels  # both lines drawn, in the default cycle colours


def test_line_figure_rejects_bands_without_a_series(tmp_path):
    with pytest.raises(ValueError):
        line_figure({"a": [(0, 1), (1, 2)]}, tmp_path / "x.png", "t", "x", "y", bands={"b": [(0, 0, 1)]})
    assert list(tmp_path.iterdir()) == []


def _panel(rng: np.random.Generator, title: str, k: int = 3) -> dict:
    points, labels = _blobs(rng, k=k, per=12, d=2, spread=6.0)
    is_support = np.zeros(len(labels), dtype=bool)
    is_support[::12] = True  # first point of each class
    return {"title": title, "points": points, "labels": labels, "is_support": is_support}


def test_embedding_panels_writes_png_side_by_side(tmp_path):
    rng = np.random.default_rng(5)
    one = embedding_panels([_panel(rng, "before")], tmp_path / "one.png", "L2G Figure 3")
    two = embedding_panels([_panel(rng, "before"), _panel(rng, "after")], tmp_path / "two.png", "L2G Figure 3")
    w1, h1 = _png_size(one)
    w2, h2 = _png_size(two)
    assert min(w1, h1, w2, h2) > 100
    assert w2 > 1.5 * w1  # panels sit side by side
    assert sorted(tmp_path.iterdir()) == [one, two]
    pixels = _rgb_pixels(two)
    assert all(_tab10_rgb(c) in pixels for c in range(3))  # one tab10 colour per class
    assert (0, 0, 0) in pixels  # black star edges


def test_embedding_panels_validates_shapes(tmp_path):
    rng = np.random.default_rng(6)
    panel = _panel(rng, "p")
    with pytest.raises(ValueError):
        embedding_panels([{**panel, "points": panel["points"][:, :1]}], tmp_path / "a.png", "t")
    with pytest.raises(ValueError):
        embedding_panels([{**panel, "is_support": panel["is_support"][:-1]}], tmp_path / "a.png", "t")
    with pytest.raises(ValueError):
        embedding_panels([], tmp_path / "a.png", "t")


def test_interrupted_save_keeps_old_png_and_leaves_no_temp(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "curve.png"
    line_figure({"a": [(0, 1), (1, 2)]}, path, "t", "x", "y")
    before = path.read_bytes()

    def torn_savefig(self, f, **kwargs):
        f.write(PNG_SIGNATURE + b"torn")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", torn_savefig)
    with pytest.raises(KeyboardInterrupt):
        line_figure({"a": [(0, 5), (1, 6)]}, path, "t", "x", "y")
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_missing_plot_extra_names_the_extra(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'metarepro\[plot\]'"):
        line_figure({"a": [(0, 1)]}, tmp_path / "x.png", "t", "x", "y")
    assert figures.PLOT_EXTRA_HINT == "figures need the plot extra: pip install 'metarepro[plot]'"
    assert list(tmp_path.iterdir()) == []


def test_interval_figure_draws_published_and_reproduced_rows(tmp_path):
    from metarepro.figures import interval_figure

    rows = [{"label": "MAML / 5-way 1-shot", "published": (98.7, 0.4), "reproduced": (98.3, 0.5), "verdict": "within"},
            {"label": "Reptile / 5-way 1-shot", "published": (95.39, 0.09), "reproduced": (93.35, 0.22), "verdict": "known deviation"},
            {"label": "ProtoNet / 5-way 1-shot", "published": (98.8, 0.0), "reproduced": None, "verdict": "not reproduced"}]
    path = interval_figure(rows, tmp_path / "f" / "intervals.png", "t", "accuracy %")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and list(path.parent.iterdir()) == [path]
    with pytest.raises(ValueError, match="at least one row"):
        interval_figure([], tmp_path / "g.png", "t", "x")


def test_quantile_panels_write_a_png_and_refuse_no_panels(tmp_path):
    from metarepro.figures import quantile_panels

    rows = [(1, 0.0, 0.1, 0.2, 0.3, 0.4), (2, 0.1, 0.2, 0.3, 0.4, 0.5)]
    path = quantile_panels([{"title": "a", "ylabel": "alpha", "series": {"seed 0": rows}}] * 3, tmp_path / "q.png", "t", "step", ncols=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one panel"):
        quantile_panels([], tmp_path / "none.png", "t", "step", ncols=2)
