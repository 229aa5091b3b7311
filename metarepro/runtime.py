"""Process-level settings that make small-model training fast on CPU.

glibc returns every freed block above its mmap threshold (at most 32 MiB) to
the kernel, so each new activation of that size is faulted in page by page,
zero-filled, on every step. A 60-way Omniglot Conv-4 batch has 72 MB
activations: measured here (torch 2.13, 2 threads) a plain tensor copy of that
size took 30 ms with the default allocator and 8 ms with the heap kept, and a
ProtoNet training step went from 554 ms to 486 ms. Keeping freed memory in the
heap changes no result, only where the bytes come from.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_applied = False


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory; ``False`` where there is no glibc."""
    global _applied
    if _applied:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))  # keep up to 2 GiB free
    return _applied
