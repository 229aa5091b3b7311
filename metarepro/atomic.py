"""Atomic file writes and per-resource locks, the one place the suite makes them.

A file is written to a temporary name in its own folder, flushed to disk, then renamed over the target
(:func:`os.replace` is atomic on POSIX filesystems): a reader or a killed writer sees the old file or the new one,
never a torn one. Locks are :mod:`filelock`'s advisory file locks (``fcntl.flock`` on Linux), which hold between
processes of one machine; NFS and Lustre may not honour them across nodes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: permissions of written files: mkstemp creates 0600; records, figures and caches are meant to be read by others
FILE_MODE = 0o644


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` atomically, when it raises
    (or the process is killed) ``path`` is untouched and the temporary file is removed (if the process lives)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def file_lock(path: Path | str, timeout: float = -1):
    """An inter-process lock on ``path`` (created with its folder): ``with file_lock(p): ...``; ``timeout`` seconds
    (-1: wait for ever, 0: fail at once with :class:`filelock.Timeout`)."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)
