"""Figures for the suite's figure benchmarks: curves, embedding panels, and a separation score.

Papers reproduced here print two kinds of figures: curves (accuracy or loss
against steps, tasks or shots, often with a shaded interval) and 2-D
embeddings of support and query features (t-SNE, as in the L2G paper's
Figure 3, where stars are support points and coloured dots query points).
This module draws both as PNGs and supplies the number a figure benchmark
records in place of eyeballing a scatter plot: the mean silhouette
coefficient of the classes.

* :func:`line_figure` and :func:`embedding_panels` write PNGs atomically
  (temporary file in the same folder, then :func:`os.replace`), so a killed
  run never leaves a torn image behind.
* :func:`tsne_2d` embeds features in 2-D with scikit-learn's t-SNE.
* :func:`silhouette` is the mean silhouette coefficient, in numpy.

matplotlib and scikit-learn are the ``plot`` extra and are imported only
inside the functions that need them; drawing uses the Agg canvas directly
(no pyplot, no global backend switch, no figures kept alive).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from metarepro.atomic import atomic_path

PLOT_EXTRA_HINT = "figures need the plot extra: pip install 'metarepro[plot]'"
DPI = 120


def _require_matplotlib() -> tuple[Any, Any, Any]:
    """``(Figure, FigureCanvasAgg, colormaps)``, or a clear ImportError."""
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(PLOT_EXTRA_HINT) from exc
    return Figure, FigureCanvasAgg, colormaps


def _new_figure(figsize: tuple[float, float], ncols: int = 1) -> tuple[Any, list[Any], Any]:
    """A figure on an Agg canvas with ``ncols`` side-by-side axes, and the colormap registry."""
    figure_cls, canvas_cls, colormaps = _require_matplotlib()
    fig = figure_cls(figsize=figsize)
    canvas_cls(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes), colormaps


def _save_png_atomic(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG via a temporary file in the same folder."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)
    return path


def line_figure(
    series: dict[str, list[tuple[float, float]]],
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    bands: dict[str, list[tuple[float, float, float]]] | None = None,
) -> Path:
    """Curves, one line per label, as a PNG at ``path``; returns ``path``.

    ``series``: ``label -> [(x, y), ...]`` in plotting order (x ascending).
    ``bands``: optional ``label -> [(x, lower, upper), ...]``, drawn as a
    shaded region in the colour of that label's line (e.g. a 95% interval);
    every band label must be a series label. ``logy`` puts y on a log scale.
    Parent folders are created; the file is replaced atomically.
    """
    if not series:
        raise ValueError("line_figure needs at least one series")
    bands = bands or {}
    unknown = sorted(set(bands) - set(series))
    if unknown:
        raise ValueError(f"bands for labels not in series: {unknown}")
    fig, (ax,), _ = _new_figure((6.4, 4.4))
    for label, points in series.items():
        xy = np.asarray(points, dtype=float).reshape(-1, 2)
        (line,) = ax.plot(xy[:, 0], xy[:, 1], marker="o" if len(xy) <= 12 else None, markersize=3, label=label)
        if label in bands:
            band = np.asarray(bands[label], dtype=float).reshape(-1, 3)
            ax.fill_between(band[:, 0], band[:, 1], band[:, 2], color=line.get_color(), alpha=0.2, linewidth=0)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both" if logy else "major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save_png_atomic(fig, path)


def scatter_figure(groups: dict[str, list[tuple[float, float]]], path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """Points, one colour per label (``label -> [(x, y), ...]``), as a PNG at ``path``; returns ``path``. Nothing joins
    the points: they are independent measurements (e.g. one per setting and run), not a curve."""
    if not groups or not any(groups.values()):
        raise ValueError("scatter_figure needs at least one point")
    fig, (ax,), _ = _new_figure((6.4, 4.4))
    for label, points in groups.items():
        xy = np.asarray(points, dtype=float).reshape(-1, 2)
        ax.scatter(xy[:, 0], xy[:, 1], s=14, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save_png_atomic(fig, path)


#: colour of a reproduced interval by its verdict (the published one is drawn in black)
VERDICT_COLOURS = {"within": "tab:green", "outside": "tab:red", "known deviation": "tab:orange", "quick only": "tab:gray"}


def interval_figure(rows: list[dict], path: Path, title: str, xlabel: str) -> Path:
    """Published against reproduced 95% intervals, a row per cell, as a PNG at ``path``; returns ``path``.

    ``rows``: ``{"label", "published": (mean, half-width) or None, "reproduced": (mean, half-width) or None,
    "verdict": a key of VERDICT_COLOURS}`` in display order (top to bottom). The published interval is black (a point where
    the half-width is 0), the reproduced one beneath it coloured by its verdict.
    """
    if not rows:
        raise ValueError("interval_figure needs at least one row")
    fig, (ax,), _ = _new_figure((7.2, 0.9 + 0.32 * len(rows)))
    for i, row in enumerate(rows):
        y = len(rows) - 1 - i
        if row.get("published") is not None:
            mean, half = row["published"]
            ax.errorbar(mean, y + 0.12, xerr=half or None, fmt="o", color="black", markersize=3, capsize=2, linewidth=1)
        if row.get("reproduced") is not None:
            mean, half = row["reproduced"]
            ax.errorbar(mean, y - 0.12, xerr=half, fmt="s", color=VERDICT_COLOURS.get(row["verdict"], "tab:blue"), markersize=3,
                        capsize=2, linewidth=1.5)
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)], fontsize=7)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    handles = [ax.errorbar([], [], xerr=[], fmt="o", color="black", markersize=3, label="published")]
    handles += [ax.errorbar([], [], xerr=[], fmt="s", color=c, markersize=3, label=f"reproduced: {v}") for v, c in VERDICT_COLOURS.items()
                if any(r["verdict"] == v and r.get("reproduced") is not None for r in rows)]
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    return _save_png_atomic(fig, path)


def _check_panel(i: int, panel: dict) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    missing = {"title", "points", "labels", "is_support"} - set(panel)
    if missing:
        raise ValueError(f"panel {i} lacks keys {sorted(missing)}")
    points = np.asarray(panel["points"], dtype=float)
    labels = np.asarray(panel["labels"])
    is_support = np.asarray(panel["is_support"], dtype=bool)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"panel {i}: points must be (n, 2), got {points.shape}")
    n = len(points)
    if labels.shape != (n,) or is_support.shape != (n,):
        raise ValueError(f"panel {i}: labels {labels.shape} and is_support {is_support.shape} must both be ({n},)")
    if n and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"panel {i}: labels must be integer class ids, got {labels.dtype}")
    return str(panel["title"]), points, labels, is_support


def embedding_panels(panels: list[dict], path: Path, title: str) -> Path:
    """Side-by-side 2-D scatter panels as a PNG at ``path``; returns ``path``.

    Each panel is a dict with ``title`` (str), ``points`` (``(n, 2)`` array),
    ``labels`` (``(n,)`` int class ids) and ``is_support`` (``(n,)`` bool).
    Class ``c`` is drawn in tab10 colour ``c % 10`` in every panel; support
    points are large stars with a black edge, query points small dots (the
    L2G paper's Figure 3 convention). Parent folders are created; the file
    is replaced atomically.
    """
    if not panels:
        raise ValueError("embedding_panels needs at least one panel")
    checked = [_check_panel(i, p) for i, p in enumerate(panels)]
    fig, axes, colormaps = _new_figure((4.2 * len(checked), 4.6), ncols=len(checked))
    cmap = colormaps["tab10"]
    for ax, (panel_title, points, labels, is_support) in zip(axes, checked):
        for c in np.unique(labels):
            colour = cmap(int(c) % 10)
            query = (labels == c) & ~is_support
            support = (labels == c) & is_support
            ax.scatter(points[query, 0], points[query, 1], s=12, color=colour, alpha=0.8, linewidths=0, zorder=2)
            ax.scatter(points[support, 0], points[support, 1], s=220, marker="*", color=colour, edgecolors="black", linewidths=0.8, zorder=3)
        ax.set_title(panel_title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return _save_png_atomic(fig, path)


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """t-SNE of ``(n, d)`` features to ``(n, 2)`` float64 coordinates.

    scikit-learn's TSNE with PCA initialisation and ``random_state=seed``, so
    the same input and seed give the same output. ``perplexity`` is clipped
    to ``(n - 1) / 3`` (scikit-learn requires it below ``n``, and each point
    needs about ``3 * perplexity`` neighbours). Raises ValueError for ``n < 4``.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (n, d), got shape {x.shape}")
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    try:
        from sklearn.manifold import TSNE
    except ImportError as exc:
        raise ImportError(PLOT_EXTRA_HINT) from exc
    tsne = TSNE(n_components=2, perplexity=min(float(perplexity), (n - 1) / 3), init="pca", random_state=seed)
    return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def silhouette(points: np.ndarray, labels: np.ndarray, chunk: int = 1024) -> float:
    """Mean silhouette coefficient of ``(n, d)`` points under ``(n,)`` labels.

    Euclidean distances; for point ``i``, ``a(i)`` is the mean distance to the
    other members of its cluster, ``b(i)`` the smallest mean distance to the
    members of another cluster, and ``s(i) = (b - a) / max(a, b)``, with
    ``s(i) = 0`` for a point alone in its cluster (scikit-learn's definition,
    :func:`sklearn.metrics.silhouette_score`). In [-1, 1]; near 1 when classes
    separate well, near 0 when they overlap. Labels may be any hashable
    values; there must be between 2 and ``n - 1`` distinct ones, as in
    scikit-learn. Memory is ``O(chunk * n)``.
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"points must be (n, d), got shape {x.shape}")
    n = x.shape[0]
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must be ({n},), got shape {labels.shape}")
    classes, idx = np.unique(labels, return_inverse=True)
    k = len(classes)
    if not 2 <= k <= n - 1:
        raise ValueError(f"silhouette needs 2 <= number of labels <= n - 1, got {k} labels for {n} points")
    x = x - x.mean(axis=0)  # distances are translation invariant; centring keeps the Gram trick accurate
    sq = np.einsum("ij,ij->i", x, x)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), idx] = 1.0
    counts = onehot.sum(axis=0)
    sums = np.empty((n, k))  # sums[i, c]: total distance from point i to the members of class c
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(stop - start), np.arange(start, stop)] = 0.0
        sums[start:stop] = np.sqrt(d2) @ onehot
    own = counts[idx]
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = sums[rows, idx] / (own - 1)
        mean_other = sums / counts
        mean_other[rows, idx] = np.inf
        b = mean_other.min(axis=1)
        s = (b - a) / np.maximum(a, b)
    s[(own == 1) | ~np.isfinite(s)] = 0.0  # singletons, and a == b == 0 (coincident points), score 0 as in scikit-learn
    return float(s.mean())


def histogram_panels(panels: list[dict], path: Path, title: str, xlabel: str) -> Path:
    """Side-by-side overlaid histograms as a PNG at ``path``; returns ``path``. Each panel: ``title`` and ``series``, a dict
    ``label -> 1-D values`` drawn in tab10 colours in order, on shared bins."""
    if not panels:
        raise ValueError("histogram_panels needs at least one panel")
    fig, axes, colormaps = _new_figure((4.6 * len(panels), 3.8), ncols=len(panels))
    cmap = colormaps["tab10"]
    for ax, panel in zip(axes, panels):
        series = {k: np.asarray(v, dtype=float) for k, v in panel["series"].items()}
        values = np.concatenate(list(series.values()))
        bins = np.linspace(values.min(), values.max(), 31) if values.size and values.max() > values.min() else 10
        for i, (label, v) in enumerate(series.items()):
            ax.hist(v, bins=bins, color=cmap(i % 10), alpha=0.55, label=f"{label} (mean {v.mean():.3g})")
        ax.set_title(panel["title"])
        ax.set_xlabel(xlabel)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save_png_atomic(fig, path)


def quantile_panels(panels: list[dict], path: Path, title: str, xlabel: str, ncols: int) -> Path:
    """Small multiples, ``ncols`` per row, of distributions along an axis: each panel has ``title``, ``ylabel`` and
    ``series``, ``label -> [(x, q05, q25, q50, q75, q95), ...]``, drawn as the median line with a dark 25-75 % band and a
    light 5-95 % band in the label's tab10 colour. A PNG at ``path``; returns ``path``."""
    if not panels:
        raise ValueError("quantile_panels needs at least one panel")
    figure_cls, canvas_cls, colormaps = _require_matplotlib()
    nrows = -(-len(panels) // ncols)
    fig = figure_cls(figsize=(3.2 * ncols, 2.8 * nrows))
    canvas_cls(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    cmap = colormaps["tab10"]
    for ax, panel in zip(axes, panels):
        for i, (label, rows) in enumerate(panel["series"].items()):
            q = np.asarray(rows, dtype=float).reshape(-1, 6)
            ax.fill_between(q[:, 0], q[:, 1], q[:, 5], color=cmap(i % 10), alpha=0.15, linewidth=0)
            ax.fill_between(q[:, 0], q[:, 2], q[:, 4], color=cmap(i % 10), alpha=0.35, linewidth=0)
            ax.plot(q[:, 0], q[:, 3], marker="o", markersize=3, color=cmap(i % 10), label=label)
            ax.set_xticks(q[:, 0])
        ax.set_title(panel["title"], fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(panel["ylabel"], fontsize=8)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _save_png_atomic(fig, path)
