"""What the regression suite holds fixed, as data: pinned records, claim verdicts and the bands of known deviations.

* ``results/pins.json``: every paper-scale record (``<benchmark>/<slug>``) that must exist, and every claim verdict
  (``yes``, ``reversed``, ``no difference``, ``too few seeds ...``) as :func:`benchmarks.harness.runner.all_claims` reads it
  today. Written by ``metarepro pins --update``, never by hand: a removed record or a changed verdict then shows in the
  diff of a commit that says why. A deleted record or a verdict that moved without that update fails the tests.
* ``results/known-deviations.json``: each known deviation with the mean and 95% half-width its finding quotes; the
  pinned record must stay within that band (a record rewritten to any other value, even one still "outside", fails).

Every check returns a list of problems (empty: all hold), so the tests can run them on a tampered copy of ``results/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from metarepro import results as R
from metarepro.atomic import atomic_write_text
from metarepro.schemas import load_validated

KNOWN_DEVIATIONS_FILE = "known-deviations.json"
PINS_FILE = "pins.json"


def pins_path(root: Path | None = None) -> Path:
    return (root or R.results_dir()) / PINS_FILE


def current_pins() -> dict:
    """The pins as the records under ``results/`` give them now."""
    from benchmarks import BENCHMARKS
    from benchmarks.harness.runner import all_claims

    records = sorted(f"{p.parent.parent.name}/{p.stem}" for p in (R.results_dir() / "reproduced").glob("*/paper/*.json"))
    claims = [{"benchmark": b.id, **{k: c[k] for k in ("claim", "column", "protocol", "scale", "holds")}}
              for b in BENCHMARKS.values() for c in all_claims(b)]
    return {"description": "written by `metarepro pins --update` (benchmarks/harness/pins.py); tests/test_regression.py fails when a "
                           "pinned paper-scale record is missing or a claim verdict differs",
            "paper_records": records, "claims": claims}


def write_pins() -> Path:
    path = pins_path()
    atomic_write_text(path, json.dumps(current_pins(), indent=1) + "\n")
    return path


def load_pins() -> dict:
    path = pins_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `metarepro pins --update` and commit it")
    return json.loads(path.read_text())


def _claim_key(c: dict) -> tuple:
    return c["benchmark"], c["claim"], c["column"], c["protocol"], c["scale"]


def check_pins() -> list[str]:
    """Problems between ``results/pins.json`` and the records: a pinned paper record missing, a paper record not
    pinned, a claim verdict changed, gone or new."""
    pinned, now = load_pins(), current_pins()
    update = "if that is intended, run `metarepro pins --update` and commit the change with the reason"
    problems = [f"pinned paper-scale record results/reproduced/{b}/paper/{slug}.json is missing ({update})"
                for b, slug in (r.split("/", 1) for r in sorted(set(pinned["paper_records"]) - set(now["paper_records"])))]
    problems += [f"paper-scale record results/reproduced/{b}/paper/{slug}.json is not pinned ({update})"
                 for b, slug in (r.split("/", 1) for r in sorted(set(now["paper_records"]) - set(pinned["paper_records"])))]
    was, is_ = {_claim_key(c): c["holds"] for c in pinned["claims"]}, {_claim_key(c): c["holds"] for c in now["claims"]}
    for key in sorted(set(was) | set(is_)):
        label = f"{key[0]}: {key[1]!r} ({key[2]}, {key[3]}, {key[4]} scale)"
        if key not in is_:
            problems.append(f"{label}: pinned verdict {was[key]!r}, but the claim is no longer checked ({update})")
        elif key not in was:
            problems.append(f"{label}: verdict {is_[key]!r} is not pinned ({update})")
        elif was[key] != is_[key]:
            problems.append(f"{label}: verdict {is_[key]!r}, pinned {was[key]!r} ({update})")
    return problems


def load_known_deviation_bands() -> list[dict]:
    path = R.results_dir() / KNOWN_DEVIATIONS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: each known deviation needs its quoted mean and 95% half-width")
    return json.loads(path.read_text())["deviations"]


def check_known_deviation_bands() -> list[str]:
    """Problems with the known deviations: one listed in a benchmark without a band or the reverse, a record missing, or
    a record whose mean left ``quoted mean +/- quoted 95% half-width``."""
    from benchmarks import BENCHMARKS
    from benchmarks.harness.base import Cell

    bands = {(d["benchmark"], d["row"], d["column"]): d for d in load_known_deviation_bands()}
    listed = {(b.id, row, column) for b in BENCHMARKS.values() for row, column in b.known_deviations}
    problems = [f"{b}: {r} / {c} is a known deviation without a band in {KNOWN_DEVIATIONS_FILE}" for b, r, c in sorted(listed - set(bands))]
    problems += [f"{KNOWN_DEVIATIONS_FILE}: {b}: {r} / {c} is not among the benchmark's known deviations"
                 for b, r, c in sorted(set(bands) - listed)]
    for (b, row, column), band in sorted(bands.items()):
        path = R.record_path(b, "paper", Cell(row, column).slug)
        if not path.exists():
            problems.append(f"{b}: {row} / {column}: known deviation with no paper-scale record at {path}")
            continue
        record = json.loads(path.read_text())
        if abs(record["mean"] - band["quoted_mean"]) > band["quoted_ci95"]:
            problems.append(f"{b}: {row} / {column}: pinned mean {record['mean']:.3f} left its finding's band "
                            f"{band['quoted_mean']} ± {band['quoted_ci95']}: re-read the finding, then update both")
    return problems


def cell_problems(benchmark, cell) -> list[str]:
    """A main cell's pinned paper-scale record against the paper: consistent with its scores, current, and ``within``
    unless listed as a known deviation, in which case ``outside`` (strict both ways). No record: no problem here
    (:func:`check_pins` fails a pinned record that went missing)."""
    from benchmarks.harness.runner import comparison

    path = R.record_path(benchmark.id, "paper", cell.slug)
    if not path.exists():
        return []
    record = load_validated(path, "record")
    try:
        R.check_record(record)
    except ValueError as err:
        return [str(err)]
    rows = [r for r in comparison(benchmark, include_variants=False)
            if (r["row"], r["column"], r.get("seed", 0)) == (cell.row, cell.column, cell.seed)]
    if not rows:  # a claim check or a figure: the paper prints no number for this cell
        return [] if R.result_hash(record["config"]) == benchmark.result_hash(cell, "paper") else [f"{path} is stale"]
    (row,) = rows
    if row["verdict"] == "stale":
        return [f"{path} is stale: re-run `metarepro reproduce {benchmark.id} --scale paper`"]
    if benchmark.known_deviations.get((cell.row, cell.column)):
        return [] if row["verdict"] == "outside" else [f"{benchmark.id}: {cell.label} is listed as a known deviation but now "
                                                       "reproduces: drop it from the list and from known-deviations.json"]
    if row["verdict"] != "within":
        return [f"{benchmark.id}: {cell.label}: reproduced {row['reproduced_mean']:.3f} ± {row['reproduced_ci95']:.3f}, "
                f"published {row['published_mean']} ± {row['published_half_width']}"]
    return []


def regression_problems() -> list[str]:
    """Everything the regression suite holds, on the ``results/`` at hand (``METAREPRO_RESULTS``): each main cell
    (:func:`cell_problems`), the pins (:func:`check_pins`) and the known deviations' bands."""
    from benchmarks import BENCHMARKS

    problems = [p for b in BENCHMARKS.values() for c in b.cells(scale="paper") for p in cell_problems(b, c)]
    return problems + check_pins() + check_known_deviation_bands()
