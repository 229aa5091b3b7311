"""Wall-clock timing that is honest on CUDA (synchronises before reading)."""

from __future__ import annotations

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
