"""Pinned paper-scale records held to the published numbers.

For every benchmark and every main-protocol cell: the pinned record's mean
and CI are recomputed from its stored per-episode scores, and the cell must
compare *within* tolerance unless the benchmark lists it among its known
deviations (with the finding). The list is strict both ways: an unlisted miss
fails, and so does a listed deviation that now reproduces. Cells with no
paper-scale record are skipped with the reason, never passed.
"""

import json
import re

import pytest

from benchmarks import BENCHMARKS
from benchmarks.runner import comparison
from metarepro import results as R

from .conftest import SHARED

MAIN_CELLS = [(b.id, c) for b in BENCHMARKS.values() for c in b.cells()]


@pytest.mark.parametrize("benchmark_id,cell", MAIN_CELLS, ids=[f"{b}:{c.row}/{c.column}" for b, c in MAIN_CELLS])
def test_pinned_paper_record_matches_published(benchmark_id, cell):
    benchmark = BENCHMARKS[benchmark_id]
    path = R.record_path(benchmark_id, "paper", cell.slug)
    if not path.exists():
        pytest.skip(f"not reproduced: no paper-scale record at {path}")
    record = json.loads(path.read_text())
    R.check_record(record)
    rows = [r for r in comparison(benchmark, include_variants=False) if (r["row"], r["column"]) == (cell.row, cell.column)]
    if not rows:  # a claim check or a figure: the paper prints no number for this cell
        assert R.result_hash(record["config"]) == benchmark.result_hash(cell, "paper"), f"{path} is stale"
        pytest.skip(f"{benchmark_id} prints no published number for {cell.label}: the record is current and consistent; "
                    "its claims are compared by `metarepro compare`")
    (row,) = rows
    assert row["verdict"] != "stale", f"{path} is stale: re-run `metarepro reproduce {benchmark_id} --scale paper`"
    known = benchmark.known_deviations.get((cell.row, cell.column))
    if known:
        assert row["verdict"] == "outside", f"listed as a known deviation but now reproduces: {cell.label}; drop it from the list"
    else:
        assert row["verdict"] == "within", (
            f"{cell.label}: reproduced {row['reproduced_mean']:.3f} ± {row['reproduced_ci95']:.3f}, "
            f"published {row['published_mean']} ± {row['published_ci95']}"
        )


def test_every_pinned_record_is_consistent_with_its_scores():
    records = [r for b in BENCHMARKS for r in R.load_records(b)]
    for record in records:
        R.check_record(record)
        assert record["scale"] in R.SCALES
        assert record["provenance"].get("commit"), "a pinned record must name the commit that produced it"


def test_known_deviations_name_real_main_cells():
    for b in BENCHMARKS.values():
        for row, column in b.known_deviations:
            assert row in b.rows and column in b.columns


@pytest.mark.parametrize("benchmark_id", sorted(BENCHMARKS))
def test_published_numbers_appear_in_the_paper_text(benchmark_id):
    """Each transcribed number, as printed, stands in the paper's text."""
    if not BENCHMARKS[benchmark_id].paper:
        pytest.skip(f"{benchmark_id} is an anchor table whose paper is not under ../shared/papers")
    paper = SHARED / "papers" / BENCHMARKS[benchmark_id].paper
    if not paper.exists():
        pytest.skip(f"{paper} is absent: cannot check the transcription")
    text = paper.read_text()
    cells = json.loads((R.PROJECT_ROOT / "results" / "published" / f"{benchmark_id}.json").read_text())["cells"]
    for cell in cells:
        numbers = re.findall(r"\d+\.\d+", cell["printed"])
        assert float(numbers[0]) == cell["mean"]
        if cell.get("interval") is not None:
            assert float(numbers[1]) == cell["interval"]
        # the mean and its interval stand together, e.g. "1.24{\pm}0.21", "0.75 {\pm} 0.15", "43.56 ± 0.84",
        # "$47.01 \pm 1.35$", "58.52 $\pm$ 0.38" or "60.64 <math>\pm</math> 0.31"
        pm = r"\s*(?:\{\\pm\}|\$\\pm\$|<math>\\pm</math>|\\pm|±)\s*"
        pattern = r"(?<![\d.])" + pm.join(re.escape(n) for n in numbers) + r"(?!\d)"
        assert re.search(pattern, text), f"{cell['printed']} ({cell['row']} / {cell['column']}) is not in {paper.name}"
