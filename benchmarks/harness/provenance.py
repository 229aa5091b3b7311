"""Which code trained the model behind a record: its training segments, or what can be said of a record made before
segments were recorded.

A record made since issue #14 lists ``trainings``: per checkpoint, one segment per process that trained it (commit,
dirty flag, iteration range, threads, host, device, wall time, protocol versions; :func:`metarepro.trainer.new_segment`).
An older record gets ``trainings = {"unknown": true, ...}`` from :func:`annotate_unknown`: the commits its training
*may* span, from the commit checked out ``train_wall_time_s`` before ``finished_utc`` to the record's commit, and those
among them that touched the numerics-bearing code. Nothing is reconstructed as a segment: the span is a lower bound
(a run resumed across sessions started earlier still), and which of those commits actually trained it is unknown.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from metarepro import results as R
from metarepro.atomic import atomic_write_text

#: code whose change can change a trained number (the benchmark modules configure; these compute)
NUMERICS_PATHS = ("methods", "metarepro/inner.py", "metarepro/trainer.py", "metarepro/episodes.py", "metarepro/precision.py",
                  "metarepro/data/samplers.py", "metarepro/data/pool.py", "metarepro/data/omniglot.py")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=R.PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()


def commit_at(when: dt.datetime) -> str | None:
    """The last commit of the checkout's history made at or before ``when`` (what a run started then had checked out,
    if it ran on the branch's head)."""
    out = _git("log", "--first-parent", f"--before={when.isoformat()}", "-1", "--format=%H")
    return out or None


def span(first: str, last: str) -> list[str]:
    """Commits after ``first`` up to and including ``last`` (oldest first)."""
    out = _git("rev-list", "--reverse", "--first-parent", f"{first}..{last}")
    return out.split() if out else []


def numerics_commits(commits: list[str]) -> list[str]:
    """Those of ``commits`` that changed a file under :data:`NUMERICS_PATHS`."""
    return [c for c in commits if _git("diff-tree", "--no-commit-id", "--name-only", "-r", c, "--", *NUMERICS_PATHS)]


def unknown_trainings(record: dict) -> dict:
    """The ``trainings`` entry of a record made before segments existed (see the module docstring)."""
    p = record["provenance"]
    finished = dt.datetime.fromisoformat(p["finished_utc"])
    started = finished - dt.timedelta(seconds=float(p.get("train_wall_time_s") or 0.0))
    first = commit_at(started) or p["commit"]
    commits = span(first, p["commit"]) if first != p["commit"] else []
    return {"unknown": True,
            "may_span_commits": [first, p["commit"]],
            "window_utc": [started.isoformat(timespec="seconds"), p["finished_utc"]],
            "commits_after_first": len(commits),
            "numerics_commits": numerics_commits(commits),
            "dirty_at_end": bool(p.get("dirty")),
            "note": ("made before records named their training segments: the training ran at least from the commit checked out "
                     f"{p.get('train_wall_time_s', 0):.0f} s of training before it finished (earlier still if it was resumed "
                     "across sessions) to the record's commit; which of these commits trained it is not known")}


def annotate_unknown(benchmark_ids: list[str] | None = None) -> list[Path]:
    """Give every record without ``trainings`` its :func:`unknown_trainings` entry (written atomically; the scores,
    configuration and hash are untouched). Returns the records written."""
    import json

    from benchmarks import BENCHMARKS

    written = []
    for benchmark_id in benchmark_ids or list(BENCHMARKS):
        for path in sorted((R.results_dir() / "reproduced" / benchmark_id).glob("*/*.json")):
            record = json.loads(path.read_text())
            if "trainings" in record or not record["provenance"].get("commit"):
                continue
            record["trainings"] = unknown_trainings(record)
            atomic_write_text(path, json.dumps(record, indent=1) + "\n")
            written.append(path)
    return written


def core_share(segment: dict) -> str:
    """``" (0.62 of its core(s))"``: the segment's CPU time over its wall time x threads, or ``""`` where the segment
    predates CPU times or ran for no measurable time. Well below 1, other work shared the cores and its times are
    inflated (a GPU segment's CPU share says little: the host mostly waits)."""
    wall, cpu = segment.get("wall_time_s") or 0.0, segment.get("cpu_time_s")
    if cpu is None or wall <= 0:
        return ""
    return f" ({cpu / (wall * segment['threads']):.2f} of its core(s))"


def training_summary(record: dict) -> str:
    """One line for ``compare``: the segments and commits that trained the record's model(s), and whether they span a
    protocol change (recorded) or numerics commits (unknown segments)."""
    trainings = record.get("trainings")
    if trainings is None:
        return "segments: not annotated"
    if isinstance(trainings, dict):
        first, last = (c[:8] for c in trainings["may_span_commits"])
        where = f"commit {last}" if first == last else f"commits {first}..{last}"
        numerics = trainings["numerics_commits"]
        text = f"segments unknown: trained over at least {where}"
        if numerics:
            text += f", {len(numerics)} changing numerics code ({', '.join(c[:8] for c in numerics)})"
        return text + (" (dirty)" if trainings["dirty_at_end"] else "")
    segments = [s for t in trainings for s in t["segments"]]
    recorded = [s for s in segments if not s.get("unknown")]
    commits = sorted({s["commit"][:8] + ("+dirty" if s["dirty"] else "") for s in recorded if s.get("commit")})
    text = f"{len(segments)} segment(s), commit(s) {', '.join(commits) or '?'}"
    if len(recorded) < len(segments):
        text += "; earlier iterations from before segments were recorded"
    for t in trainings:
        versions = [s["protocol_versions"] for s in t["segments"] if "protocol_versions" in s]
        if any(v != versions[0] for v in versions):
            text += f"; SPANS A PROTOCOL CHANGE in {t['checkpoint']}"
    return text
