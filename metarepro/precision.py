"""Numeric precision of a run: fp32, or bf16 autocast (CPU and CUDA).

bf16 autocast runs convolutions and matmuls in bfloat16 and keeps weights,
optimizer state and reductions such as softmax/log-softmax in float32
(PyTorch's autocast op lists). It is a *variant* of a protocol, never its
default: a benchmark offers it only next to an fp32 record on the same test
episodes, so the accuracy it costs is visible (issue #4).
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device | str, precision: str):
    """Context manager for the forward passes of a run in ``precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {PRECISIONS}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
