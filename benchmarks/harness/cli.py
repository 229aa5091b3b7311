"""The ``metarepro`` command: list, reproduce, time, compare, evaluate, render."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from benchmarks import BENCHMARKS, UnknownBenchmarkError, get_benchmark
from benchmarks.harness.base import MAIN, Benchmark, Cell
from benchmarks.harness.runner import (
    all_claims,
    checkpointed_runs,
    claim_checks,
    comparison,
    correlation_checks,
    estimated_hours,
    extra_rows,
    failing,
    level_checks,
    projected_seconds,
    record_is_current,
    reproduce,
    runs_dir,
    timed_record,
)
from metarepro import results as R
from metarepro.atomic import atomic_write_text
from metarepro.data.store import DataError, data_root
from metarepro.evaluate import mean_ci95
from metarepro.inner import ENGINES
from metarepro.precision import PRECISIONS
from metarepro.runtime import keep_freed_memory
from metarepro.schemas import load_validated
from metarepro.trainer import CheckpointError, NonFiniteLossError


def _status(benchmark: Benchmark) -> dict:
    rows = comparison(benchmark)
    main = [r for r in rows if r["variant"] == MAIN]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in R.VERDICTS}
    paper_h = estimated_hours(benchmark, benchmark.cells(variants=["all"]), "paper")  # measured where a record is timed
    return {
        "id": benchmark.id,
        "published": len(main),
        "reproduced (paper)": sum(r["verdict"] in ("within", "outside") for r in main),
        "within": sum(r["verdict"] == "within" for r in main),
        "quick only": sum(r["verdict"] == "quick_only" for r in main),
        "stale": counts["stale"],
        "variant cells": len(rows) - len(main),
        "paper-scale job-hours (measured where timed)": round(paper_h, 1),
        "title": benchmark.title,
    }


def timing_rows(benchmark: Benchmark, meta_iterations: dict | None = None) -> list[dict]:
    """Per main cell: the measured time per training iteration (its timed record) and the projected paper-scale hours.

    Projection (:func:`benchmarks.harness.runner.projected_seconds`): the record's training time scaled to the paper's
    iterations plus its test time scaled to the paper's test episodes, on the machine and threads the record names.
    Cells without a timed record show the benchmark's rough estimate. Benchmarks with no timed record give no rows.
    ``meta_iterations`` (``metarepro time``'s file, :func:`benchmarks.harness.cell_timing.load_timings`) adds each cell's
    time per meta-iteration before (per-task loop) and after (batched).
    """
    from benchmarks.harness.cell_timing import before_after

    timed = (meta_iterations or {}).get(benchmark.id)
    rows = []
    for cell in benchmark.cells():
        record = timed_record(benchmark, cell)
        hours = projected_seconds(benchmark, cell, "paper") / 3600
        iterations = benchmark.config(cell, "paper").get("iterations", "-")
        if record is None:
            row = {"cell": cell.label, "measured at": "-", "ms / iteration": "-", "paper iterations": iterations,
                   "projected paper h": f"~{hours:.1f} (estimate)"}
        else:
            t = record["timing"]
            row = {"cell": cell.label, "measured at": f"{record['scale']}, {t['threads']} thread(s), {t['device']}",
                   "ms / iteration": round(t["ms_per_iteration"], 1), "paper iterations": iterations,
                   "projected paper h": round(hours, 1)}
        rows.append({**row, **before_after(timed.get(cell.label))} if timed is not None else row)
    return rows if any(r["measured at"] != "-" for r in rows) else []


def cmd_list(args) -> int:
    from tabulate import tabulate

    with R.records_read_once():
        table = [_status(b) for b in BENCHMARKS.values()]
        if args.format == "json":
            out = {"benchmarks": table}
            if args.timings:
                from benchmarks.harness.cell_timing import load_timings

                meta_iterations = load_timings()
                out["timings"] = {b.id: timing_rows(b, meta_iterations) for b in BENCHMARKS.values()}
            if args.runs:
                out["runs"] = checkpointed_runs()
            print(json.dumps(out, indent=1, default=str))
            return 0
        print(tabulate(table, headers="keys", tablefmt="github"))
        if args.timings:
            from benchmarks.harness.cell_timing import load_timings, timings_path

            meta_iterations = load_timings()
            for b in BENCHMARKS.values():
                rows = timing_rows(b, meta_iterations)
                if rows:
                    print(f"\n{b.id}: measured time per meta-iteration and projected paper-scale hours (one job)")
                    print(tabulate(rows, headers="keys", tablefmt="github"))
            if meta_iterations:
                print(f"\nbefore / after: `metarepro time`, best of interleaved rounds, {timings_path()}")
        if args.runs:
            runs = checkpointed_runs()
            print(f"\ncheckpoints under {runs_dir()} (a run resumes from its checkpoint when `reproduce` is asked for its cells)")
            print(tabulate(runs, headers="keys", tablefmt="github") if runs else "none")
    return 0


def cmd_time(args) -> int:
    from tabulate import tabulate

    from benchmarks.harness.cell_timing import before_after, save_timing, time_cell, timings_path

    benchmark = get_benchmark(args.benchmark)
    message = missing_data(benchmark, args.scale)
    if message:
        raise DataError(message)
    import torch

    torch.set_num_threads(args.threads)
    cells = [Cell.parse(c) for c in args.cells] if args.cells else benchmark.cells()
    command = " ".join(shlex.quote(a) for a in ["metarepro", *args.argv])
    git = R.git_state()  # the code that runs is the code at launch, whatever is committed meanwhile
    rows, seen = [], {}
    for cell in cells:
        benchmark.check_cell(cell)
        key = benchmark.training_key(cell, args.scale)  # cells trained by one model share its timing
        if key not in seen:
            print(f"{benchmark.id} {cell.label}: timing {args.rounds} round(s) per engine ...", flush=True)
            seen[key] = time_cell(benchmark, cell, args.scale, args.rounds, args.device)
        save_timing(benchmark.id, cell, seen[key], args.device, command, git)
        rows.append({"cell": cell.label, **before_after(seen[key]), "load": round(seen[key]["load_average_1min"], 2)})
    print(tabulate(rows, headers="keys", tablefmt="github"))
    print(f"wrote {timings_path(args.device)}")
    return 0


def render_readme(path: Path | None = None) -> Path:
    """Write ``results/README.md`` from the records (never edit it by hand)."""
    path = path or R.results_dir() / "README.md"
    out = [
        "# Results",
        "",
        "Rendered by `metarepro render` from `published/` and `reproduced/`; do not edit by hand.",
        "Verdicts: *within* — the published and reproduced 95% intervals overlap (paper scale only; where a paper prints no",
        "interval, the printed number's rounding, e.g. ± 0.05 for 99.7, is its half-width). Beside it, the stricter",
        "*difference test*: |difference| ≤ the 95% half-width of the difference, sqrt(published² + reproduced²);",
        "*outside*; *quick only* — only a reduced-budget run exists, shown for the trend, not a reproduction;",
        "*stale* — the benchmark's configuration changed since the record was made; *not reproduced*;",
        "*cited* — a baseline the paper quotes from other work, shown for reference and not trained by the suite.",
        "Rows marked *variant, post hoc* use another documented protocol than the paper's main one.",
        "",
    ]
    for b in BENCHMARKS.values():
        rows = comparison(b)
        source = f"Paper: `{b.paper}`" if b.paper else "Anchor table (paper not under `../shared/papers`; numbers from REFERENCE.md)"
        links = json.loads((R.results_dir() / "published" / f"{b.id}.json").read_text()).get("links", {})
        source += "".join(f"; [{name}]({url})" for name, url in (("arXiv", links.get("arxiv")), ("code", links.get("code"))) if url)
        out += [f"## `{b.id}` — {b.title}", "", f"{source}. Metric: {b.metric} "
                f"({'higher' if b.higher_is_better else 'lower'} is better).", ""]
        shown = [r for r in rows if r["variant"] == MAIN or r["verdict"] != "not_reproduced"]
        out += [R.markdown_table(shown, b.metric) if rows else records_table(b), ""]
        plot = interval_plot(b, rows)
        if plot is not None:
            out += [f"![{b.id}: published and reproduced 95% intervals](figures/{plot.name})", ""]
        if len(shown) < len(rows):
            out += [f"{len(rows) - len(shown)} cell(s) of protocol variants have not been run "
                    f"(`metarepro compare {b.id} --all` lists them).", ""]
        extra = extra_rows(b)
        if extra:
            from tabulate import tabulate

            out += ["Other methods under this protocol (no published number):", "", tabulate(extra, headers="keys", tablefmt="github"), ""]
        for header, table in claim_tables(b, PAIRED_HEADER_RENDERED):
            from tabulate import tabulate

            note = multiplicity_note(table)
            out += [header, "", tabulate(table, headers="keys", tablefmt="github"), ""] + ([note, ""] if note else [])
        if b.variants:
            out += ["Protocol variants:", ""] + [f"- `{k}`: {v}" for k, v in b.variants.items()] + [""]
        paper = [r for r in R.load_records(b.id) if r["scale"] == "paper"]
        if paper:
            commits = sorted({(r["provenance"].get("commit") or "?")[:10] + (" (dirty)" if r["provenance"].get("dirty") else "")
                              for r in paper})
            training = {r.get("checkpoint_key", id(r)): r["provenance"].get("train_wall_time_s", 0) for r in paper}
            evaluation = sum(r["provenance"].get("wall_time_s", 0) - r["provenance"].get("train_wall_time_s", 0) for r in paper)
            hours = (sum(training.values()) + evaluation) / 3600
            layouts = sorted({f"{r['provenance'].get('jobs', '?')} job(s) x {r['provenance'].get('threads', '?')} thread(s)" for r in paper})
            label = "Paper-scale" if b.scale_name("paper") == "paper" else b.scale_name("paper").capitalize()
            out += [f"{label} records: {len(paper)} from {len(training)} trained models, "
                    f"commit(s) {', '.join(commits)}; "
                    f"{hours:.1f} job-hours (each model counted once; run as {', '.join(layouts)}).", ""]
        devs = sorted({d for r in rows for d in r["deviations"]})
        if devs:
            out += ["Deviations recorded by the runs:", ""] + [f"- {d}" for d in devs] + [""]
        declared = sorted({d for r in rows for d in r.get("protocol_deviations", []) if d not in devs})
        if declared:
            out += ["Deviations of the protocol from the authors' code (declared by the benchmark; records made before the "
                    "declaration do not list them):", ""] + [f"- {d}" for d in declared] + [""]
        lines = provenance_lines(rows)
        if lines:
            out += ["What trained the paper-scale records (`metarepro provenance ID --segments`):", ""] + lines + [""]
        if b.run_notes:
            out += ["Runs that left no record:", ""] + [f"- {r} / {c} [{v}]: {why}" for (r, c, v), why in b.run_notes.items()] + [""]
        diverged = divergence_lines(b)
        if diverged:
            out += ["Trainings that diverged (noted by the runs):", ""] + diverged + [""]
        if b.known_deviations:
            out += ["Known deviations (cells that do not reproduce, with the finding):", ""]
            by_finding: dict[str, list[str]] = {}
            for (r, c), why in b.known_deviations.items():
                by_finding.setdefault(why, []).append(f"{r} / {c}")
            out += [f"- {', '.join(cells)}: {why}" for why, cells in by_finding.items()] + [""]
    atomic_write_text(path, "\n".join(out))
    write_index()
    if R.results_dir().resolve() == (R.PROJECT_ROOT / "results").resolve():  # the checkout's own records: its README's summary
        write_summary()
    return path


INDEX_FIELDS = ("benchmark", "row", "column", "variant", "seed", "published_mean", "published_half_width", "published_interval_kind",
                "scale", "reproduced_mean", "reproduced_ci95", "n_scores", "verdict", "difference_verdict", "current", "record")


def cell_index() -> list[dict]:
    """Every cell of every benchmark, one row each (fields :data:`INDEX_FIELDS`): published number and kind, the record shown
    (paper scale preferred over quick), its verdicts. Cells without a published number (claim checks, figures) list each of
    their non-smoke records."""
    out = []
    for b in BENCHMARKS.values():
        rows = comparison(b)
        for r in rows:
            out.append({"benchmark": b.id, "row": r["row"], "column": r["column"], "variant": r["variant"], "seed": r.get("seed", 0),
                        "published_mean": r["published_mean"], "published_half_width": r.get("published_half_width"),
                        "published_interval_kind": r["published_interval_kind"], "scale": r["scale"],
                        "reproduced_mean": r["reproduced_mean"], "reproduced_ci95": r["reproduced_ci95"], "n_scores": r["n_episodes"],
                        "verdict": r["verdict"], "difference_verdict": r.get("difference_verdict"),
                        "current": r["verdict"] != "stale" if r["scale"] else None,
                        "record": (f"reproduced/{b.id}/{r['scale']}/{Cell(r['row'], r['column'], r['variant'], r.get('seed', 0)).slug}.json"
                                   if r["scale"] else None)})
        if rows:
            continue
        for rec in R.load_records(b.id):
            if rec["scale"] == "smoke":
                continue
            cell = Cell.of(rec)
            out.append({"benchmark": b.id, "row": cell.row, "column": cell.column, "variant": cell.variant, "seed": cell.seed,
                        "published_mean": None, "published_half_width": None, "published_interval_kind": None, "scale": rec["scale"],
                        "reproduced_mean": rec["mean"], "reproduced_ci95": rec["ci95"], "n_scores": rec["n_episodes"],
                        "verdict": "no published number", "difference_verdict": None, "current": record_is_current(b, rec),
                        "record": f"reproduced/{b.id}/{rec['scale']}/{cell.slug}.json"})
    return out


def write_index() -> list[Path]:
    """``results/index.json`` and ``results/index.csv``: :func:`cell_index`, for tools that read results."""
    import csv
    import io

    rows = cell_index()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=INDEX_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return [atomic_write_text(R.results_dir() / "index.json", json.dumps(rows, indent=1) + "\n"),
            atomic_write_text(R.results_dir() / "index.csv", buffer.getvalue())]


CORRELATION_HEADER = ("The paper's correlation claims: one Pearson R per training run, averaged over runs by Fisher's z "
                      "(95% Student-t interval over runs):")
PAIRED_HEADER = "The paper's claims on the same test episodes (paired differences, 95% CI):"
PAIRED_HEADER_RENDERED = "The paper's claims, checked cell by cell on the same test episodes (paired differences, 95% CI):"
LEVEL_HEADER = ("The paper's level claims: per training run, the mean of a probed measure over its epochs, method minus "
                "baseline paired by seed (95% Student-t interval over seeds):")


def multiplicity_note(rows: list[dict]) -> str | None:
    """A line under a claim table of several decided verdicts: each is its own 95% interval, none corrected for the others."""
    decided = sum(str(r.get("holds", "")).split(" (")[0] in ("yes", "reversed", "no difference") for r in rows)
    if decided < 2:
        return None
    return (f"Each verdict is its own 95% interval, not corrected for multiplicity: if nothing differed, about {decided / 20:.1f} "
            f"of these {decided} would still read yes or reversed.")


def claim_tables(benchmark, paired_header: str) -> list[tuple[str, list[dict]]]:
    """``(header, rows)`` of each kind of claim check that has rows: paired, correlation, level."""
    tables = [(paired_header, claim_checks(benchmark)), (CORRELATION_HEADER, correlation_checks(benchmark)),
              (LEVEL_HEADER, level_checks(benchmark))]
    return [(header, rows) for header, rows in tables if rows]


SUMMARY_BEGIN = "<!-- BEGIN summary: rendered by `metarepro render` from the records; do not edit by hand -->"
SUMMARY_END = "<!-- END summary -->"


def summary_table() -> str:
    """Every benchmark in one table: cells, reproduced at paper scale, within, known deviations, claims, data here."""
    from collections import Counter

    from tabulate import tabulate

    body = []
    for b in BENCHMARKS.values():
        rows = [r for r in comparison(b, include_variants=False) if r["verdict"] != "cited"]
        paper = [r for r in rows if r["verdict"] in ("within", "outside")]
        claims = all_claims(b)
        data = "generated" if b.requires_data is None else (f"{b.requires_data}: here" if b.data_available()
                                                             else f"{b.requires_data}: not on this machine (smoke only)")
        if b.not_runnable:
            data = f"{b.requires_data}: not runnable (no reader in this suite)"
        verdicts = Counter(c["holds"].split(" (")[0] for c in claims)  # "too few seeds (1 of 3)" -> "too few seeds"
        cells = len({(r["row"], r["column"]) for r in rows})  # a cell trained from several seeds is one published cell
        published = cells if rows else "none (not transcribed)" if b.untranscribed else "none (figure or claim check)"
        body.append([f"`{b.id}`", published, len(paper),
                     sum(r["verdict"] == "within" for r in paper), sum(r["verdict"] == "outside" and bool(r["known_deviation"]) for r in paper),
                     ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "-", data])
    return tabulate(body, headers=["benchmark", "published cells", "reproduced (paper)", "within", "known deviations", "claims",
                                   "data"], tablefmt="github")


def write_summary(path: Path | None = None) -> Path | None:
    """Refresh the summary block of the top README (between its marker lines) from the records; None without markers."""
    path = path or R.PROJECT_ROOT / "README.md"
    text = path.read_text()
    start, end = text.find(SUMMARY_BEGIN), text.find(SUMMARY_END)
    if start < 0 or end < start:
        return None
    new = text[:start] + SUMMARY_BEGIN + "\n\n" + summary_table() + "\n\n" + text[end:]
    if new != text:
        atomic_write_text(path, new)
    return path


def interval_plot(benchmark: Benchmark, rows: list[dict]) -> Path | None:
    """``results/figures/<id>--intervals.png``: each paper-scale cell's published and reproduced intervals, coloured by
    verdict; None when no cell is reproduced at paper scale or matplotlib is absent (a note; an older plot is kept)."""
    from metarepro.figures import interval_figure

    plotted = [r for r in rows if r["scale"] == "paper" and r["reproduced_mean"] is not None]
    if not plotted:
        return None
    entries = [{"label": f"{r['row']} / {r['column']}" + ("" if r["variant"] == MAIN else f" [{r['variant']}]")
                         + (f" seed {r['seed']}" if r.get("seed") else ""),
                "published": (r["published_mean"], r["published_half_width"]),
                "reproduced": (r["reproduced_mean"], r["reproduced_ci95"]),
                "verdict": "known deviation" if r["verdict"] == "outside" and r["known_deviation"] else r["verdict"].replace("_", " ")}
               for r in plotted]
    try:
        return interval_figure(entries, benchmark.figure_path("paper", "intervals"), f"{benchmark.id}: published vs reproduced (95%)",
                               benchmark.metric)
    except ImportError as err:
        print(f"{benchmark.id}: interval plot not drawn ({err}); an older one is kept", file=sys.stderr)
        path = benchmark.figure_path("paper", "intervals")
        return path if path.exists() else None


def divergence_lines(benchmark: Benchmark) -> list[str]:
    """``- row / column [variant] seed s (scale): ...`` for each divergence note that still stands
    (:func:`benchmarks.harness.runner.current_divergences`): trainings that stopped on a non-finite loss or one above their
    bound, a finding."""
    from benchmarks.harness.runner import current_divergences, divergence_reason

    return [f"- {n['row']} / {n['column']} [{n['variant']}] seed {n['seed']} ({benchmark.scale_name(n['scale'])}): the outer loss "
            f"{divergence_reason(n)} at iteration {n['iteration']} of {n['iterations']} (commit {(n['provenance'].get('commit') or '?')[:10]}); "
            "no record" for n in current_divergences(benchmark).values()]


def records_table(benchmark) -> str:
    """The records of a benchmark with no published numbers (a figure, a claim check), largest scale first."""
    from tabulate import tabulate

    order = {"paper": 0, "quick": 1, "smoke": 2}
    records = sorted((r for r in R.load_records(benchmark.id) if r["scale"] != "smoke"),
                     key=lambda r: (order[r["scale"]], benchmark.rows.index(r["row"]) if r["row"] in benchmark.rows else 99, r["column"],
                                    r["variant"] != "main", r["variant"], r.get("seed", 0)))
    what = f"not transcribed: {benchmark.untranscribed}" if benchmark.untranscribed else "a figure or a claim check"
    if not records:
        return f"No published numbers ({what}) and no runs yet."
    return (f"No published numbers ({what}); the runs:\n\n"
            + tabulate([[r["row"], r["column"], r["variant"], r.get("seed", 0), benchmark.scale_name(r["scale"]),
                         f"{r['mean']:.3f} ± {r['ci95']:.3f}", r["n_episodes"],
                         "current" if record_is_current(benchmark, r) else "stale: re-run"] for r in records],
                       headers=["row", "column", "protocol", "seed", "scale", benchmark.metric, "scores", "record"], tablefmt="github")
            + "\n\nClaims below use current records only.")


def with_precision(benchmark, cells: list[Cell], precision: str) -> list[Cell]:
    """The ``precision`` variant of each main cell: lower precision is a protocol variant, recorded beside fp32."""
    if precision not in benchmark.variants:
        raise ValueError(f"{benchmark.id} has no {precision} variant (its variants: {', '.join(benchmark.variants) or 'none'}); "
                         "it runs in fp32 only")
    return [Cell(c.row, c.column, precision) if c.variant == MAIN else c for c in cells]


def missing_data(benchmark: Benchmark, scale: str) -> str | None:
    """What to fetch when ``scale`` needs data that is not under the data root; None when nothing is missing."""
    if scale == "smoke" or benchmark.data_available():
        return None
    from metarepro.data import DATASETS

    names = benchmark.requires_data.split(" + ")  # e.g. "mini_imagenet + cifar_fs": every one is needed
    steps = []
    for name in names:
        dataset = DATASETS.get(name)
        if dataset is not None and not dataset.files and dataset.manual:  # cannot be downloaded by the suite (ImageNet terms)
            steps.append(f"{name}: {dataset.manual}")
        else:
            steps.append(f"{name}: run `metarepro data fetch {name} splits` (METAREPRO_MIRROR: a local mirror of the files, if you have one)")
    return f"{benchmark.id} needs {benchmark.requires_data} under {data_root()}: " + "; ".join(steps)


def expand_targets(names: list[str]) -> list[Benchmark]:
    """Benchmark ids, and ``tableN`` / ``figN`` for every registered benchmark that is a Table N / Fig. N of its paper."""
    import re

    out: list[Benchmark] = []
    for name in names:
        if re.fullmatch(r"(table|fig)\d+", name):
            matched = [b for b in BENCHMARKS.values() if b.id.endswith(f"-{name}")]
            if not matched:
                raise UnknownBenchmarkError(f"no registered benchmark is a {name}; ids: {', '.join(sorted(BENCHMARKS))}")
            out += matched
        else:
            out.append(get_benchmark(name))
    return list(dict.fromkeys(out))


def stop_with_dvc() -> None:
    """Under ``dvc repro`` (``DVC_STAGE`` set), have the kernel send this process SIGTERM when DVC dies: a SIGTERM to
    the ``dvc`` process alone kills it without passing the signal on, and the stage's training would go on unseen,
    writing its record after DVC gave up. On SIGTERM the trainer checkpoints and stops; the next ``dvc repro`` resumes.
    Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere signal the whole process group (Slurm, ``timeout``, Ctrl-C do)."""
    if not os.environ.get("DVC_STAGE") or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # DVC died before the call: nobody is left to tell
        os.kill(os.getpid(), signal.SIGTERM)


def cmd_reproduce(args) -> int:
    stop_with_dvc()
    targets = expand_targets(args.benchmarks)
    if len(targets) == 1 and len(args.benchmarks) == 1 and args.benchmarks[0] == targets[0].id:
        args.benchmark = targets[0].id
        return reproduce_one(args)
    if args.cells or args.method:
        raise ValueError("--cells and --method name cells of one benchmark; give one benchmark id with them")
    from tabulate import tabulate

    from benchmarks.harness.plan import plan

    runnable, table = [], []
    for b in targets:
        message = "not runnable here" if b.not_runnable else missing_data(b, args.scale)
        hours = sum(g["projected_hours"] for g in plan(b, b.cells(variants=args.variants, scale=args.scale), args.scale))
        table.append([b.id, f"{hours:.1f}", "skipped: " + message if message else "to run"])
        if not message:
            runnable.append(b)
    print(tabulate(table, headers=["benchmark", f"projected h ({args.scale}, one job)", "status"], tablefmt="github"))
    if not args.yes:
        print(f"\nnot started: {len(runnable)} benchmark(s) to run; add --yes to run them", file=sys.stderr)
        return 1
    status = 0
    for b in runnable:
        print(f"\n== {b.id}")
        args.benchmark = b.id
        status = max(status, reproduce_one(args))
    skipped = [b.id for b in targets if b not in runnable and not b.not_runnable]
    if skipped:
        print(f"\nskipped (their data is not under {data_root()}): {', '.join(skipped)}")
    unrunnable = [b.id for b in targets if b.not_runnable]
    if unrunnable:
        print(f"\nnot runnable on data this suite reads (`metarepro compare` shows their published numbers): {', '.join(unrunnable)}")
    return status


def launcher_options(args) -> dict:
    """``reproduce``'s launcher settings (:func:`benchmarks.harness.launchers.launch`)."""
    if args.launcher in ("pool", "ray"):
        return {"gpus": args.gpus_per_task} if args.launcher == "ray" else {}
    slurm = {"time_min": args.slurm_time_min, "slurm_partition": args.slurm_partition,
             **({"gpus_per_node": int(args.gpus_per_task)} if args.gpus_per_task else {})}
    return {"slurm": slurm}


def reproduce_one(args) -> int:
    benchmark = get_benchmark(args.benchmark)
    if benchmark.not_runnable:
        print(f"{benchmark.id}: no cell runs here: {benchmark.not_runnable} `metarepro compare {benchmark.id}` shows the published "
              "numbers.")
        return 0
    message = missing_data(benchmark, args.scale)
    if message:
        if args.skip_missing_data:
            print(f"skipped: {message}")
            return 0
        raise DataError(message)
    if args.method:
        cells = [Cell(args.method, column) for column in benchmark.columns]
    elif args.cells:
        cells = [Cell.parse(c) for c in args.cells]
    else:
        cells = benchmark.cells(variants=args.variants, scale=args.scale)
    if args.precision != "fp32":
        cells = with_precision(benchmark, cells, args.precision)
    if args.scale == "paper" and not args.yes:
        schedule = "the paper's full schedule" if benchmark.scale_name("paper") == "paper" else \
            f"this benchmark's {benchmark.scale_name('paper')}, not a paper's schedule"
        print(f"paper scale: {schedule}; see the estimate below. Ctrl-C stops safely (checkpoints).")
    if args.device.startswith("cuda") and args.jobs > 1 and args.launcher == "pool":
        # one worker per visible GPU ("cuda"); a named device ("cuda:1") is one process's
        from benchmarks.harness.runner import visible_gpus

        args.jobs = min(args.jobs, len(visible_gpus())) if args.device == "cuda" else 1
        args.jobs = max(args.jobs, 1)
    reproduce(benchmark, args.scale, cells, jobs=args.jobs, threads=args.threads, engine=args.engine,
              restart=args.restart, progress=not args.no_progress, device=args.device,
              allow_protocol_change=args.allow_protocol_change, pin=args.pin, launcher=args.launcher,
              launcher_options=launcher_options(args))
    root = None if args.pin else R.local_results_dir()
    if root is None or root.resolve() == R.results_dir().resolve():  # figures and pages are drawn from the pinned records
        for figure in draw_figures(benchmark, args.scale):
            print(f"figure: {figure}")
        render_readme()
    from tabulate import tabulate

    paths = [R.record_path(benchmark.id, args.scale, c.slug, root) for c in cells]
    written = [json.loads(p.read_text()) for p in paths if p.exists()]
    missing = [c.label for c, p in zip(cells, paths) if not p.exists()]
    if missing:  # the runner said why (a diverged adaptation); keep them visible here too, and in the exit status
        print(f"metarepro: {len(missing)} cell(s) left no record: {'; '.join(missing)}", file=sys.stderr)
    print(f"\n{benchmark.id} at {args.scale} scale ({benchmark.metric}, mean ± 95% CI over test episodes):")
    print(tabulate([[r["row"], r["column"], r["variant"], f"{r['mean']:.3f} ± {r['ci95']:.3f}", r["n_episodes"]] for r in written],
                   headers=["row", "column", "protocol", benchmark.metric, "episodes"], tablefmt="github"))
    if root is not None and root.resolve() != R.results_dir().resolve():
        print(f"(your records: {root / 'reproduced' / benchmark.id}, git-ignored; `metarepro compare {benchmark.id}` shows them "
              "beside the pinned ones)")
    if args.scale == "smoke":
        return 1 if missing else 0
    print("\nAgainst the paper (only paper-scale records count as reproductions; the pinned records):")
    asked = {(c.row, c.column, c.variant, c.seed) for c in cells}
    rows = [r for r in comparison(benchmark) if (r["row"], r["column"], r["variant"], r.get("seed", 0)) in asked]
    if rows:
        print(R.markdown_table(rows, benchmark.metric))
    _print_extra_rows(benchmark)
    _print_local_records(benchmark)
    return 1 if missing else 0


def local_records(benchmark: Benchmark) -> list[dict]:
    """The user's own records (:func:`metarepro.results.local_results_dir`), each with the pinned record of the same cell
    and scale beside it; empty where the local root is the pinned one."""
    local = R.local_results_dir()
    if local.resolve() == R.results_dir().resolve():
        return []
    pinned = {(r["row"], r["column"], r["variant"], r.get("seed", 0), r["scale"]): r for r in R.load_records(benchmark.id)}
    rows = []
    for r in R.load_records(benchmark.id, local):
        p = pinned.get((r["row"], r["column"], r["variant"], r.get("seed", 0), r["scale"]))
        rows.append({"row": r["row"], "column": r["column"], "protocol": r["variant"], "seed": r.get("seed", 0), "scale": r["scale"],
                     "yours": f"{r['mean']:.3f} ± {r['ci95']:.3f}", "pinned": f"{p['mean']:.3f} ± {p['ci95']:.3f}" if p else "-",
                     "current": record_is_current(benchmark, r)})
    return rows


def _print_local_records(benchmark: Benchmark) -> None:
    from tabulate import tabulate

    rows = local_records(benchmark)
    if rows:
        print(f"\nYour own runs ({R.local_results_dir()}, not pinned), beside the pinned records of the same cells:")
        print(tabulate(rows, headers="keys", tablefmt="github"))


def cmd_compare(args) -> int:
    benchmark = get_benchmark(args.benchmark)
    rows = comparison(benchmark, include_variants=not args.main_only)
    if args.format == "json":
        records = [] if rows else [{k: r[k] for k in ("row", "column", "variant", "seed", "scale", "mean", "ci95", "n_episodes") if k in r}
                                   | {"current": record_is_current(benchmark, r)}
                                   for r in R.load_records(benchmark.id) if r["scale"] != "smoke"]
        print(json.dumps({"benchmark": benchmark.id, "cells": rows, "claims": all_claims(benchmark), "notes": benchmark.comparison_notes(),
                          "extra_rows": extra_rows(benchmark), "records": records, "local_records": local_records(benchmark)},
                         indent=1))
    else:
        shown = rows if args.all else [r for r in rows if r["variant"] == MAIN or r["verdict"] != "not_reproduced"]
        if benchmark.not_runnable:
            print(f"Not runnable here: {benchmark.not_runnable}\n")
        print(R.markdown_table(shown, benchmark.metric) if rows else records_table(benchmark))
        if len(shown) < len(rows):
            print(f"({len(rows) - len(shown)} variant cell(s) not run; --all shows them)")
    if args.format != "json":
        lines = provenance_lines(rows)
        if lines:
            print("\nWhat trained the paper-scale records (`metarepro provenance " + benchmark.id + " --segments`):")
            print("\n".join(lines))
        _print_extra_rows(benchmark)
        diverged = divergence_lines(benchmark)
        if diverged:
            print("\nTrainings that diverged (noted by the runs; `reproduce` does not train them again unless --restart):")
            print("\n".join(diverged))
        notes = benchmark.comparison_notes()
        if notes:
            from tabulate import tabulate

            print("\nWhat can be compared:")
            print(tabulate(notes, headers="keys", tablefmt="github"))
        _print_local_records(benchmark)
        for header, table in claim_tables(benchmark, PAIRED_HEADER):
            from tabulate import tabulate

            print("\n" + header)
            print(tabulate(table, headers="keys", tablefmt="github"))
            note = multiplicity_note(table)
            if note:
                print(note)
    bad = failing(rows)
    if bad and args.format != "json":
        print(f"\n{len(bad)} paper-scale cell(s) outside tolerance and not among the known deviations.", file=sys.stderr)
    return 1 if bad else 0


def provenance_lines(rows: list[dict]) -> list[str]:
    """``- row / column [variant]: segments ...`` for every paper-scale row (a numerics change in the span is named)."""
    return [f"- {r['row']} / {r['column']}{'' if r['variant'] == MAIN else ' [' + r['variant'] + ']'}: {r['trained']}"
            for r in rows if r.get("scale") == "paper" and r.get("trained")]


def _print_extra_rows(benchmark: Benchmark) -> None:
    from tabulate import tabulate

    extra = extra_rows(benchmark)
    if extra:
        print(f"\nOther methods under the {benchmark.id} protocol (no published number):")
        print(tabulate(extra, headers="keys", tablefmt="github"))


def cmd_evaluate(args) -> int:
    import numpy as np

    from benchmarks.harness.checkpoints import rescore_pinned

    benchmark = get_benchmark(args.benchmark)
    cell = Cell.parse(args.cell)
    benchmark.check_cell(cell)
    record = None
    if args.checkpoint is None:
        # the pinned record, else the user's own
        root = next((r for r in (R.results_dir(), R.local_results_dir()) if R.record_path(benchmark.id, args.scale, cell.slug, r).exists()),
                    None)
        if root is None:
            print(f"{benchmark.id} {cell.label} [{args.scale}] has no record; name a checkpoint file", file=sys.stderr)
            return 1
        record = load_validated(R.record_path(benchmark.id, args.scale, cell.slug, root), "record")
        try:
            scores, checkpoint = rescore_pinned(benchmark, record, device=args.device, root=root)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 1
    else:
        checkpoint = args.checkpoint
        scores = benchmark.evaluate_checkpoint(Path(checkpoint), cell, args.scale, device=args.device)
    mean, ci = mean_ci95(scores)
    print(f"{benchmark.id} {cell.label} [{args.scale}] from {checkpoint}: {benchmark.metric} {mean:.4f} ± {ci:.4f} "
          f"over {len(scores)} test episodes")
    if record is not None:
        stored = np.asarray(record["scores"], dtype=np.float64)
        same = stored.shape == scores.shape and np.array_equal(stored, scores)
        gap = "" if same or stored.shape != scores.shape else f" (largest per-episode difference {np.max(np.abs(stored - scores)):.3g})"
        print(f"  the record's per-episode scores: {'identical' if same else 'DIFFERENT' + gap}")
        return 0 if same else 1
    return 0


def cmd_data(args) -> int:
    from metarepro import data

    if args.action == "list":
        root = data.data_root()
        for name, d in data.DATASETS.items():
            print(f"{name:16s} {len(d.files):3d} file(s)  {d.description}")
            tops = sorted({f.target.split("/")[0] for f in d.files})
            where = ", ".join(f"{root / t}/" for t in tops) if tops else f"{root / name}/"
            how = f"`metarepro data fetch {name}`" if d.files else (d.manual or "by hand")
            print(f"{'':16s} goes to {where} ({how})")
        return 0
    if args.action == "fetch":
        if not args.names:
            raise ValueError("name the datasets to fetch, e.g. `metarepro data fetch omniglot splits`")
        where = data.mirror_root() or "upstream URLs"
        for name in args.names:
            print(f"{name}: fetching into {data.data_root()} from {where}")
            data.fetch(name)
        return 0
    problems = data.verify()
    for p in problems:
        print(f"  BAD {p}", file=sys.stderr)
    print(f"verify: {'all ok' if not problems else f'{len(problems)} problem(s)'} under {data.data_root()}")
    return 1 if problems else 0


def draw_figures(benchmark: Benchmark, scale: str) -> list[Path]:
    """The benchmark's figures at ``scale``; without the plot extra, a note instead (figures already drawn are kept)."""
    try:
        return benchmark.render_figures(scale)
    except ImportError as err:
        print(f"{benchmark.id}: figures not drawn ({err}); the ones under results/figures/ are left as they were", file=sys.stderr)
        return []


def cmd_pins(args) -> int:
    from benchmarks.harness.pins import regression_problems, write_pins

    if args.update:
        print(f"wrote {write_pins()} (review its diff: a record gone or a verdict changed is a decision to explain)")
    problems = regression_problems()
    for problem in problems:
        print(f"  FAIL {problem}", file=sys.stderr)
    print(f"pins: {'all hold' if not problems else f'{len(problems)} problem(s)'} ({R.results_dir()})")
    return 1 if problems else 0


def cmd_plan(args) -> int:
    from tabulate import tabulate

    from benchmarks.harness.plan import cluster_hours, plan

    benchmark = get_benchmark(args.benchmark)
    cells = [Cell.parse(c) for c in args.cells] if args.cells else benchmark.cells(variants=args.variants, scale=args.scale)
    groups = plan(benchmark, cells, args.scale)
    if args.format == "json":
        print(json.dumps(groups, indent=1))
        return 0
    print(tabulate([{"group": g["group"], "cells": len(g["cells"]), "projected h": g["projected_hours"], "left h": g["remaining_hours"],
                     "peak MiB": g["peak_memory_mb"] or "-", "data": g["data"] + ("" if g["data_present"] else " (absent)"),
                     "current": "yes" if g["current"] else "no", "projection": g["projection"]} for g in groups],
                   headers="keys", tablefmt="github"))
    total = sum(g["projected_hours"] for g in groups)
    print(f"\n{benchmark.id} at {args.scale} scale: {len(groups)} training group(s), {total:.1f} projected hours on one job "
          "(on the machine and threads the timed records name; rough estimates where none)")
    left = [g["remaining_hours"] for g in groups]
    for machines in args.machines or ():
        print(f"  on {machines} machine(s) like that one, a group each at a time (--launcher ray / slurm): "
              f"{cluster_hours(left, machines):.1f} h of wall time left (the longest group alone: {max(left, default=0):.1f} h)")
    return 0


def cmd_provenance(args) -> int:
    from tabulate import tabulate

    from benchmarks.harness.provenance import annotate_unknown, core_share, training_summary

    benchmark = get_benchmark(args.benchmark)
    if args.annotate_unknown:
        for path in annotate_unknown([benchmark.id]):
            print(f"annotated {path}")
    rows = []
    for r in R.load_records(benchmark.id):
        if r["scale"] == "smoke":
            continue
        rows.append({"cell": Cell.of(r).label, "scale": r["scale"], "trained by": training_summary(r)})
        if args.segments and isinstance(r.get("trainings"), list):
            for t in r["trainings"]:
                for seg in t["segments"]:
                    rows.append({"cell": "", "scale": "", "trained by": (
                        f"  {t['checkpoint']}: iterations {seg['iterations'][0]}-{seg['iterations'][1]}" + (
                            " (before segments were recorded)" if seg.get("unknown") else
                            f", {seg['commit'][:8]}{' dirty' if seg['dirty'] else ''}, {seg['host']}, {seg['device']}, "
                            f"{seg['threads']} thread(s), {seg['wall_time_s']:.0f} s{core_share(seg)}, {seg['protocol_versions']}"))})
    print(tabulate(rows, headers="keys", tablefmt="github") if rows else f"{benchmark.id}: no records")
    return 0


def cmd_generate(args) -> int:
    if args.what == "dvc":
        from benchmarks.harness import dvc

        if args.check:
            stale = dvc.out_of_sync()
            problems = [f"{p}: out of date: run `metarepro generate dvc`" for p in stale] + dvc.lock_problems()
            for line in problems:
                print(line, file=sys.stderr)
            if not problems:
                print("dvc.yaml, params.yaml and dvc.lock in sync with the registry and the committed records")
            return 1 if problems else 0
        for path in dvc.write_dvc() if not args.lock else [*dvc.write_dvc(), dvc.write_lock()]:
            print(f"wrote {path}")
        return 0
    if args.lock:
        print("--lock applies to `generate dvc`", file=sys.stderr)
        return 2
    from benchmarks.harness.generate import tox_in_sync, tox_path, write_tox

    if args.check:
        if tox_in_sync():
            print(f"{tox_path()}: generated environments in sync with the registry")
            return 0
        print(f"{tox_path()}: generated environments out of date: run `metarepro generate tox`", file=sys.stderr)
        return 1
    print(f"wrote {write_tox()}")
    return 0


def cmd_park(args) -> int:
    from tabulate import tabulate

    from benchmarks.harness.parking import park, parked_root

    rows = park(tuple(args.scales))
    print(tabulate(rows, headers="keys", tablefmt="github") if rows else "nothing to park: no unfinished training under runs/")
    total = sum(f.stat().st_size for f in parked_root().rglob("*") if f.is_file()) / 2**20 if parked_root().is_dir() else 0.0
    print(f"\n{parked_root()}: {total:.1f} MB parked in all; commit it (git add {parked_root().relative_to(R.PROJECT_ROOT)}) "
          "so that a new checkout resumes these trainings" if R.results_dir().resolve() == (R.PROJECT_ROOT / "results").resolve()
          else f"\n{parked_root()}: {total:.1f} MB parked in all")
    return 0


def cmd_promote(args) -> int:
    from benchmarks.harness.runner import pin_missing_checkpoints, promote_local

    benchmark = get_benchmark(args.id)
    cells = [Cell.parse(c) for c in args.cells] if args.cells else None
    for cell in cells or []:
        benchmark.check_cell(cell)
    if args.checkpoints:
        written = pin_missing_checkpoints(benchmark, args.scale, cells, device=args.device)
        gained = sum("path" in (json.loads(Path(p).read_text()).get("checkpoint") or {}) for p in written)
        print(f"{gained} record(s) gained their checkpoint, {len(written) - gained} now say why they pin none"
              + (": commit them (git add results/)" if written else ""))
        return 0
    written = promote_local(benchmark, args.scale, cells, device=args.device)
    if written:
        for figure in draw_figures(benchmark, args.scale):
            print(f"figure: {figure}")
        render_readme()
    print(f"{len(written)} record(s) pinned" + (": commit them with their checkpoints (git add results/)" if written else ""))
    return 0


def cmd_render(args) -> int:
    for b in BENCHMARKS.values():  # figures from the records at every scale that has some
        for scale in sorted({r["scale"] for r in R.load_records(b.id)}):
            for figure in draw_figures(b, scale):
                print(f"wrote {figure}")
    print(f"wrote {render_readme()}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metarepro", description="Reproduce few-shot meta-learning tables.")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="every benchmark with its status")
    ls.add_argument("--timings", action="store_true", help="also the measured time per meta-iteration and projected paper hours per cell")
    ls.add_argument("--runs", action="store_true", help="also every checkpoint under runs/: how far it trained, which cells it serves")
    ls.add_argument("--format", choices=("markdown", "json"), default="markdown")
    ls.set_defaults(fn=cmd_list)

    r = sub.add_parser("reproduce", help="train and evaluate a benchmark's cells, pin the records",
                       description="Train and evaluate cells, write their records and compare them with the paper. Benchmarks: "
                                   + ", ".join(BENCHMARKS) + "; tableN / figN for every registered Table N / Fig. N.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    r.add_argument("benchmarks", nargs="+", metavar="ID",
                   help="benchmark ids, or tableN / figN (several: prints the projected hours and runs only with --yes)")
    r.add_argument("--scale", choices=R.SCALES, default="quick")
    r.add_argument("--cells", nargs="+", metavar="ROW/COLUMN[/VARIANT[/seed=N]]", help="only these cells")
    r.add_argument("--method", help="run a registered method (methods.METHODS) as an extra row under this protocol")
    r.add_argument("--variants", nargs="+", metavar="NAME", help="also run these protocol variants ('all' for every one)")
    r.add_argument("--jobs", type=int, default=2,
                   help="cells trained side by side (default 2, one per core; with --device cuda at most one per visible GPU, each its own)")
    r.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    r.add_argument("--engine", choices=("auto", *ENGINES), default="auto",
                   help="inner loop of the gradient-based methods: func (tasks batched), loop or higher (task by task); "
                        "auto (default): the one `metarepro time` measured fastest for the cell here, else func")
    r.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16: autocast forward passes; runs the benchmark's bf16 variant, recorded beside the fp32 cells")
    r.add_argument("--restart", action="store_true", help="discard checkpoints and records of these cells")
    r.add_argument("--launcher", choices=("pool", "ray", "slurm", "local"), default="pool",
                   help="where the training groups run: here in --jobs processes (pool), one Ray task each (ray), one Slurm "
                        "job each through submitit (slurm), or submitit's local executor (local); records and checkpoints go "
                        "to the roots this process names, which must be shared paths on a cluster (README: Run it on a cluster)")
    r.add_argument("--slurm-partition", help="Slurm partition (--launcher slurm)")
    r.add_argument("--slurm-time-min", type=int, default=24 * 60, help="Slurm time limit per group, minutes (default %(default)s)")
    r.add_argument("--gpus-per-task", type=float, default=0, help="GPUs per task (--launcher ray / slurm)")
    r.add_argument("--pin", action="store_true",
                   help="write the records into the committed results (results/reproduced, what `dvc repro` and maintainers do); "
                        "default: your own git-ignored results/local/ ($METAREPRO_LOCAL_RESULTS), shown beside the pinned ones")
    r.add_argument("--allow-protocol-change", action="store_true",
                   help="resume checkpoints trained under other protocol versions (the record's segments show both)")
    r.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--skip-missing-data", action="store_true", help="exit 0 with a message when the data is absent (dvc stages)")
    r.add_argument("--yes", action="store_true", help="run several benchmarks (without it their projected hours are shown, nothing runs)")
    r.set_defaults(fn=cmd_reproduce)

    t = sub.add_parser("time", help="time per meta-iteration of each cell, per-task loop vs batched (MAML family)")
    t.add_argument("benchmark")
    t.add_argument("--cells", nargs="+", metavar="ROW/COLUMN", help="only these cells")
    t.add_argument("--scale", choices=R.SCALES, default="paper", help="configuration timed (default paper; the data it needs)")
    t.add_argument("--rounds", type=int, default=3, help="timed rounds per engine after one warm-up (default 3)")
    t.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as reproduce's jobs)")
    t.add_argument("--device", default="cpu")
    t.set_defaults(fn=cmd_time)

    c = sub.add_parser("compare", help="published vs reproduced, with verdicts")
    c.add_argument("benchmark")
    c.add_argument("--format", choices=("markdown", "json"), default="markdown")
    c.add_argument("--main-only", action="store_true", help="hide protocol variants")
    c.add_argument("--all", action="store_true", help="also list variant cells that have not been run")
    c.set_defaults(fn=cmd_compare)

    e = sub.add_parser("evaluate", help="re-evaluate a checkpoint on a cell's fixed test episodes (default: the record's pinned one)",
                       description="Score a checkpoint on the cell's fixed test episodes. Without CHECKPOINT: the checkpoint the "
                                   "cell's record pins (its sha256 checked), and whether the scores equal the record's.")
    e.add_argument("checkpoint", nargs="?", help="a checkpoint file (default: the record's pinned checkpoint)")
    e.add_argument("--benchmark", required=True)
    e.add_argument("--cell", required=True, metavar="ROW/COLUMN[/VARIANT]")
    e.add_argument("--scale", choices=R.SCALES, default="paper")
    e.add_argument("--device", default="cpu")
    e.set_defaults(fn=cmd_evaluate)

    sub.add_parser("render", help="rewrite results/README.md from the records").set_defaults(fn=cmd_render)

    pr = sub.add_parser("promote", help="pin your own current records (results/local, from reproduce without --pin) into the "
                                        "committed results, re-scoring their checkpoints as reproduce --pin does")
    pr.add_argument("id")
    pr.add_argument("--scale", choices=R.SCALES, default="paper")
    pr.add_argument("--cells", nargs="+", metavar="ROW/COLUMN[/VARIANT[/seed=N]]", help="only these cells (default: all)")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--checkpoints", action="store_true",
                    help="instead: pin the weights of committed records that pin none, where the run folder still holds the "
                         "model that gave their scores (re-scored first; the numbers are not touched)")
    pr.set_defaults(fn=cmd_promote)

    pk = sub.add_parser("park", help="copy unfinished trainings under runs/ to results/parked/ (committed), so that a new "
                                     "checkout resumes them; prune copies no longer needed")
    pk.add_argument("--scales", nargs="+", choices=R.SCALES, default=["quick", "paper"])
    pk.set_defaults(fn=cmd_park)

    gn = sub.add_parser("generate", help="rewrite the files generated from the registry: tox.ini's reproduce environments; "
                                         "dvc.yaml and params.yaml (and with --lock dvc.lock) from the committed records")
    gn.add_argument("what", choices=("tox", "dvc"))
    gn.add_argument("--check", action="store_true", help="exit 1 when a committed file is out of date, change nothing")
    gn.add_argument("--lock", action="store_true", help="dvc: also rewrite dvc.lock as the committed records were made "
                                                        "(needs dvc); after adding or replacing records")
    gn.set_defaults(fn=cmd_generate)

    pl = sub.add_parser("plan", help="training groups (cells sharing one model) with projected hours, memory, data, currency")
    pl.add_argument("benchmark")
    pl.add_argument("--cells", nargs="+", metavar="ROW/COLUMN[/VARIANT[/seed=N]]", help="only these cells")
    pl.add_argument("--variants", nargs="+", metavar="NAME", help="also these protocol variants ('all' for every one)")
    pl.add_argument("--scale", choices=R.SCALES, default="paper")
    pl.add_argument("--format", choices=("markdown", "json"), default="markdown")
    pl.add_argument("--machines", nargs="+", type=int, metavar="K",
                    help="also the wall time left on K machines, one group each at a time (a cluster launcher's queue)")
    pl.set_defaults(fn=cmd_plan)

    pv = sub.add_parser("provenance", help="which code trained each record: its training segments (commit, host, iterations)")
    pv.add_argument("benchmark")
    pv.add_argument("--segments", action="store_true", help="every segment, not only the summary")
    pv.add_argument("--annotate-unknown", action="store_true",
                    help="give records made before segments existed their 'unknown' entry with the commits they may span")
    pv.set_defaults(fn=cmd_provenance)

    pn = sub.add_parser("pins", help="check what the regression tests hold: pinned records, claim verdicts, known-deviation bands")
    pn.add_argument("--update", action="store_true", help="re-pin results/pins.json from the records (then review and commit it)")
    pn.set_defaults(fn=cmd_pins)

    d = sub.add_parser("data", help="fetch and verify datasets (METAREPRO_DATA, METAREPRO_MIRROR)")
    d.add_argument("action", choices=("fetch", "verify", "list"))
    d.add_argument("names", nargs="*", help="datasets to fetch (see `metarepro data list`)")
    d.set_defaults(fn=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)  # the command line, for provenance
    keep_freed_memory()
    try:
        return args.fn(args)
    except (UnknownBenchmarkError, CheckpointError, NonFiniteLossError, DataError, KeyError, ValueError, FileNotFoundError) as err:
        print(f"metarepro: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `metarepro compare ... | head`: the reader left; say nothing more
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would raise again
        return 0
    except KeyboardInterrupt:
        print("metarepro: stopped; every finished iteration is checkpointed under runs/, the same command resumes",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
