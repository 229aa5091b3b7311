"""``metarepro plan``: a benchmark's cells as training groups, the unit that reproduce, DVC stages and launchers run.

A *group* is the cells that share one trained model (:meth:`~benchmarks.harness.base.Benchmark.training_key`): it trains once
and tests each cell. Per group: its cells, its run folders, the projected hours (from the cells' timed records, on the
machine and threads those name, or the benchmark's rough estimate, labelled as such), the hours left (the cells without a
current record, less the training already checkpointed), the peak memory measured by the
run that made its record (where one did), the data it needs and whether that is present, and whether every cell's record
is current.
"""

from __future__ import annotations

import heapq

from benchmarks.harness.base import Benchmark, Cell
from benchmarks.harness.runner import group_seconds, is_current, timed_iteration, timed_record


def cell_id(cell: Cell) -> str:
    """The ``--cells`` form of a cell: ``row/column/variant`` (``/seed=N`` for a seed other than 0)."""
    return f"{cell.row}/{cell.column}/{cell.variant}" + (f"/seed={cell.seed}" if cell.seed else "")


def training_groups(benchmark: Benchmark, cells: list[Cell], scale: str) -> dict[str, list[Cell]]:
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(benchmark.training_key(cell, scale), []).append(cell)
    return groups


def plan(benchmark: Benchmark, cells: list[Cell], scale: str) -> list[dict]:
    """One entry per training group of ``cells`` at ``scale`` (see the module docstring), longest first."""
    for cell in cells:
        benchmark.check_cell(cell)
    out = []
    for key, group in training_groups(benchmark, cells, scale).items():
        timed = [r for r in (timed_record(benchmark, c) for c in group) if r is not None]
        if timed:
            t = timed[0]["timing"]
            basis = (f"measured: {timed[0]['scale']} record, {t.get('threads', '?')} thread(s), {t.get('device', '?')}, "
                     f"{timed[0]['provenance'].get('processor', '?')}")
        elif any(timed_iteration(benchmark, c, scale) for c in group):
            loads = [timed_iteration(benchmark, c, scale)["load_average_1min"] for c in group if timed_iteration(benchmark, c, scale)]
            basis = f"metarepro time: a meta-iteration measured (load {loads[0]:.1f}); overhead and test rough"
        else:
            basis = "rough estimate (no timed record of these cells)"
        peaks = [r["provenance"]["peak_rss_mb"] for r in timed if "peak_rss_mb" in r.get("provenance", {})]
        folders = sorted({f for c in group for f in benchmark.run_directories(c, scale)})
        todo = [c for c in group if not is_current(benchmark, c, scale)]  # what `reproduce --pin` would still run
        out.append({
            "benchmark": benchmark.id, "scale": scale, "group": key, "cells": [cell_id(c) for c in group],
            "run_directories": folders,
            "projected_hours": round(group_seconds(benchmark, group, scale) / 3600, 3),
            "remaining_hours": round(group_seconds(benchmark, todo, scale, remaining=True) / 3600, 3) if todo else 0.0,
            "projection": basis,
            "peak_memory_mb": max(peaks) if peaks else None,
            "data": benchmark.requires_data or "generated",
            "data_present": scale == "smoke" or benchmark.data_available(),
            "current": not todo,
            "records": [f"reproduced/{benchmark.id}/{scale}/{c.slug}.json" for c in group],  # under the results root
        })
    return sorted(out, key=lambda g: -g["projected_hours"])


def cluster_hours(group_hours: list[float], machines: int) -> float:
    """Wall hours for ``machines`` that each run one group at a time, the longest groups first, each to the machine free
    soonest (what a launcher's queue does): never below the longest group, nor below the total over ``machines``."""
    if machines < 1:
        raise ValueError(f"machines must be at least 1, got {machines}")
    finish = [0.0] * min(machines, max(len(group_hours), 1))
    for hours in sorted(group_hours, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + hours)
    return max(finish)
