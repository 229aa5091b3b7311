"""Atomic file writes and per-resource locks, the one place the suite makes them.

A file is written to a temporary name in its own folder, flushed to disk, then renamed over the target
(:func:`os.replace` is atomic on POSIX filesystems): a reader or a killed writer sees the old file or the new one,
never a torn one. Locks are :mod:`filelock`'s advisory file locks (``fcntl.flock`` on Linux), which hold between
processes of one machine; NFS and Lustre may not honour them across nodes: ``METAREPRO_LOCK=lease`` makes every lock a
:class:`metarepro.lease.Lease` instead (a file with a heartbeat and an expiry, for runs roots shared by several machines).
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


LOCK_KINDS = ("flock", "lease")


def file_lock(path: Path | str, timeout: float = -1):
    """An inter-process lock on ``path`` (created with its folder): ``with file_lock(p): ...`` or
    ``with file_lock(p).acquire(timeout=0): ...``; ``timeout`` seconds (-1: wait for ever, 0: fail at once with one of
    :func:`lock_timeouts`). ``$METAREPRO_LOCK``: ``flock`` (default, one machine) or ``lease`` (module docstring)."""
    kind = os.environ.get("METAREPRO_LOCK", "flock")
    if kind not in LOCK_KINDS:
        raise ValueError(f"METAREPRO_LOCK must be one of {LOCK_KINDS}, got {kind!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "lease":
        from metarepro.lease import Lease

        return Lease(path.with_name(path.name + ".lease"), timeout=timeout)  # never the flock file a previous run left there
    from filelock import FileLock

    return FileLock(str(path), timeout=timeout)


def lock_timeouts() -> tuple[type[BaseException], ...]:
    """What a lock's ``acquire(timeout=...)`` raises when it times out, for either kind."""
    from filelock import Timeout

    from metarepro.lease import LeaseTimeout

    return (Timeout, LeaseTimeout)
