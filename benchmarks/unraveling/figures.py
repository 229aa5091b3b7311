"""Drawing Goldblum et al.'s Figs. 2 and 3 from the suite's records (the scores and points each record keeps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.harness.base import Cell
from metarepro import results as R


def _records(benchmark, scale: str) -> dict[tuple[str, str], dict]:
    return {(r["row"], r["column"]): r for r in R.load_records(benchmark.id) if r["scale"] == scale and r["variant"] == "main"
            and Cell.of(r).seed == 0}


def lda_panels(benchmark, scale: str) -> list[Path]:
    """Fig. 2: one LDA scatter per row (the first draw's three classes), titled with the row's mean ``R_FC``."""
    from metarepro.figures import embedding_panels

    records = _records(benchmark, scale)
    panels = []
    for row in benchmark.rows:
        record = records.get((row, "LDA"))
        if record is None or not record.get("lda_points"):
            continue
        points = record["lda_points"]
        _, labels = np.unique(points["class"], return_inverse=True)
        panels.append({"title": f"{row} (R_FC {record['mean']:.3g})", "points": np.c_[points["x"], points["y"]], "labels": labels,
                       "is_support": np.zeros(len(labels), bool)})
    if not panels:
        return []
    return [embedding_panels(panels, benchmark.figure_path(scale), f"{benchmark.title} [{scale}]")]


def distance_histograms(benchmark, scale: str) -> list[Path]:
    """Fig. 3: per column, the distances of Reptile and W-Clustering overlaid."""
    from metarepro.figures import histogram_panels

    records = _records(benchmark, scale)
    panels = [{"title": column, "series": {row: records[(row, column)]["scores"] for row in benchmark.rows if (row, column) in records}}
              for column in benchmark.columns]
    panels = [p for p in panels if p["series"]]
    if not panels:
        return []
    return [histogram_panels(panels, benchmark.figure_path(scale), f"{benchmark.title} [{scale}]", benchmark.metric)]
