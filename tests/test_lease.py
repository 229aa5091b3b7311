"""The lease lock (metarepro.lease) between real processes: mutual exclusion, no takeover while the holder's heartbeat
lives, takeover after a SIGKILLed holder's lease expires, a renewed lease given back to its holder, and the runner's
locks switching to leases with METAREPRO_LOCK=lease. Short heartbeats (0.05-0.1 s) keep the test fast."""

import os
import signal
import subprocess
import sys
import time

import pytest

from metarepro import lease as lease_module
from metarepro.atomic import file_lock, lock_timeouts
from metarepro.lease import Lease, LeaseTimeout
from tests.conftest import ROOT

FAST = {"heartbeat": 0.05, "expiry": 1.0, "poll": 0.01}

HOLDER = """
import sys, time
from metarepro.lease import Lease
path, hold, log = sys.argv[1], float(sys.argv[2]), sys.argv[3]
with Lease(path, heartbeat=0.05, expiry=1.0, poll=0.01):
    with open(log, "a") as f:
        f.write(f"start {time.time()}\\n")
    print("held", flush=True)
    time.sleep(hold)
    with open(log, "a") as f:
        f.write(f"end {time.time()}\\n")
"""


def _holder(path, hold, log):
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(hold), str(log)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_processes_hold_the_lease_one_at_a_time(tmp_path):
    log = tmp_path / "log"
    procs = [_holder(tmp_path / "a.lease", 0.15, log) for _ in range(4)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    events = sorted((float(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    assert [k for _, k in events] == ["start", "end"] * 4  # never two starts in a row: no overlap
    assert not (tmp_path / "a.lease").exists()  # released


def test_a_live_holder_keeps_its_lease_past_the_expiry(tmp_path):
    holder = _holder(tmp_path / "a.lease", 3.5, tmp_path / "log")
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LeaseTimeout, match="is held by"):
        Lease(tmp_path / "a.lease", **FAST).acquire(timeout=2.5)  # 2.5 expiries: the heartbeat keeps it fresh
    holder.wait(timeout=60)


def test_the_lease_of_a_killed_holder_expires_and_is_taken_over(tmp_path):
    holder = _holder(tmp_path / "a.lease", 60.0, tmp_path / "log")
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    started = time.monotonic()
    with Lease(tmp_path / "a.lease", **FAST) as lease:
        waited = time.monotonic() - started
        assert lease.holder() == lease.token
    assert 0.5 < waited < 6.0  # not before the dead holder's last heartbeat aged (1 s after it), not much after
    assert not list(tmp_path.glob("a.lease.broken-*"))


def test_a_lease_renewed_while_being_broken_is_given_back(tmp_path, monkeypatch):
    path = tmp_path / "a.lease"
    path.write_text("other-host 1 token")
    old = time.time() - 10
    os.utime(path, (old, old))
    rename = os.rename

    def renewed_then_renamed(src, dst):  # the holder's heartbeat lands between the waiter's look and its rename
        os.utime(src)
        rename(src, dst)

    monkeypatch.setattr(lease_module.os, "rename", renewed_then_renamed)
    with pytest.raises(LeaseTimeout):
        Lease(path, **FAST).acquire(timeout=0)
    assert path.read_text() == "other-host 1 token" and not list(tmp_path.glob("a.lease.broken-*"))


def test_release_removes_only_its_own_lease(tmp_path):
    lease = Lease(tmp_path / "a.lease", **FAST).acquire()
    (tmp_path / "a.lease").write_text("someone else")  # e.g. broken and re-taken while this holder was stalled
    time.sleep(0.2)
    assert lease.lost
    lease.release()
    assert (tmp_path / "a.lease").read_text() == "someone else"


def test_metarepro_lock_lease_switches_the_runner_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREPRO_LOCK", "lease")
    lock = file_lock(tmp_path / "x.lock")
    assert isinstance(lock, Lease) and lock.path.name == "x.lock.lease"
    with lock.acquire(timeout=0):
        with pytest.raises(lock_timeouts()):
            file_lock(tmp_path / "x.lock").acquire(timeout=0)
        with pytest.raises(lock_timeouts()), file_lock(tmp_path / "x.lock", timeout=0):  # the default timeout holds for `with`
            pass
    monkeypatch.setenv("METAREPRO_LOCK", "nfs")
    with pytest.raises(ValueError, match="METAREPRO_LOCK"):
        file_lock(tmp_path / "x.lock")
    with pytest.raises(ValueError, match="expiry"):
        Lease(tmp_path / "y", heartbeat=1, expiry=1.5)
