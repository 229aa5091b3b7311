"""Published and reproduced numbers as data: records, provenance, comparison.

* ``results/published/<benchmark>.json``: cells transcribed from the paper,
  with the kind of interval it prints and where the number stands.
* ``results/reproduced/<benchmark>/<scale>/<cell>.json``: one record per cell,
  written only by runs, holding the per-episode scores themselves (so mean
  and CI can be recomputed and a hand edit shows), the configuration and its
  hash, the deviations this machine forced, and the provenance.

Markdown is rendered from these files, never edited by hand.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarepro.atomic import atomic_write_text
from metarepro.evaluate import Z95, mean_ci95, t975
from metarepro.schemas import load_validated

SCALES = ("smoke", "quick", "paper")
VERDICTS = ("within", "outside", "not_reproduced", "stale", "quick_only", "not_comparable")
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def results_dir() -> Path:
    """``results/`` of the checkout, or ``$METAREPRO_RESULTS``: the committed (pinned) records."""
    return Path(os.environ.get("METAREPRO_RESULTS", PROJECT_ROOT / "results"))


def local_results_dir() -> Path:
    """Where a user's own runs write (``reproduce`` without ``--pin``): ``results/local/`` (git-ignored), or
    ``$METAREPRO_LOCAL_RESULTS``. ``compare`` shows its records beside the pinned ones; nothing here is pinned."""
    return Path(os.environ.get("METAREPRO_LOCAL_RESULTS", results_dir() / "local"))


def config_hash(config: dict) -> str:
    """Stable short digest of a JSON-able configuration."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: configuration keys that steer only ``reproduce``'s rough time estimate, never a cell's number
ESTIMATE_KEYS = ("ms_per_iteration_estimate", "ms_per_test_task_estimate")


def result_hash(config: dict) -> str:
    """Digest of what determines a cell's number: its configuration less :data:`ESTIMATE_KEYS`. A record is current
    while the hash of the configuration it stores equals its cell's present one, so the rough estimates can be
    re-tuned from measured times without making records stale (a record's own ``config_hash`` keeps the full one)."""
    return config_hash({k: v for k, v in config.items() if k not in ESTIMATE_KEYS})


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


# ----------------------------------------------------------------- published

#: interval kind -> the factor that turns the printed interval into a 95% half-width of the mean (None: it is not one)
INTERVAL_KINDS = {
    "ci95": 1.0,
    "se": Z95,
    # a standard deviation over 3 training seeds of a mean over those seeds (MAML++'s "mean and std over 3 runs"): the
    # Student-t half-width of that mean, t(0.975, 2) / sqrt(3)
    "sd3": t975(2) / math.sqrt(3),
    # the standard deviation of per-query 0/1 correctness (ALFA's code prints its np.std, labelled %): a spread of the
    # queries, not an interval on the mean; compared by the printed mean's rounding
    "sd-query": None,
    "none": None,
}


@dataclass(frozen=True)
class PublishedCell:
    """One number as the paper prints it.

    ``interval`` is in the paper's units and of kind ``interval_kind`` (:data:`INTERVAL_KINDS`): ``"ci95"`` (a 95%
    half-width), ``"se"`` (one standard error, converted with 1.96), ``"sd3"`` (a standard deviation over 3 seeds,
    converted to the t half-width of their mean), ``"sd-query"`` (a spread, not an interval) or ``"none"``.
    """

    row: str
    column: str
    mean: float
    interval: float | None
    interval_kind: str
    source: str
    printed: str | None = None
    cited: bool = False  # the paper quotes the number from another paper (with that paper's interval)
    printed_rounding: float | None = None  # where the printed text's units differ from the metric's (Table 7's "16m/16.8h")

    @property
    def ci95(self) -> float | None:
        factor = INTERVAL_KINDS[self.interval_kind]
        return None if factor is None or self.interval is None else self.interval * factor

    @property
    def rounding(self) -> float:
        """Half a unit of the printed mean's last digit (``"99.7"`` -> 0.05): how far the true mean may lie from a number
        printed without an interval; 0 when the printed text is unknown."""
        if self.printed_rounding is not None:
            return self.printed_rounding
        if not self.printed:
            return 0.0
        match = re.search(r"\d+(?:\.(\d+))?", self.printed)
        return 0.5 * 10.0 ** -len(match.group(1) or "") if match else 0.0

    @property
    def half_width(self) -> float:
        """The published side of a comparison: its 95% half-width, or, where the paper prints none, its rounding."""
        return self.ci95 if self.ci95 is not None else self.rounding


def load_published(benchmark_id: str, root: Path | None = None) -> list[PublishedCell]:
    path = (root or results_dir()) / "published" / f"{benchmark_id}.json"
    if not path.exists():
        raise FileNotFoundError(f"no published numbers for {benchmark_id}: {path} is missing")
    data = load_validated(path, "published")
    cells = []
    for c in data["cells"]:
        kind = c.get("interval_kind", data.get("interval_kind", "none"))
        if kind not in INTERVAL_KINDS:
            raise ValueError(f"{path}: unknown interval kind {kind!r}")
        cells.append(PublishedCell(c["row"], c["column"], float(c["mean"]), c.get("interval"), kind, c.get("source", data.get("source", "")),
                                   c.get("printed"), bool(c.get("cited", False)), c.get("rounding")))
    return cells


# ---------------------------------------------------------------- provenance


#: what runs: a change here (tracked or a new file) makes a record's code differ from its commit ("dirty"); what the suite
#: writes itself (records, rendered pages, figures, pins, dvc.lock, checkpoints) and the docs never do
CODE_PATHS = ("metarepro", "methods", "benchmarks", "pyproject.toml", "constraints.txt")


def git_state(root: Path = PROJECT_ROOT) -> dict:
    """Commit of the checkout and whether the code that runs (:data:`CODE_PATHS`) differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=normal", "--", *CODE_PATHS))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def provenance(**fields) -> dict:
    """Environment of a run, plus the caller's fields (command, engine, ...)."""
    import torch

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(fields if "commit" in fields else {**git_state(), **fields}),
    }


# ------------------------------------------------------------------- records


def record_path(benchmark_id: str, scale: str, slug: str, root: Path | None = None) -> Path:
    return (root or results_dir()) / "reproduced" / benchmark_id / scale / f"{slug}.json"


def make_record(
    *,
    benchmark: str,
    row: str,
    column: str,
    variant: str,
    scale: str,
    metric: str,
    scores: np.ndarray,
    config: dict,
    deviations: list[str],
    provenance: dict,
    extra: dict | None = None,
    score_unit: str = "episode",
    seed: int = 0,
) -> dict:
    """A reproduced cell; mean and CI are derived from ``scores`` (one per test episode, or per run: ``score_unit``)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    mean, ci = mean_ci95(scores, score_unit)
    return {
        "benchmark": benchmark,
        "row": row,
        "column": column,
        "variant": variant,
        "seed": seed,
        "scale": scale,
        "metric": metric,
        "mean": mean,
        "ci95": ci,
        "n_episodes": int(len(scores)),
        "scores": [float(s) for s in scores],
        **({"score_unit": score_unit} if score_unit != "episode" else {}),
        "config": config,
        "config_hash": config_hash(config),
        "deviations": list(deviations),
        "provenance": provenance,
        **(extra or {}),
    }


def write_record(record: dict, slug: str, root: Path | None = None) -> Path:
    """Write a record atomically; returns its path. A divergence note of the same cell (:func:`divergence_path`) goes:
    the record supersedes it."""
    path = record_path(record["benchmark"], record["scale"], slug, root)
    written = atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    divergence_path(record["benchmark"], record["scale"], slug, root).unlink(missing_ok=True)
    return written


def divergence_path(benchmark_id: str, scale: str, slug: str, root: Path | None = None) -> Path:
    """Where ``reproduce`` notes a cell whose training stopped on a non-finite loss and left no record:
    ``<results>/diverged/<benchmark>/<scale>/<cell>.json`` (a finding, kept beside the records it stands in for)."""
    return (root or results_dir()) / "diverged" / benchmark_id / scale / f"{slug}.json"


#: what a divergence note holds (:func:`write_divergence`)
DIVERGENCE_KEYS = ("benchmark", "row", "column", "variant", "scale", "seed", "config_hash", "protocol_versions", "iteration",
                   "iterations", "message", "provenance")


def _checked_divergence(note: dict, where: str) -> dict:
    missing = [k for k in DIVERGENCE_KEYS if k not in note]
    if missing:
        raise ValueError(f"{where}: a divergence note needs {missing}")
    return note


def write_divergence(note: dict, slug: str, root: Path | None = None) -> Path:
    """Write a divergence note (:data:`DIVERGENCE_KEYS`) atomically; returns its path."""
    path = divergence_path(note["benchmark"], note["scale"], slug, root)
    return atomic_write_text(path, json.dumps(_checked_divergence(note, str(path)), indent=1) + "\n")


def read_divergence(path: Path) -> dict:
    """One divergence note; a file missing a key is refused with its path."""
    return _checked_divergence(json.loads(path.read_text()), str(path))


def load_divergences(benchmark_id: str, root: Path | None = None) -> list[dict]:
    """Every divergence note of ``benchmark_id`` (any scale)."""
    return [read_divergence(p) for p in sorted(((root or results_dir()) / "diverged" / benchmark_id).glob("*/*.json"))]


#: records parsed once per benchmark inside :func:`records_read_once` (``None``: read from disk on every call)
_RECORDS_READ: dict[Path, list[dict]] | None = None


@contextlib.contextmanager
def records_read_once():
    """Within this block :func:`load_records` parses each benchmark's records once.

    For read-only reports that ask for the same records hundreds of times (``metarepro list --timings``: 510 calls,
    5 of its 6 seconds); records written inside the block are not seen, and callers must not modify what they get.
    """
    global _RECORDS_READ
    previous, _RECORDS_READ = _RECORDS_READ, {}
    try:
        yield
    finally:
        _RECORDS_READ = previous


def load_records(benchmark_id: str, root: Path | None = None) -> list[dict]:
    """Every record of ``benchmark_id`` (any scale), each checked against :data:`metarepro.schemas.RECORD`."""
    base = (root or results_dir()) / "reproduced" / benchmark_id
    if _RECORDS_READ is None:
        return [load_validated(p, "record") for p in sorted(base.glob("*/*.json"))]
    if base not in _RECORDS_READ:
        _RECORDS_READ[base] = [load_validated(p, "record") for p in sorted(base.glob("*/*.json"))]
    return list(_RECORDS_READ[base])


def check_record(record: dict) -> None:
    """Raise if a record's mean/CI disagree with its own per-episode scores, or its configuration with its hash."""
    label = f"{record['benchmark']}/{record['row']}/{record['column']}/{record['variant']}"
    if config_hash(record["config"]) != record["config_hash"]:
        raise ValueError(f"record {label}: its configuration does not hash to its config_hash {record['config_hash']}: edited by hand?")
    mean, ci = mean_ci95(record["scores"], record.get("score_unit", "episode"))
    if not (np.isclose(mean, record["mean"], rtol=1e-9, atol=1e-12) and np.isclose(ci, record["ci95"], rtol=1e-9, atol=1e-12)):
        raise ValueError(
            f"record {label} states {record['mean']} ± {record['ci95']} but its scores give {mean} ± {ci}: edited by hand?"
        )


# ---------------------------------------------------------------- comparison


def within_tolerance(published_mean: float, published_ci95: float | None, mean: float, ci95: float) -> bool:
    """95% intervals overlap: ``|difference| <= published + reproduced half-widths`` (the suite's verdict, ``within``)."""
    return abs(mean - published_mean) <= (published_ci95 or 0.0) + ci95


def difference_ci95(published_ci95: float | None, ci95: float) -> float:
    """95% half-width of the difference of two independent estimates, ``sqrt(a^2 + b^2)``: stricter than the overlap
    rule (which adds the half-widths, ~1.4x wider when they are equal)."""
    return math.hypot(published_ci95 or 0.0, ci95)


def difference_within(published_mean: float, published_ci95: float | None, mean: float, ci95: float) -> bool:
    """The difference test: ``|difference| <= sqrt(published^2 + reproduced^2)`` (shown beside ``within``)."""
    return abs(mean - published_mean) <= difference_ci95(published_ci95, ci95)


def compare_cell(
    published: PublishedCell,
    records: list[dict],
    current_hash: str,
    variant: str = "main",
    known_deviation: str | None = None,
    current_quick_hash: str | None = None,
) -> dict:
    """Published vs reproduced for one cell (``records`` of that cell, any scale); the hashes are the cell's present
    :func:`result_hash` at paper and quick scale (a record whose configuration hashes otherwise is stale)."""
    by_scale = {r["scale"]: r for r in records}
    paper, quick = by_scale.get("paper"), by_scale.get("quick")
    row = {
        "benchmark": None,
        "row": published.row,
        "column": published.column,
        "variant": variant,
        "published_mean": published.mean,
        "published_ci95": published.ci95,
        "published_interval_kind": published.interval_kind,
        "published_half_width": published.half_width,  # the 95% half-width, or the printed number's rounding
        "published_cited": published.cited,
        "published_printed": published.printed,
        "published_interval": published.interval,
        "reproduced_mean": None,
        "reproduced_ci95": None,
        "difference": None,
        "scale": None,
        "n_episodes": None,
        "deviations": [],
        "known_deviation": known_deviation,
        "verdict": "not_reproduced",
        "difference_ci95": None,
        "difference_verdict": None,
    }
    shown = paper or quick
    if shown is not None:
        row.update(
            reproduced_mean=shown["mean"],
            reproduced_ci95=shown["ci95"],
            difference=shown["mean"] - published.mean,
            scale=shown["scale"],
            n_episodes=shown["n_episodes"],
            deviations=shown.get("deviations", []),
        )
    if paper is not None:
        if result_hash(paper["config"]) != current_hash:
            row["verdict"] = "stale"
        else:
            ok = within_tolerance(published.mean, published.half_width, paper["mean"], paper["ci95"])
            row["verdict"] = "within" if ok else "outside"
            strict = difference_within(published.mean, published.half_width, paper["mean"], paper["ci95"])
            row.update(difference_ci95=difference_ci95(published.half_width, paper["ci95"]),
                       difference_verdict="within" if strict else "outside")
    elif quick is not None:
        stale = current_quick_hash is not None and result_hash(quick["config"]) != current_quick_hash
        row["verdict"] = "stale" if stale else "quick_only"
    return row


def paired_difference(a: dict, b: dict) -> tuple[float, float]:
    """Mean and 95% half-width of ``b - a`` over the same test episodes.

    Both records must have scored the very same episodes (same test seed,
    count, ways, shots, queries and points), so per-episode differences are
    meaningful; the paired interval is much tighter than comparing two
    independent intervals. Records whose scores are run means pair run ``i``
    with run ``i`` (both scored the same fixed episodes) and take the t
    interval over the run differences: the runs' own variance stays in it.
    """
    keys = ("test_seed", "test_tasks", "test_episodes", "test_points", "shots", "test_ways", "test_shots", "queries",
            "task_family")
    mismatched = [k for k in keys if a["config"].get(k) != b["config"].get(k)]
    units = {a.get("score_unit", "episode"), b.get("score_unit", "episode")}
    if mismatched or len(a["scores"]) != len(b["scores"]) or len(units) > 1:
        raise ValueError(f"records did not score the same test episodes (differ in {mismatched or 'count or unit'})")
    return mean_ci95(np.asarray(b["scores"]) - np.asarray(a["scores"]), units.pop())


def published_text(r: dict) -> str:
    """The published side of a comparison row as the paper prints it, with its interval's kind: ``"28.72 ± 0.16 (SE;
    ± 0.314 at 95%)"``, ``"48.07 ± 1.75 (95%, cited)"``, ``"99.62 ± 0.08 (SD over 3 seeds; ± 0.199 at 95%)"``,
    ``"69.12 ± 0.47 (per-query SD, not an interval) (rounding ± 0.005)"``, ``"0.99 (rounding ± 0.005)"``,
    ``"16m/16.8h = 60480 (rounding ± 180)"``; rows without the printed text (older callers) show the 95% form."""
    kind, printed, cited = r.get("published_interval_kind"), r.get("published_printed"), r.get("published_cited")
    numbers = re.findall(r"\d+(?:\.\d+)?", printed or "")
    if not numbers:
        text = f"{r['published_mean']:.3f}" + ("" if r["published_ci95"] is None else f" ± {r['published_ci95']:.3f}")
    elif kind in ("se", "ci95", "sd3") and len(numbers) >= 2:
        label = {"se": "SE", "sd3": "SD over 3 seeds", "ci95": "95%"}[kind]
        text = f"{numbers[0]} ± {numbers[1]} ({label}" + ("" if kind == "ci95" else f"; ± {r['published_ci95']:.3g} at 95%")
        return text + (", cited)" if cited else ")")
    elif kind == "sd-query" and len(numbers) >= 2:
        text = f"{numbers[0]} ± {numbers[1]} (per-query SD, not an interval)"
    elif float(numbers[0]) == r["published_mean"]:
        text = numbers[0]
    else:  # printed in other units (Table 7's "16m/16.8h")
        text = f"{printed.strip()} = {r['published_mean']:g}"
    if r["published_ci95"] is None and r.get("published_half_width"):
        text += f" (rounding ± {r['published_half_width']:g})"
    return text + (" (cited)" if cited else "")


def markdown_table(rows: list[dict], metric: str = "") -> str:
    """Render comparison rows as a GitHub markdown table; a ``seed`` column where any row is of a training seed but 0 (each
    seed is its own row, so without it a multi-seed cell would read as the same row repeated)."""
    from tabulate import tabulate

    def fmt(mean, ci):
        if mean is None:
            return "—"
        return f"{mean:.3f} ± {ci:.3f}" if ci is not None else f"{mean:.3f}"

    seeded = any(r.get("seed", 0) for r in rows)
    body = []
    for r in rows:
        verdict = r["verdict"].replace("_", " ")
        if r.get("not_comparable"):
            verdict += f" ({r['not_comparable']})"
        if r["verdict"] == "outside" and r.get("known_deviation"):
            verdict += " (known deviation)"
        if r["variant"] != "main":
            verdict += " · variant, post hoc"
        body.append(
            [
                r["row"],
                r["column"],
                r["variant"],
                *([str(r.get("seed", 0))] if seeded else []),
                published_text(r),
                fmt(r["reproduced_mean"], r["reproduced_ci95"]),
                "—" if r["difference"] is None else f"{r['difference']:+.3f}",
                "—" if r.get("difference_ci95") is None else f"± {r['difference_ci95']:.3f}: {r['difference_verdict']}",
                r["scale"] or "—",
                verdict,
            ]
        )
    headers = ["row", "column", "protocol", *(["seed"] if seeded else []), f"published {metric}".strip(),
               f"reproduced {metric}".strip(), "difference", "difference test (95% CI)", "scale", "verdict (overlap)"]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
