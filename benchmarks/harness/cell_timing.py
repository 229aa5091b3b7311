"""Time per meta-iteration of each cell on each inner-loop engine (``metarepro time``), and ``--engine auto``.

Engines (:mod:`metarepro.inner`): ``loop``, the tasks of a meta-batch one by
one (the "before" of issue #4: REFERENCE.md measured a plain torch.func loop,
``higher``, learn2learn and torchopt at the same speed); ``higher``, the same
loop through ``higher.monkeypatch``; ``func``, every task in one grouped
computation (the suite's batched engine). All are timed on the cell's own
configuration (network, ways, shots, meta-batch, inner steps, order) and real
training batches, interleaved round by round in one process so that load on
the machine skews them alike; each engine's time is its best round after a
warm-up iteration.

Reptile has no "before": its tasks run one after another by the algorithm
(the inner Adam's moments carry over from task to task), so only its own loop
is timed. The results go to ``results/timing/meta-iterations--<device>.json``;
``metarepro list --timings`` shows them beside the projected hours, and
``reproduce --engine auto`` (the default) trains each cell on the engine
measured fastest for it on this device (``func`` where nothing was measured).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from benchmarks.harness.base import Benchmark, Cell
from benchmarks.harness.paths import runs_dir
from metarepro import results as R
from metarepro.atomic import atomic_write_text, file_lock
from metarepro.inner import ENGINES
from metarepro.runtime import keep_freed_memory
from metarepro.timing import device_name, now
from metarepro.trainer import training_step

#: what each engine of :data:`metarepro.inner.ENGINES` is, as the tables say it
ENGINE_LABELS = {"func": "batched", "loop": "per-task loop", "higher": "per-task loop (higher)"}


def timings_path(device: str = "cpu") -> Path:
    return R.results_dir() / "timing" / f"meta-iterations--{device_name(device)}.json"


def time_cell(benchmark: Benchmark, cell: Cell, scale: str = "paper", rounds: int = 3, device: str = "cpu") -> dict:
    """Best seconds per meta-iteration of each engine on ``cell``'s configuration, interleaved over ``rounds``.

    Returns ``{"engines": {engine: seconds}, "threads", "device", "load_average_1min", ...}``.
    """
    if not all(hasattr(benchmark, name) for name in ("build_model", "train_batch", "make_optimizer", "pools")):
        raise ValueError(f"{benchmark.id}: timing per meta-iteration covers the gradient-based Omniglot benchmarks "
                         "(finn2017-table1, nichol2018-table1, guiroy-fig9)")
    keep_freed_memory()
    cfg = {"train_seed": 0, **benchmark.config(cell, scale)}  # multi-run cells (guiroy-fig9) name a seed per run: time run 0
    pools = benchmark.pools(cfg, runs_dir() / benchmark.id / scale)
    steps = {}
    for engine in ENGINES:
        torch.manual_seed(cfg["train_seed"])
        model = benchmark.build_model(cfg, engine).to(device)
        if hasattr(model, "train_step") and steps:  # its own sequential loop (Reptile): one engine only
            break
        model.train()
        steps[engine] = (training_step(model, cfg.get("precision", "fp32")), benchmark.make_optimizer(model, cfg))
    engines = list(steps)
    batches = [benchmark.train_batch(pools["train"], cfg, i).to(device) for i in range(rounds + 1)]
    best = dict.fromkeys(engines, float("inf"))
    for i, batch in enumerate(batches):
        for engine, (step, optimizer) in steps.items():
            started = now(device)
            step(batch, optimizer)
            if i:  # the first round warms up (allocator, oneDNN primitive caches)
                best[engine] = min(best[engine], now(device) - started)
    return {"engines": best, "rounds": rounds, "threads": torch.get_num_threads(), "device": device,
            "load_average_1min": os.getloadavg()[0], "meta_batch": cfg.get("meta_batch"), "inner_steps": cfg.get("inner_steps")}


def load_timings(device: str = "cpu") -> dict:
    """``{benchmark id: {cell label: entry}}`` from the timings file of ``device`` on this machine (empty when none was
    written, or when ``device`` is a GPU this machine does not have)."""
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        return {}
    path = timings_path(device)
    return json.loads(path.read_text()) if path.exists() else {}


def save_timing(benchmark_id: str, cell: Cell, entry: dict, device: str = "cpu", command: str = "metarepro time",
                git: dict | None = None) -> Path:
    """Add one cell's entry to the timings file, atomically, with its provenance: ``git`` is the checkout's state when
    the timing started (:func:`metarepro.results.git_state`; read now when not given), the code that ran."""
    path = timings_path(device)
    with file_lock(path.with_name(f".{path.name}.lock")):  # read-modify-write: two `metarepro time` processes keep both entries
        data = load_timings(device)
        data.setdefault(benchmark_id, {})[cell.label] = {**entry, "provenance": R.provenance(command=command, **(git or R.git_state()))}
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


#: engines within this factor of the fastest count as tied (round-to-round noise here is a few %); ties go to the
#: first of ENGINES (the suite's own engines before higher, which exists as an independent check)
TIE = 1.05


def fastest_of(engines: dict[str, float]) -> str:
    """The fastest engine of ``{engine: seconds}``, ties (within :data:`TIE`) broken in the order of :data:`ENGINES`."""
    best = min(engines.values())
    return next(e for e in (*ENGINES, *engines) if e in engines and engines[e] <= TIE * best)


def before_after(entry: dict | None) -> dict:
    """Table columns for one cell: ms per meta-iteration of each engine, the fastest, and its speed-up over the loop."""
    if entry is None:
        return {"loop ms (before)": "-", "higher ms": "-", "batched ms": "-", "fastest": "-", "speed-up": "-"}
    engines = entry["engines"]
    ms = {e: round(1000 * engines[e], 1) if e in engines else "-" for e in ENGINE_LABELS}
    fastest = fastest_of(engines)
    sequential = len(engines) == 1
    before = engines.get("loop", engines.get("higher"))
    return {"loop ms (before)": "- (sequential)" if sequential else ms["loop"], "higher ms": ms["higher"], "batched ms": ms["func"],
            "fastest": "own loop" if sequential else ENGINE_LABELS[fastest],
            "speed-up": "-" if sequential else f"{before / engines[fastest]:.2f}x"}


def fastest_engine(benchmark_id: str, cell: Cell, device: str = "cpu") -> str | None:
    """The engine measured fastest for ``cell`` on this device, or None when it was never timed here."""
    entry = load_timings(device).get(benchmark_id, {}).get(cell.label)
    return fastest_of(entry["engines"]) if entry else None


def resolve_engine(engine: str, benchmark_id: str, cells: Cell | list[Cell], device: str = "cpu") -> str:
    """``auto`` -> the engine measured fastest for the first of ``cells`` (cells of one trained model) that was timed,
    ``func`` where none was; an engine asked for by name is kept."""
    if engine != "auto":
        return engine
    cells = [cells] if isinstance(cells, Cell) else cells
    return next((e for e in (fastest_engine(benchmark_id, c, device) for c in cells) if e), "func")
