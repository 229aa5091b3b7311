"""Wall-clock timing that is honest on CUDA (synchronises before reading)."""

from __future__ import annotations

import os
import platform
import re
import time

import torch


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued kernels on ``device`` (no-op on CPU)."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def now(device: torch.device | str | None = None) -> float:
    """``time.perf_counter()`` after pending device work has finished."""
    synchronize(device)
    return time.perf_counter()


def device_name(device: str | None = None) -> str:
    """File-name form of the device timed: the GPU's name, or the CPU's core count and architecture."""
    device = device or os.environ.get("METAREPRO_DEVICE", "cpu")
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"cpu-{os.cpu_count()}core-{platform.machine()}"
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower()


def best_of(fns: dict, repeats: int, device: torch.device | str | None = None) -> dict:
    """Best wall time of each callable over ``repeats`` rounds, the callables interleaved within each round (so a noisy
    machine slows every side alike), synchronised on ``device`` after each call."""
    import time

    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best
