"""A lock that holds across machines on a shared filesystem: a lease (a file with a heartbeat and an expiry).

``fcntl.flock`` (what :func:`metarepro.atomic.file_lock` uses) holds between processes of one machine; on NFS and
Lustre it may hold across nodes or silently not, depending on mount options. A lease asks less of the filesystem:

* **exclusive create** (``open(O_CREAT | O_EXCL)``) is atomic: one creator wins (NFSv3 and later, Lustre, BeeGFS, GPFS);
* **rename** is atomic;
* **modification times** written by one node are seen by the others within a few seconds (NFS attribute caching:
  ``actimeo``, 3-60 s by default), and node clocks agree to well under ``expiry`` (NTP).

The holder creates the lease file holding a unique token (host, pid, random), then touches it every ``heartbeat``
seconds from a daemon thread. A waiter polls; a lease whose file was not touched for ``expiry`` seconds belongs to a
holder that died (SIGKILL, the OOM killer, a lost node): the waiter breaks it by renaming it to a unique name, checks
that what it renamed is the expired lease it saw (and puts it back if the holder had just renewed it), and competes to
create a fresh one. ``expiry`` must exceed ``heartbeat`` plus the filesystem's attribute-cache delay by a margin: the
defaults (heartbeat 10 s, expiry 120 s) suit NFS's default caching. A holder stalled for longer than ``expiry`` (a
suspended process) can lose its lease while it still runs: it then finds, at its next heartbeat, a file that is not
its own and sets :attr:`Lease.lost`; the work it guards (training a checkpoint) resumes to the same numbers either way.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path


class LeaseTimeout(TimeoutError):
    pass


class Lease:
    """``with Lease(path): ...``: hold ``path``'s lease for the block (module docstring), waiting up to ``timeout``
    seconds for it there (-1: for ever)."""

    def __init__(self, path: Path | str, heartbeat: float = 10.0, expiry: float = 120.0, poll: float = 1.0, timeout: float = -1):
        if expiry <= 2 * heartbeat:
            raise ValueError(f"a lease's expiry ({expiry} s) must exceed twice its heartbeat ({heartbeat} s)")
        self.path, self.heartbeat, self.expiry, self.poll, self.timeout = Path(path), heartbeat, expiry, poll, timeout
        self.token = f"{socket.gethostname()} {os.getpid()} {uuid.uuid4().hex}"
        self.lost = False
        self.held = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- the file ---------------------------------------------------------------------------------------------------
    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text()
        except FileNotFoundError:
            return None

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(self.token)
            f.flush()
            os.fsync(f.fileno())
        return True

    def _break_if_expired(self) -> None:
        """Rename an expired lease away; put back one that its holder renewed between our look and our rename."""
        try:
            seen_token, age = self._read(self.path), time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if seen_token is None or age < self.expiry:
            return
        broken = self.path.with_name(f"{self.path.name}.broken-{uuid.uuid4().hex}")
        try:
            os.rename(self.path, broken)
        except FileNotFoundError:  # another waiter broke it first
            return
        if self._read(broken) != seen_token or time.time() - broken.stat().st_mtime < self.expiry:
            try:  # not the lease we judged expired: give it back (link fails if a new lease appeared meanwhile)
                os.link(broken, self.path)
            except FileExistsError:
                pass
        broken.unlink(missing_ok=True)

    # -- holding --------------------------------------------------------------------------------------------------------
    def acquire(self, timeout: float = -1) -> Lease:
        """Take the lease, waiting up to ``timeout`` seconds (-1: for ever, 0: one try); :class:`LeaseTimeout` if not."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while not self._try_create():
            self._break_if_expired()
            if self._try_create():
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise LeaseTimeout(f"{self.path} is held by {self._read(self.path) or 'another process'}")
            time.sleep(self.poll)
        self.lost, self.held = False, True
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease {self.path.name}", daemon=True)
        self._beat.start()
        return self

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            if self._read(self.path) != self.token:
                self.lost = True
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.lost = True
                return

    def release(self) -> None:
        self.held = False
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self._read(self.path) == self.token:
            self.path.unlink(missing_ok=True)

    def holder(self) -> str | None:
        """The token of whoever holds the lease now (None: free)."""
        return self._read(self.path)

    def __enter__(self) -> Lease:
        return self if self.held else self.acquire(self.timeout)  # ``with lease.acquire(timeout=0):`` holds it already

    def __exit__(self, *exc) -> None:
        self.release()
