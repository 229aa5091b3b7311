"""Run cells (in parallel worker processes), write records, compare."""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch

from benchmarks import get_benchmark
from benchmarks.harness.base import MAIN, Benchmark, Cell
from benchmarks.harness.cell_timing import fastest_of, load_timings, resolve_engine
from benchmarks.harness.checkpoints import PINNED_SCALES, pin_checkpoint
from benchmarks.harness.paths import runs_dir
from benchmarks.harness.provenance import training_summary
from metarepro import results as R
from metarepro.atomic import file_lock, lock_timeouts
from metarepro.evaluate import mean_ci95
from metarepro.runtime import keep_freed_memory
from metarepro.selection import selection_change
from metarepro.trainer import NonFiniteLossError, collect_trainings, is_snapshot, set_run_context, stop_on_signals, stop_requested
from methods.backbones import conv4_cpu_layout, conv4_layout


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (a worker's earlier cells included: an upper bound per cell)."""
    import resource

    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(kib / 1024 if sys.platform != "darwin" else kib / 2**20, 1)


def describe_device(device: str) -> str:
    """``"cpu"`` or ``"cuda:0 (NVIDIA H100 ...)"`` for the record."""
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def is_current(benchmark: Benchmark, cell: Cell, scale: str, root: Path | None = None) -> bool:
    """A record of this cell at this scale exists (under ``root``, default the pinned results) and matches the config."""
    path = R.record_path(benchmark.id, scale, cell.slug, root)
    return path.exists() and record_is_current(benchmark, json.loads(path.read_text()))


def current_divergence(benchmark: Benchmark, cell: Cell, scale: str, root: Path | None = None) -> dict | None:
    """The cell's divergence note (:func:`metarepro.results.divergence_path`) while it still stands: made with the
    configuration the cell has now and under the protocol versions the code has now (a fix that bumps a version, or a
    changed setting, lets the cell train again); else None."""
    path = R.divergence_path(benchmark.id, scale, cell.slug, root)
    if not path.exists():
        return None
    note = R.read_divergence(path)
    return note if divergence_stands(benchmark, note) else None


def divergence_stands(benchmark: Benchmark, note: dict) -> bool:
    """Whether a divergence note was made with its cell's configuration now and under the code's protocol versions (and,
    where a loss bound stopped it, one the benchmark still sets below the loss it saw)."""
    try:
        same = note["config_hash"] == benchmark.result_hash(Cell(note["row"], note["column"], note["variant"], note["seed"]),
                                                            note["scale"])
    except (KeyError, ValueError):  # a row or column the benchmark no longer has
        return False
    bound = getattr(benchmark, "loss_bound", None)
    if note.get("bound") is not None and (bound is None or note["loss"] <= bound):
        return False  # stopped on a bound the benchmark no longer sets, or has raised above the loss it saw
    return same and not changed_versions(note["protocol_versions"])


def divergence_reason(note: dict) -> str:
    """How a noted training's outer loss diverged: ``was not finite``, or ``reached 6.5e+11, above the divergence bound 1e+04,``."""
    return "was not finite" if note.get("bound") is None else f"reached {note['loss']:.3g}, above the divergence bound {note['bound']:.3g},"


def current_divergences(benchmark: Benchmark) -> dict[tuple, dict]:
    """The benchmark's divergence notes that still stand (:func:`divergence_stands`), by ``(row, column, variant, seed,
    scale)``."""
    return {(n["row"], n["column"], n["variant"], n["seed"], n["scale"]): n for n in R.load_divergences(benchmark.id)
            if divergence_stands(benchmark, n)}


def note_divergence(benchmark: Benchmark, cells: list[Cell], scale: str, err: NonFiniteLossError, git: dict, command: str,
                    root: Path | None) -> list[Path]:
    """Write a divergence note for each of ``cells`` (one training's cells: they all lose their record): where the outer
    loss stopped being finite (or rose above the training's bound: then ``loss`` and ``bound`` too), the message, and the
    code that ran. The finding is kept: ``compare`` and the claim
    checks name it, and ``reproduce`` does not train it again (it would diverge again) unless ``--restart``."""
    state = err.state
    segments = state.segments if state is not None else []
    versions = next((s["protocol_versions"] for s in reversed(segments) if "protocol_versions" in s), {})
    out = []
    for cell in cells:
        cfg = benchmark.config(cell, scale)
        note = {"benchmark": benchmark.id, "row": cell.row, "column": cell.column, "variant": cell.variant, "scale": scale,
                "seed": cell.seed, "config_hash": benchmark.result_hash(cell, scale), "protocol_versions": versions,
                "iteration": None if state is None else state.iteration, "iterations": benchmark.iterations(cfg),
                "message": str(err).replace(str(runs_dir()), "runs"),  # a committed note names no machine's path
                **({"loss": err.loss, "bound": err.bound} if err.bound is not None else {}),
                "provenance": {"commit": git.get("commit"), "dirty": git.get("dirty"), "command": command,
                               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "validations": [] if state is None else state.val_curve}}
        out.append(R.write_divergence(note, cell.slug, root))
    return out


#: this worker's line for its progress bar (set once per worker process)
_SLOT: int | None = None


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (else ``0..count-1``)."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip() and not d.strip().startswith("-")]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _init_worker(slots, gpus: list[str] | None = None) -> None:
    """A pool worker's start: its slot (progress line), and with ``gpus`` its own GPU, ``gpus[slot]`` made the only
    visible one before CUDA starts in this (spawned) process, so ``--device cuda`` means that GPU."""
    global _SLOT
    _SLOT = slots.get()
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[_SLOT % len(gpus)]
    keep_freed_memory()
    stop_on_signals()  # Ctrl-C / SIGTERM: finish the iteration, checkpoint, and start nothing new in this worker


def timed_record(benchmark: Benchmark, cell: Cell) -> dict | None:
    """The cell's record with measured timings, ``paper`` scale preferred over ``quick`` (smoke runs time fixtures); for a
    seed with none, seed 0's."""
    # another training seed of the cell trains the same model shape on the same budget: its time serves
    for candidate in (cell, Cell(cell.row, cell.column, cell.variant)):
        timed = {r["scale"]: r for r in R.load_records(benchmark.id) if candidate.matches(r) and "timing" in r}
        if timed:
            return timed.get("paper") or timed.get("quick")
    return None


def projected_seconds(benchmark: Benchmark, cell: Cell, scale: str, remaining: bool = False) -> float:
    """Seconds to train and test ``cell`` at ``scale`` on the machine and threads of its timed record.

    The record's measured training time scaled by the ratio of training iterations (so a benchmark that trains one
    model per grid point is projected with its grid) plus its test time scaled by the ratio of test episodes. Where
    ``metarepro time`` measured the cell's engines on the record's device, the training time is scaled to the engine
    ``--engine auto`` picks (from the one the record trained on). Cells without a timed record, or whose configs do
    not count iterations, fall back to the benchmark's rough estimate. ``remaining``: less the training already in
    the cell's checkpoint (:func:`checkpointed_fraction`; of a rough estimate, its training part).
    """
    return sum(projected_train_test(benchmark, cell, scale, remaining))


def timed_iteration(benchmark: Benchmark, cell: Cell, scale: str) -> dict | None:
    """The ``metarepro time`` entry of a cell (:mod:`benchmarks.harness.cell_timing`; its seed 0's where the seed has
    none, the seeds training alike) when it timed the configuration ``cell`` has at ``scale`` (same meta-batch and inner
    steps), else None."""
    timings = load_timings("cpu").get(benchmark.id, {})
    entry = timings.get(cell.label) or timings.get(Cell(cell.row, cell.column, cell.variant).label)
    target = benchmark.config(cell, scale)
    if entry is None or "iterations" not in target or any(entry.get(k) != target.get(k) for k in ("meta_batch", "inner_steps")):
        return None
    return entry


def projected_train_test(benchmark: Benchmark, cell: Cell, scale: str, remaining: bool = False) -> tuple[float, float]:
    """:func:`projected_seconds` as (training, test) seconds; a rough estimate is split where the benchmark splits it
    (:meth:`~benchmarks.harness.base.Benchmark.estimated_train_test`), else counts as training alone. A cell with no
    timed record but a ``metarepro time`` measurement of its meta-iteration (:func:`timed_iteration`) is projected as
    that (its fastest engine) times its iterations, plus the benchmark's rough overhead (probes) and test estimate."""
    left = 1 - checkpointed_fraction(benchmark, cell, scale) if remaining else 1.0
    record = timed_record(benchmark, cell)
    source = record["config"] if record else {}
    target = benchmark.config(cell, scale)
    timed = timed_iteration(benchmark, cell, scale) if record is None else None
    if timed is not None:
        train_s = timed["engines"][fastest_of(timed["engines"])] * target["iterations"] * target.get("runs", 1)
        train_s += benchmark.estimated_training_overhead(cell, scale)
        return train_s * left, benchmark.estimated_train_test(cell, scale)[1]
    tests = next((k for k in ("test_tasks", "test_episodes") if k in source and k in target), None)
    if record is None or "iterations" not in source or "iterations" not in target or tests is None or (
            source["iterations"] and "ms_per_iteration" not in record["timing"]):  # a record that timed no training
        train_s, test_s = benchmark.estimated_train_test(cell, scale)
        return train_s * left, test_s
    t = record["timing"]
    runs = target.get("runs", 1) / source.get("runs", 1)  # a record's timing covers all of its runs
    if not source["iterations"]:  # a cell that trains nothing (alfa-table1's Random Init): only its test was timed
        return 0.0, t["test_s"] * target[tests] / source[tests] * runs
    timed = t.get("iterations_timed", source["iterations"] * source.get("runs", 1))
    # the probes along training (Guiroy's figures) are the run's time but not the trainer's ms_per_iteration: their points
    # scale with the iterations too (a lower bound where the target scale probes more tasks per point than the record's)
    probe_s = sum(p.get("seconds", 0.0) for p in record.get("probe_curve", []))
    train_s = (t["ms_per_iteration"] * timed / 1000 + probe_s) * target["iterations"] / source["iterations"] * runs
    train_s *= engine_factor(benchmark.id, cell, record) * left
    return train_s, t["test_s"] * target[tests] / source[tests] * runs


def checkpointed_fraction(benchmark: Benchmark, cell: Cell, scale: str) -> float:
    """Fraction of the cell's training already checkpointed: the mean over its run folders
    (:meth:`~benchmarks.harness.base.Benchmark.run_directories`) of ``iteration / iterations``
    (:meth:`~benchmarks.harness.base.Benchmark.iterations`; 0 for a folder with no readable ``checkpoint.pt``, and where
    the checkpoints count no iterations, e.g. snell2017-table1's phases). Of a training that early stopping may end
    sooner (bertinetto2019-omniglot's), the fraction of its cap. A folder ``runs/`` lacks counts its parked copy
    (:mod:`benchmarks.harness.parking`), which ``reproduce`` resumes from, or as finished where the benchmark restores it
    from the weights a current record pinned (``restores_pinned_trainings``)."""
    from benchmarks.harness.parking import parked_root

    iterations = benchmark.iterations(benchmark.config(cell, scale))
    folders = benchmark.run_directories(cell, scale)
    if not iterations or not folders:
        return 0.0

    def reached(folder: str) -> int:
        here = _checkpoint_iteration(runs_dir() / folder / "checkpoint.pt")
        if here is None:
            here = _checkpoint_iteration(parked_root() / folder / "checkpoint.pt")
        if here is None and benchmark.restores_pinned_trainings:
            from benchmarks.harness.checkpoints import pinned_training

            here = iterations if pinned_training(folder.rsplit("/", 1)[1], scale) is not None else None
        return here or 0

    return sum(min(1.0, reached(f) / iterations) for f in folders) / len(folders)


def _checkpoint_state(path: Path) -> dict | None:
    """The training state a checkpoint holds (:class:`metarepro.trainer.TrainState` as saved); ``None`` where there is
    no readable one."""
    from metarepro.trainer import CheckpointError, load_checkpoint

    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path)["state"]
        int(state["iteration"])
        return state
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


def _checkpoint_iteration(path: Path) -> int | None:
    """The iteration a checkpoint was written at; ``None`` where there is no readable one."""
    state = _checkpoint_state(path)
    return None if state is None else int(state["iteration"])


def early_stopping_summary(state: dict) -> str:
    """Where a training's validation stands: ``"best at 3100, 16 validation(s) since"`` (per named criterion where it
    selects on several), ``"stopped early"`` once patience ran out; ``"-"`` for a training that validates nothing."""
    def one(best_iteration, wait) -> str:
        return f"best at {best_iteration}, {wait} validation(s) since"

    if state.get("criteria"):
        text = "; ".join(f"{name}: {one(c['best_iteration'], c['wait'])}" for name, c in state["criteria"].items())
    elif state.get("best_iteration") is not None:
        text = one(state["best_iteration"], state.get("wait", 0))
    else:
        return "-"
    return text + ("; stopped early" if state.get("stopped_early") else "")


def served_folders() -> dict[str, list[tuple[Benchmark, Cell]]]:
    """Run folder (``<benchmark>/<scale>/<name>`` under the runs root) -> the cells of every benchmark, any variant, whose
    current configuration trains in it."""
    from benchmarks import BENCHMARKS

    served: dict[str, list[tuple[Benchmark, Cell]]] = {}
    for benchmark in BENCHMARKS.values():
        for scale in R.SCALES:
            for cell in benchmark.cells(variants=["all"], scale=scale):
                for folder in benchmark.run_directories(cell, scale):
                    served.setdefault(folder, []).append((benchmark, cell))
    return served


def checkpointed_runs() -> list[dict]:
    """Every training checkpoint under :func:`runs_dir`: how far it trained, when it last wrote, the cells it serves.

    Folders are matched to cells through :meth:`~benchmarks.harness.base.Benchmark.run_directories` (a folder can serve
    cells of several benchmarks: finn2017-table1's MAML models also serve nichol2018-table1's MAML rows).
    Early stopping's kept models (:func:`metarepro.trainer.is_snapshot`) are not training progress and are left out. A
    parked copy (:mod:`benchmarks.harness.parking`) of a folder ``runs/`` lacks is listed with ``(parked)`` after its
    file name.
    """
    from benchmarks import BENCHMARKS
    from benchmarks.harness.parking import parked_root

    served = served_folders()
    rows = []
    here = sorted(runs_dir().glob("*/*/*/*.pt"))
    folders_here = {p.parent.relative_to(runs_dir()) for p in here}
    parked = [p for p in sorted(parked_root().glob("*/*/*/*.pt")) if p.parent.relative_to(parked_root()) not in folders_here]
    for path in here + parked:
        if is_snapshot(path):
            continue
        root = runs_dir() if path in here else parked_root()
        benchmark_id, scale, name = path.parent.relative_to(root).parts
        cells = served.get(f"{benchmark_id}/{scale}/{name}", [])
        try:
            written = time.strftime("%Y-%m-%d %H:%M", time.gmtime(path.stat().st_mtime))
        except OSError:  # removed meanwhile (a `reproduce --restart`)
            continue
        state = _checkpoint_state(path)
        iteration = None if state is None else int(state["iteration"])
        target = cells[0][0].iterations(cells[0][0].config(cells[0][1], scale)) if cells and path.name == "checkpoint.pt" else None
        if cells:
            labels = "; ".join(c.label if b.id == benchmark_id else f"{b.id}: {c.label}" for b, c in cells)
        elif benchmark_id not in BENCHMARKS:
            labels = "(not a benchmark of this checkout)"
        else:
            labels = "(no cell's current configuration: an older one)"
        rows.append({
            "benchmark": benchmark_id, "scale": scale, "run": f"{name}/{path.name}" + ("" if root == runs_dir() else " (parked)"),
            "iteration": "-" if iteration is None else iteration, "of": target or "-",
            "validation": "-" if state is None else early_stopping_summary(state), "written (UTC)": written,
            "records current": f"{sum(is_current(b, c, scale) for b, c in cells)}/{len(cells)}" if cells else "-",
            "cells": labels,
        })
    return rows


def restart_folders(benchmark: Benchmark, cells: list[Cell], scale: str) -> list[Path]:
    """What ``reproduce --restart`` deletes: every run folder of the cells (each ``-run<i>`` and grid point included;
    a folder under the benchmark that trains the model, e.g. finn2017-table1's for nichol's MAML row)."""
    folders = {runs_dir() / f for c in cells for f in benchmark.run_directories(c, scale)}
    folders |= {runs_dir() / benchmark.id / scale / benchmark.training_key(c, scale) for c in cells}
    return sorted(folders)


def engine_factor(benchmark_id: str, cell: Cell, record: dict) -> float:
    """Time of the engine ``--engine auto`` picks over the time of the engine ``record`` trained on (1 if not timed)."""
    entry = load_timings(record["timing"].get("device", "cpu")).get(benchmark_id, {}).get(cell.label)
    used = record.get("provenance", {}).get("engine", "func")
    if not entry or used not in entry["engines"]:
        return 1.0
    engines = entry["engines"]
    return engines[fastest_of(engines)] / engines[used]


def group_seconds(benchmark: Benchmark, cells: list[Cell], scale: str, remaining: bool = False) -> float:
    """Projected seconds of cells that share one trained model: trained once, each cell tested on its own."""
    parts = [projected_train_test(benchmark, c, scale, remaining) for c in cells]
    return max(train for train, _ in parts) + sum(test for _, test in parts)


def run_order(groups: list, seconds: dict[int, float], started: dict[int, bool]) -> list:
    """The order groups of cells (each sharing one training) are run in: trainings already checkpointed part-way first,
    nearest to done first, so a run stopped and restarted again and again finishes its trainings instead of starting a
    new one each time; then the rest longest first, so the last job to finish is short. ``seconds`` and ``started``
    are keyed by ``id(group)``."""
    return sorted(groups, key=lambda g: (not started[id(g)], seconds[id(g)] if started[id(g)] else -seconds[id(g)]))


def estimated_hours(benchmark: Benchmark, cells: list[Cell], scale: str) -> float:
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(benchmark.training_key(c, scale), []).append(c)
    return sum(group_seconds(benchmark, g, scale) for g in groups.values()) / 3600


def _run_group(benchmark_id: str, scale: str, cells: list[dict], engine: str, threads: int, progress: bool,
               command: str, jobs: int, git: dict, device: str, allow_protocol_change: bool = False,
               restart: bool = False, root: str | None = None) -> list[str]:
    """Worker: run cells that share one trained model, write their records."""
    torch.set_num_threads(threads)
    set_run_context(**git, command=command, allow_protocol_change=allow_protocol_change)  # what each segment names
    benchmark = get_benchmark(benchmark_id)
    group = [Cell(**c) for c in cells]
    with training_locks(benchmark, group, scale):
        if restart:  # under the lock: never delete a folder another process is training in
            from benchmarks.harness.parking import discard_parked

            for folder in restart_folders(benchmark, group, scale):
                shutil.rmtree(folder, ignore_errors=True)
            discard_parked([f.relative_to(runs_dir()).as_posix() for f in restart_folders(benchmark, group, scale)])
        return _run_locked_group(benchmark, group, scale, engine, threads, progress, command, jobs, git, device, restart,
                                 None if root is None else Path(root))


def training_locks(benchmark: Benchmark, cells: list[Cell], scale: str) -> contextlib.ExitStack:
    """Hold the lock of every run folder the cells train in (:meth:`~benchmarks.harness.base.Benchmark.run_directories`),
    in sorted order so two processes cannot deadlock; a folder another process holds is waited for, with a message.

    One lock per trained model, whichever benchmark asks: nichol2018-table1's MAML rows train in finn2017-table1's
    folder, hyperrepr-omniglot's ProtoNet in l2g-omniglot's, so two ``reproduce`` processes never train one checkpoint.
    """
    stack = contextlib.ExitStack()
    folders = sorted({f for c in cells for f in benchmark.run_directories(c, scale)})
    try:
        for folder in folders:
            lock = file_lock(runs_dir() / ".locks" / (folder.replace("/", "--") + ".lock"))
            try:
                stack.enter_context(lock.acquire(timeout=0))
            except lock_timeouts():
                print(f"{benchmark.id} [{scale}]: runs/{folder} is being trained by another metarepro process; waiting for it "
                      "(its record, once written, is not trained again)", file=sys.stderr, flush=True)
                stack.enter_context(lock.acquire())
    except BaseException:
        stack.close()
        raise
    return stack


def _run_locked_group(benchmark: Benchmark, group: list[Cell], scale: str, engine: str, threads: int, progress: bool,
                      command: str, jobs: int, git: dict, device: str, restart: bool, root: Path | None) -> list[str]:
    benchmark_id = benchmark.id
    written = []
    for cell in group:
        if stop_requested():  # a stopped worker handed a queued group: leave it for the next run
            raise KeyboardInterrupt
        if not restart and is_current(benchmark, cell, scale, root):  # written by another process while this one waited
            print(f"  up to date: {cell.label} [{scale}] (written by another process meanwhile)", flush=True)
            continue
        from benchmarks.harness.parking import unpark

        for folder in unpark(benchmark.run_directories(cell, scale)):  # a training parked by an earlier machine
            print(f"  resuming runs/{folder} from its parked copy (results/parked)", flush=True)
        try:
            with collect_trainings() as trainings:
                result = benchmark.run_cell(cell, scale, runs_dir() / benchmark_id / scale, engine=engine, progress=progress,
                                            device=device, progress_position=_SLOT)
        except NonFiniteLossError as err:  # the training every remaining cell of the group reads: none gets a record
            left = group[group.index(cell):]
            for path in note_divergence(benchmark, left, scale, err, git, command, root):
                print(f"  noted the divergence: {path}", flush=True)
            raise
        bad = int(benchmark.diverged(cell, scale, result.scores).sum())
        if bad:  # a diverged adaptation: say so, write no record, go on with the group's other cells
            print(f"{benchmark_id} {cell.label} [{scale}]: {bad} of {len(result.scores)} test episodes gave a non-finite "
                  "or diverged score (the adaptation diverged); no record written", file=sys.stderr)
            continue
        cfg = benchmark.config(cell, scale)
        pinned = ({"checkpoint": pin_checkpoint(benchmark, cell, scale, result.scores, device, root, result.extra)}
                  if scale in PINNED_SCALES else {})
        record = R.make_record(
            benchmark=benchmark_id, row=cell.row, column=cell.column, variant=cell.variant, scale=scale,
            metric=benchmark.metric, scores=result.scores, config=cfg, deviations=result.deviations,
            provenance=R.provenance(
                **git, command=command, engine=engine, precision=cfg.get("precision", "fp32"), threads=threads, jobs=jobs,
                device=describe_device(device), wall_time_s=round(result.wall_time_s, 2), peak_rss_mb=peak_rss_mb(),
                train_wall_time_s=round(result.train_wall_time_s, 2),
                seeds={k: v for k, v in cfg.items() if k.endswith("seed")}, dataset_digest=benchmark.dataset_digest(),
                conv4_cpu_layout=conv4_cpu_layout(),
            ),
            extra={**result.extra, "trainings": [relative_training(t) for t in trainings]}, score_unit=result.score_unit,
            seed=cell.seed,
        )
        record.update(pinned)
        written.append(str(R.write_record(record, cell.slug, root)))
    return written


def promote_local(benchmark: Benchmark, scale: str, cells: list[Cell] | None = None, device: str = "cpu",
                  log=print) -> list[str]:
    """Pin the user's own current records (``reproduce`` without ``--pin``: :func:`metarepro.results.local_results_dir`) of
    ``cells`` (default every one at ``scale``) into the committed results, as ``reproduce --pin`` would have written them:
    at a pinned scale the cell's weights are copied from its run folder and re-scored (:func:`pin_checkpoint`), and the
    record names them. A stale record, or a cell that already has a pinned record, is left alone (a pinned record is
    never overwritten); the record's scores, configuration and provenance are the run's, with ``promoted`` added (the
    command and when). Returns the paths written."""
    local = R.local_results_dir()
    wanted = None if cells is None else set(cells)
    written, seen = [], set()
    for record in R.load_records(benchmark.id, local):
        cell = Cell.of(record)
        if record["scale"] != scale or (wanted is not None and cell not in wanted):
            continue
        seen.add(cell)
        if not record_is_current(benchmark, record):
            log(f"  stale, not pinned (re-run it): {cell.label} [{scale}]")
            continue
        if R.record_path(benchmark.id, scale, cell.slug).exists():
            log(f"  already pinned, left alone: {cell.label} [{scale}]")
            continue
        promoted = {**record, "provenance": {**record["provenance"], "promoted": {**command_stamp(), "from": "results/local"}}}
        if scale in PINNED_SCALES:
            promoted["checkpoint"] = pin_checkpoint(benchmark, cell, scale, np.asarray(record["scores"]), device, None, record)
        path = R.write_record(promoted, cell.slug)
        log(f"  pinned {path}" + ("" if "path" in promoted.get("checkpoint", {"path": 1}) else
                                   f" (checkpoint not pinned: {promoted['checkpoint']['why']})"))
        written.append(str(path))
    for cell in sorted((wanted or set()) - seen, key=lambda c: c.label):
        log(f"  no record of your own: {cell.label} [{scale}]")
    return written


def command_stamp() -> dict:
    """The command that is running and when (UTC), for a record a command other than ``reproduce`` changes."""
    return {"command": " ".join(shlex.quote(a) for a in ["metarepro", *sys.argv[1:]]) if sys.argv else "metarepro",
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _pins_its_file(record: dict) -> bool:
    """The record names a pinned file, and no other weights stand there now: a file overwritten since pins nothing, while
    an absent one still counts (a large pinned file comes from the DVC remote, ``dvc pull``; re-pinning is no repair)."""
    from metarepro.data.store import file_digest

    entry = record.get("checkpoint") or {}
    if "path" not in entry:
        return False
    path = R.results_dir() / entry["path"]
    return not path.is_file() or file_digest(path) == entry.get("sha256")


def pin_missing_checkpoints(benchmark: Benchmark, scale: str, cells: list[Cell] | None = None, device: str = "cpu",
                            log=print) -> list[str]:
    """Pin the weights of committed records at ``scale`` (a pinned scale) that pin none, where the run folder still holds
    the model that gave their scores (a benchmark that has since learned to name it, e.g. a tuned row's chosen model:
    :meth:`~benchmarks.harness.base.Benchmark.chosen_training`): copied and re-scored as ``reproduce --pin`` does
    (:func:`pin_checkpoint`). Only a re-score equal to the record's scores pins; the record then gains its ``checkpoint``
    entry and ``provenance.checkpoint_pinned`` (the command and when), its numbers untouched; where it still pins none for
    another reason than it gave (the run folder is gone), its ``checkpoint`` entry gives the new one, stamped the same way.
    Each re-score runs in the Conv-4 layout the record was made in, as ``metarepro evaluate`` re-scores it. Stale records and
    records that pin a checkpoint are left alone, unless its file now holds other weights (overwritten). Returns the paths rewritten."""
    if scale not in PINNED_SCALES:
        raise ValueError(f"{scale} records pin no checkpoints (only {', '.join(PINNED_SCALES)} do)")
    wanted = None if cells is None else set(cells)
    written = []
    for record in R.load_records(benchmark.id):
        cell = Cell.of(record)
        if record["scale"] != scale or (wanted is not None and cell not in wanted) or _pins_its_file(record):
            continue
        if not record_is_current(benchmark, record):
            log(f"  stale, left alone: {cell.label} [{scale}]")
            continue
        with conv4_layout(record["provenance"].get("conv4_cpu_layout", "nchw")):
            entry = pin_checkpoint(benchmark, cell, scale, np.asarray(record["scores"]), device, None, record)
        if "path" not in entry:
            log(f"  not pinned: {cell.label} [{scale}]: {entry['why']}")
            if entry == record.get("checkpoint") or "path" in (record.get("checkpoint") or {}):
                continue  # the same reason as before, or an overwritten file's record: nothing to rewrite
        else:
            log(f"  pinned {entry['path']} for {cell.label} [{scale}]")
        # a record that still pins none says the reason as it now stands (the weights gone, not "no single model")
        written.append(str(R.write_record({**record, "checkpoint": entry,
                                           "provenance": {**record["provenance"], "checkpoint_pinned": command_stamp()}}, cell.slug)))
    return written


def relative_training(training: dict) -> dict:
    """A collected training (:func:`metarepro.trainer.collect_trainings`) with its checkpoint relative to the runs root."""
    path = Path(training["checkpoint"])
    try:
        path = path.resolve().relative_to(runs_dir().resolve())
    except ValueError:
        pass
    return {**training, "checkpoint": str(path), "segments": [dict(s) for s in training["segments"]]}


def reproduce(benchmark: Benchmark, scale: str, cells: list[Cell], *, jobs: int = 1, threads: int = 1,
              engine: str = "auto", restart: bool = False, progress: bool = True, device: str = "cpu",
              log=print, allow_protocol_change: bool = False, pin: bool = False, launcher: str = "pool",
              launcher_options: dict | None = None) -> list[str]:
    """Train and evaluate ``cells``; skip those already current unless ``restart``.

    ``launcher``: ``"pool"`` runs the groups here (``jobs`` worker processes); ``"ray"``, ``"slurm"`` or ``"local"``
    (submitit's local executor) run each group as a remote task (:mod:`benchmarks.harness.launchers`;
    ``launcher_options``: ``slurm`` parameters, ``gpus`` per task, ``retries``).

    ``pin``: write the records (and pinned checkpoints) into the committed results root (:func:`metarepro.results.results_dir`:
    what DVC stages and maintainers do); else into the user's own, git-ignored one (:func:`metarepro.results.local_results_dir`),
    whose current records are what is skipped. A pinned record is never overwritten by a user's run.

    Each group of cells sharing a trained model runs under the locks of its run folders (:func:`training_locks`).
    ``allow_protocol_change``: resume checkpoints trained under other protocol versions (recorded in their segments).

    ``engine="auto"``: each group of cells trains on the inner-loop engine ``metarepro time`` measured fastest for it
    on this device (:func:`benchmarks.harness.cell_timing.resolve_engine`; ``func`` where none was measured).
    """
    for cell in cells:
        benchmark.check_cell(cell)
    root = None if pin else R.local_results_dir()
    todo = [c for c in cells if restart or not is_current(benchmark, c, scale, root)]
    for c in cells:
        if c not in todo:
            log(f"  up to date: {c.label} [{scale}]")
    diverged_before = {c: note for c in todo if not restart and (note := current_divergence(benchmark, c, scale, root))}
    for c, note in diverged_before.items():
        log(f"  diverged before, not trained again: {c.label} [{scale}] (outer loss {divergence_reason(note)} at iteration {note['iteration']}; "
            f"{R.divergence_path(benchmark.id, scale, c.slug, root)}; --restart trains it again)")
    todo = [c for c in todo if c not in diverged_before]
    groups: dict[str, list[Cell]] = {}
    for c in todo:
        groups.setdefault(benchmark.training_key(c, scale), []).append(c)
    with R.records_read_once():  # the projection reads the same records once per cell otherwise
        seconds = {id(g): group_seconds(benchmark, g, scale, remaining=not restart) for g in groups.values()}
        started = {id(g): not restart and any(checkpointed_fraction(benchmark, c, scale) > 0 for c in g)
                   for g in groups.values()}
    order = run_order(list(groups.values()), seconds, started)
    total = sum(seconds.values())
    if todo:
        log(f"{benchmark.id}: {len(todo)} cell(s) at {scale} scale, expected ~{total / 60 / max(1, min(jobs, len(order))):.0f} min "
            f"with {jobs} job(s) x {threads} thread(s) (projected from the cells' timed records where they have one, "
            "less the training already checkpointed)")
    command = " ".join(shlex.quote(a) for a in ["metarepro", *sys.argv[1:]]) if sys.argv else "metarepro"
    git = R.git_state()  # the code that runs is the code at launch, whatever is committed meanwhile
    engines = [resolve_engine(engine, benchmark.id, g, device) for g in order]
    if engine == "auto" and any(e != "func" for e in engines):
        log("engine per cell (measured fastest here by `metarepro time`): "
            + "; ".join(f"{g[0].label}: {e}" for g, e in zip(order, engines)))
    engine_of = {id(g): e for g, e in zip(order, engines)}
    args = lambda g: (benchmark.id, scale, [c.__dict__ for c in g], engine_of[id(g)], threads, progress, command, jobs, git,  # noqa: E731
                      device, allow_protocol_change, restart, None if root is None else str(root))
    written: list[str] = []
    diverged: list[str] = []  # groups stopped on a non-finite loss: the others go on, and the run ends with their list

    def run_on(result: Callable[[], list[str]]) -> None:
        try:
            paths = result()
        except NonFiniteLossError as err:
            diverged.append(str(err))
            log(f"  {err} The other training groups go on.")
            return
        written.extend(paths)
        for path in paths:
            log(f"  wrote {path}")

    started = time.perf_counter()
    if launcher != "pool" and order:
        from benchmarks.harness.launchers import launch

        written = launch(launcher, [args(g) for g in order], git, threads, log=log, **(launcher_options or {}))
        for p in written:
            log(f"  wrote {p}")
    elif jobs <= 1 or len(order) <= 1:
        for g in order:
            run_on(lambda g=g: _run_group(*args(g)))
    else:
        ctx = multiprocessing.get_context("spawn")
        slots = ctx.Manager().Queue()
        for i in range(jobs):
            slots.put(i)
        gpus = visible_gpus() if device == "cuda" else None  # one worker per GPU (the CLI caps jobs at their count)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(slots, gpus)) as pool:

            def stop_workers(signum, frame):  # SIGTERM to this process: pass it to the workers, then stop here too
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    os.kill(process.pid, signal.SIGTERM)
                raise KeyboardInterrupt

            in_main_thread = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGTERM, stop_workers) if in_main_thread else None
            try:
                futures = [pool.submit(_run_group, *args(g)) for g in order]
                for f in as_completed(futures):
                    run_on(f.result)
            except KeyboardInterrupt:  # workers checkpoint and stop; queued groups they pick up end at once
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
    if todo:
        log(f"{benchmark.id}: done in {(time.perf_counter() - started) / 60:.1f} min")
    if diverged:
        raise NonFiniteLossError(f"{len(diverged)} of {len(order)} training group(s) stopped on a non-finite loss or one above "
                                 "its bound (each keeps its last good checkpoint; the other groups ran and wrote their records):"
                                 "\n  " + "\n  ".join(diverged))
    return written


def comparison(benchmark: Benchmark, include_variants: bool = True) -> list[dict]:
    """Published vs reproduced for every cell (smoke records never count)."""
    published = {(p.row, p.column): p for p in R.load_published(benchmark.id)}
    records = [r for r in R.load_records(benchmark.id) if r["scale"] != "smoke"]
    rows = []
    for cell in benchmark.cells(variants=["all"] if include_variants else None):
        pub = published.get((cell.row, cell.column))
        if pub is None:
            continue
        recs = [r for r in records if cell.matches(r)]
        known = benchmark.known_deviations.get((cell.row, cell.column)) if cell.variant == MAIN else None
        row = R.compare_cell(pub, recs, benchmark.result_hash(cell, "paper"), cell.variant, known,
                             benchmark.result_hash(cell, "quick"))
        row.update(benchmark=benchmark.id, seed=cell.seed)
        if benchmark.not_comparable and row["reproduced_mean"] is not None:  # e.g. CPU seconds against the paper's GPU seconds
            row.update(verdict="not_comparable", not_comparable=benchmark.not_comparable, difference_verdict=None)
        row["protocol_deviations"] = benchmark.protocol_deviations(cell, "paper")
        shown = next((r for s in ("paper", "quick") for r in recs if r["scale"] == s), None)
        if shown is not None:
            row.update(trained=training_summary(shown))
            change = change_since_made(benchmark, shown)
            if change and row["verdict"] != "stale":
                row.update(verdict="stale", stale_reason=change)
        rows.append(row)
    for pub in published.values():  # baselines the paper cites and the suite does not train
        if pub.row in benchmark.cited_rows:
            row = R.compare_cell(pub, [], "", MAIN)
            row.update(benchmark=benchmark.id, seed=0, verdict="cited")
            rows.append(row)
    return rows


def extra_rows(benchmark: Benchmark) -> list[dict]:
    """Records of methods that are not rows of the paper (``--method``), for display."""
    out = []
    for r in R.load_records(benchmark.id):
        if r["row"] in benchmark.rows or r["scale"] == "smoke":
            continue
        out.append({"row": r["row"], "column": r["column"], "variant": r["variant"], "scale": r["scale"],
                    "reproduced": f"{r['mean']:.3f} ± {r['ci95']:.3f}", "current": record_is_current(benchmark, r)})
    return out


def current_protocol_versions() -> dict[str, int]:
    """``{"trainer": v, "<Class>": v}`` for the trainer and every ``nn.Module`` class of the ``methods`` package now."""
    import importlib
    import pkgutil

    import methods
    from metarepro.trainer import TRAINER_PROTOCOL_VERSION

    versions = {"trainer": TRAINER_PROTOCOL_VERSION}
    for info in pkgutil.iter_modules(methods.__path__):
        module = importlib.import_module(f"methods.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj.__module__ == module.__name__:
                versions[obj.__name__] = int(getattr(obj, "PROTOCOL_VERSION", 1))
    return versions


def protocol_change(record: dict) -> str | None:
    """Why the code's protocol versions no longer match those ``record``'s model was trained under, or None.

    The versions of each training's last recorded segment are compared with :func:`current_protocol_versions`; a class
    the code no longer has (renamed, moved) is not a change. Records made before segments existed count as version 1
    of everything, the versions' starting point (issue #14)."""
    for versions in trained_protocol_versions(record):
        changed = changed_versions(versions)
        if changed:
            return "trained under " + ", ".join(f"{k} v{old} (now v{new})" for k, (old, new) in sorted(changed.items()))
    return None


def changed_versions(versions: dict[str, int]) -> dict[str, tuple[int, int]]:
    """``{class: (then, now)}`` for each protocol version in ``versions`` the code has changed since; a class the code no
    longer has (renamed, moved) is not a change."""
    now = current_protocol_versions()
    return {k: (v, now[k]) for k, v in versions.items() if k in now and now[k] != v}


def trained_protocol_versions(record: dict) -> list[dict[str, int]]:
    """Per training of ``record``, the protocol versions its last recorded segment names (none for records made before
    segments existed, or a training whose segments are all unknown)."""
    trainings = record.get("trainings")
    out = []
    for training in trainings if isinstance(trainings, list) else []:
        known = [s["protocol_versions"] for s in training["segments"] if "protocol_versions" in s]
        if known:
            out.append(known[-1])
    return out


def probe_change(benchmark: Benchmark, record: dict) -> str | None:
    """Why ``record``'s probe curve no longer measures what ``benchmark``'s probes measure now, or None: points taken
    under other settings than :meth:`Benchmark.probe_settings` gives its configuration (e.g. after a probe fix bumped
    the benchmark's probe version, which the configuration does not hold). ``reproduce`` re-takes such points from the
    run's snapshots without training again (:func:`metarepro.trainer.reprobe`)."""
    try:
        now = benchmark.probe_settings(record["config"])
    except KeyError:  # a configuration made before a setting the probes read existed
        return "probe settings not readable from the record's configuration"
    if now is None:
        return None
    curve = record.get("probe_curve", [])
    other = [p["iteration"] for p in curve if p.get("settings") != now]
    if not other:
        return None
    return f"{len(other)} of {len(curve)} probe points taken under other probe settings (the first at iteration {other[0]})"


def change_since_made(benchmark: Benchmark, record: dict) -> str | None:
    """Why ``record`` no longer stands beside its configuration: trained under other protocol versions
    (:func:`protocol_change`), a validation choice the code's rule makes otherwise (:func:`selection_change`), or probe
    points taken under other settings (:func:`probe_change`); None."""
    return protocol_change(record) or selection_change(record) or probe_change(benchmark, record)


def record_is_current(benchmark: Benchmark, record: dict) -> bool:
    """Whether ``record`` was made with the configuration its cell has now and nothing changed since
    (:func:`change_since_made`); else it is stale: re-run it."""
    cell = Cell.of(record)
    try:
        same_config = R.result_hash(record["config"]) == benchmark.result_hash(cell, record["scale"])
    except (KeyError, ValueError):  # a row or column the benchmark no longer has
        return False
    return same_config and change_since_made(benchmark, record) is None


#: fewest training seeds a claim check counts as evidence (issue #14: a claim rests on at least 3 trained models per row)
MIN_CLAIM_SEEDS = 3


def across_seeds(differences: list[float]) -> tuple[float, float | None]:
    """Mean of per-seed paired differences and its 95% Student-t half-width ``t(0.975, n-1) sd / sqrt(n)`` (None at n = 1)."""
    if len(differences) < 2:
        return float(differences[0]), None
    return mean_ci95(differences, "run")


def claim_verdict(diff: float, ci: float | None, higher_is_better: bool, seeds: int) -> str:
    """``yes`` / ``reversed`` / ``no difference`` when the across-seed interval excludes 0 (or not) with at least
    :data:`MIN_CLAIM_SEEDS` seeds; ``too few seeds`` otherwise (the single-seed reading is shown, never a verdict)."""
    if seeds < MIN_CLAIM_SEEDS or ci is None:
        return f"too few seeds ({seeds} of {MIN_CLAIM_SEEDS})"
    better = diff > ci if higher_is_better else diff < -ci
    worse = diff < -ci if higher_is_better else diff > ci
    return "yes" if better else ("reversed" if worse else "no difference")


def claim_checks(benchmark: Benchmark) -> list[dict]:
    """Each paired claim per column and protocol, at the largest scale both rows have current records for.

    Per training seed, the paired difference (method - baseline) on the shared test episodes
    (:func:`metarepro.results.paired_difference`); across seeds, the mean of those differences with the Student-t
    interval over seeds (:func:`across_seeds`): the claim holds only if that interval excludes 0, with at least
    :data:`MIN_CLAIM_SEEDS` seeds (:func:`claim_verdict`). Seed ``s`` of one row is paired with seed ``s`` of the other.
    """
    records = {(r["row"], r["column"], r["variant"], r.get("seed", 0), r["scale"]): r for r in R.load_records(benchmark.id)
               if record_is_current(benchmark, r)}
    diverged = current_divergences(benchmark)
    out = []
    for claim, base_row, method_row, *protocols in benchmark.paired_claims():
        # a claim names the two rows' protocols, or holds within each protocol
        pairs = [tuple(protocols)] if protocols else [(v, v) for v in [MAIN, *benchmark.variants]]
        for base_variant, method_variant in pairs:
            variant = base_variant if base_variant == method_variant else f"{base_variant} vs {method_variant}"
            for column in benchmark.columns:
                for scale in ("paper", "quick"):
                    per_seed, lost = {}, []
                    for seed in benchmark.seeds(scale):
                        keys = ((base_row, column, base_variant, seed, scale), (method_row, column, method_variant, seed, scale))
                        a, b = (records.get(k) for k in keys)
                        if a and b:
                            per_seed[seed] = R.paired_difference(a, b)
                        lost += [f"{k[0]} seed {seed} at iteration {diverged[k]['iteration']}" for k in keys if k in diverged]
                    if not per_seed and not lost:
                        continue
                    row = {"claim": claim, "column": column, "protocol": variant, "scale": benchmark.scale_name(scale),
                           "seeds": len(per_seed)}
                    if per_seed:
                        diff, ci = across_seeds([d for d, _ in per_seed.values()])
                        row.update({"per seed (paired, 95% CI)": "; ".join(f"{s}: {d:+.2f} ± {c:.2f}" for s, (d, c) in per_seed.items()),
                                    "method - baseline (across seeds)": f"{diff:+.3f}" + ("" if ci is None else f" ± {ci:.3f}"),
                                    "holds": claim_verdict(diff, ci, benchmark.column_higher_is_better(column), len(per_seed))})
                    else:
                        row["holds"] = f"too few seeds (0 of {MIN_CLAIM_SEEDS})"
                    if lost:  # a training that stopped on a non-finite loss: a finding, not a missing run
                        row["diverged (no record)"] = "; ".join(lost)
                    out.append(row)
                    break
    return out


def correlation_checks(benchmark: Benchmark) -> list[dict]:
    """Each correlation claim (:meth:`Benchmark.correlation_claims`) at the largest scale with current records: one
    Pearson R per training run (points within a run are autocorrelated, so they are never pooled across runs), summarised
    across runs by Fisher's z with its 95% Student-t interval (:func:`metarepro.evaluate.correlation_across_runs`). The
    claim holds when that interval excludes 0 on the claimed side, with at least :data:`MIN_CLAIM_SEEDS` runs. A claim
    that reads one side of its own measure's peak (:attr:`~benchmarks.harness.base.CorrelationClaim.splits_at_its_own_peak`)
    is judged instead on each run's z minus the z of its steps in random order (the split's own lean), with the
    Student-t interval of those differences over runs."""
    from metarepro.evaluate import correlation_across_runs
    from metarepro.landscape import pearson

    records = {(r["row"], r["column"], r.get("seed", 0), r["scale"]): r for r in R.load_records(benchmark.id)
               if r["variant"] == MAIN and record_is_current(benchmark, r)}
    out = []
    for claim in benchmark.correlation_claims():
        columns = claim.columns or benchmark.columns
        groups = [(c, (c,)) for c in columns] if claim.over == "training" else [(f"{columns[0]} .. {columns[-1]}", columns)]
        for label, group in groups:
            for scale in ("paper", "quick"):
                per_seed, undefined, over_shuffled = {}, {}, {}
                own_peak = claim.over == "training" and claim.splits_at_its_own_peak
                for seed in benchmark.seeds(scale):
                    found = [records.get((claim.row, c, seed, scale)) for c in group]
                    if not all(found):
                        continue
                    peak = claim.peak_iteration(found[0]["probe_curve"]) if claim.over == "training" else None
                    undefined[seed] = "undefined" if peak is None else f"undefined (peak at iteration {peak})"
                    points = claim.points(found[0]["probe_curve"]) if claim.over == "training" else [r["probe_curve"][-1] for r in found]
                    # undefined (a constant series, or fewer than 3 points: two give R = +-1 whatever they are, e.g. a peak
                    # next to the curve's end): shown, and not counted as a run
                    xs, ys = claim.series(points)
                    per_seed[seed] = pearson(xs, ys) if len(xs) > 2 else math.nan
                    if own_peak:
                        over_shuffled[seed] = claim.z_over_shuffled_steps(found[0]["probe_curve"])
                if not per_seed:
                    continue
                defined = [v for v in per_seed.values() if math.isfinite(v)]
                if not defined:
                    out.append({"claim": claim.claim, "column": label, "protocol": MAIN, "scale": benchmark.scale_name(scale), "seeds": 0,
                                "R per run": "; ".join(f"{s}: {undefined[s]}" for s in per_seed), "holds": "undefined"})
                    break
                mean, low, high = correlation_across_runs(defined)
                # the verdict on the claimed side: a positive claim holds when the whole interval is above 0
                centre, half = (mean, None) if low is None else ((math.atanh(low) + math.atanh(high)) / 2,
                                                                 (math.atanh(high) - math.atanh(low)) / 2)
                row = {"claim": claim.claim, "column": label, "protocol": MAIN, "scale": benchmark.scale_name(scale), "seeds": len(defined),
                       "R per run": "; ".join(f"{s}: {v:+.2f}" if math.isfinite(v) else f"{s}: {undefined[s]}" for s, v in per_seed.items()),
                       f"R({claim.x}, {claim.y}) across runs": f"{mean:+.3f}" + ("" if low is None else f" [{low:+.3f}, {high:+.3f}]"),
                       "holds": claim_verdict(claim.expected_sign * centre, half, True, len(defined))}
                if own_peak:  # judged on the lean beyond what the split gives the run's own steps in random order
                    kept = {s: v for s, v in over_shuffled.items() if math.isfinite(v)}
                    row["z - z of its steps shuffled, per run"] = "; ".join(f"{s}: {v:+.2f}" for s, v in kept.items()) or "-"
                    if kept:
                        centre, half = across_seeds(list(kept.values()))
                        row["z - z shuffled, across runs"] = f"{centre:+.3f}" + ("" if half is None else f" ± {half:.3f}")
                        row.update(seeds=len(kept), holds=claim_verdict(claim.expected_sign * centre, half, True, len(kept)))
                    else:
                        row.update(seeds=0, holds="undefined")
                out.append(row)
                break
    return out


def level_checks(benchmark: Benchmark) -> list[dict]:
    """Each level claim (:meth:`Benchmark.level_claims`) per column, at the largest scale both rows have current records
    for: per training seed, the method's level minus the baseline's (:meth:`~benchmarks.harness.base.LevelClaim.level`
    of each run's probe curve); across seeds, their mean with the Student-t interval (:func:`across_seeds`); the claim
    holds when that interval excludes 0 on the claimed side, with at least :data:`MIN_CLAIM_SEEDS` seeds."""
    records = {(r["row"], r["column"], r.get("seed", 0), r["scale"]): r for r in R.load_records(benchmark.id)
               if r["variant"] == MAIN and record_is_current(benchmark, r) and r.get("probe_curve")}
    out = []
    for claim in benchmark.level_claims():
        for column in benchmark.columns:
            for scale in ("paper", "quick"):
                pairs = {seed: (claim.level(records[(claim.method, column, seed, scale)]["probe_curve"]),
                                claim.baseline_level(records[(claim.baseline, column, seed, scale)]["probe_curve"]))
                         for seed in benchmark.seeds(scale)
                         if (claim.method, column, seed, scale) in records and (claim.baseline, column, seed, scale) in records}
                if not pairs:
                    continue
                diffs = [m - b for m, b in pairs.values()]
                mean, half = across_seeds(diffs)
                out.append({"claim": claim.claim, "column": column, "protocol": MAIN, "scale": benchmark.scale_name(scale), "seeds": len(diffs),
                            "level per run (method vs baseline)": "; ".join(f"{s}: {m:.3g} vs {b:.3g}" for s, (m, b) in pairs.items()),
                            "method - baseline across runs": f"{mean:+.4g}" + ("" if half is None else f" ± {half:.3g}"),
                            "holds": claim_verdict(mean, half, claim.expected_sign > 0, len(diffs))})
                break
    return out


def all_claims(benchmark: Benchmark) -> list[dict]:
    """Paired, correlation and level claims (what the pins hold): :func:`claim_checks`, :func:`correlation_checks`,
    :func:`level_checks`."""
    return claim_checks(benchmark) + correlation_checks(benchmark) + level_checks(benchmark)


def failing(rows: list[dict]) -> list[dict]:
    """Main-protocol paper cells outside tolerance and not acknowledged."""
    return [r for r in rows if r["variant"] == MAIN and r["verdict"] == "outside" and not r["known_deviation"]]
