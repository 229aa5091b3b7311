"""Run a benchmark's training groups on other machines: Ray, or Slurm through submitit (issue #20).

Each training group (:func:`benchmarks.harness.plan.training_groups`) becomes one remote task that runs
:func:`benchmarks.harness.runner._run_group`, as a local ``--jobs`` worker would: it takes the group's lock, resumes
from the checkpoints under the runs root, trains, and writes the records. Records and checkpoints land under the roots
the submitting process names (``METAREPRO_RUNS``, ``METAREPRO_RESULTS`` / ``METAREPRO_LOCAL_RESULTS``,
``METAREPRO_DATA``): on a cluster they must be paths every node sees (a shared filesystem); ``compare`` then reads the
records like local ones.

One frozen commit per submission: the code that runs remotely is a copy of the submitting checkout's ``benchmarks``,
``methods`` and ``metarepro`` under ``<runs>/.code/<commit>[-dirty-<digest>]`` (:func:`frozen_code`), put first on
each task's ``PYTHONPATH``; a task that is retried or requeued an hour later, after the checkout moved on, runs the
same code. Every training segment names its host (:func:`metarepro.trainer.new_segment`).

Signals, and which code owns them:

* SIGTERM (Slurm's pre-emption and time limit, before its SIGKILL; a Ray node shutting down): the trainer's
  (:class:`metarepro.trainer.StopRequest`): the iteration at hand finishes, the state is checkpointed, the task ends
  interrupted. The launcher resubmits an interrupted group (up to ``retries`` times), which resumes from that
  checkpoint; the record is written once, by the run that finishes.
* SIGUSR2 (what submitit asks Slurm to send before the time limit; ``LocalExecutor._interrupt`` sends it too):
  submitit's: it calls :meth:`GroupJob.checkpoint`, which requeues the same group; the requeued task resumes from the
  last periodic checkpoint (``$METAREPRO_CHECKPOINT_EVERY`` iterations at most are repeated, to the same numbers).
* SIGKILL (a lost node, the OOM killer): nobody's; the task fails (Ray: the worker died; submitit: the job failed) and
  the launcher resubmits it; either resumes from the last periodic checkpoint.

An error the training raises itself (a NaN loss, a bad configuration) or a user's ``ray.cancel`` is not resubmitted: it
fails the submission, as it fails a local run.

Locks: a group's lock is taken by the task that trains it (:func:`metarepro.atomic.file_lock`). By default that is
:mod:`filelock`'s ``flock``, which holds between processes of one machine and across nodes only where the shared
filesystem honours ``flock`` (NFSv4 with its lock manager, Lustre mounted with ``-o flock``, BeeGFS with its lock mode
on). Elsewhere set ``METAREPRO_LOCK=lease`` where you submit (every task inherits it): each lock is then a
:class:`metarepro.lease.Lease`, a file created with ``O_EXCL`` whose holder renews a heartbeat and which another node
may take over only after it expires; it needs only that creating a file exclusively and renaming over one are atomic
on the shared filesystem (NFSv3 and later, Lustre, BeeGFS, GPFS).

Ray's local instance: started by :func:`run_on_ray` when no cluster is running, its workers get niceness 0 (Ray's
default of 15 starves them behind any other busy process on the machine).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

from benchmarks.harness.paths import runs_dir
from metarepro import results as R

LAUNCHERS = ("pool", "ray", "slurm", "local")
CODE_PACKAGES = ("benchmarks", "methods", "metarepro")
ROOT_VARIABLES = ("METAREPRO_RUNS", "METAREPRO_RESULTS", "METAREPRO_LOCAL_RESULTS", "METAREPRO_DATA", "METAREPRO_MIRROR")
#: passed to every task as they are (not paths)
SETTING_VARIABLES = ("METAREPRO_CHECKPOINT_EVERY", "METAREPRO_DEVICE", "METAREPRO_LOCK")


def _code_digest() -> str:
    """sha256 over the package files of the checkout (their paths and bytes), for a dirty tree's snapshot name."""
    h = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((R.PROJECT_ROOT / package).rglob("*.py")):
            h.update(str(path.relative_to(R.PROJECT_ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def frozen_code(git: dict) -> Path:
    """The submission's copy of the code (module docstring), made once per commit (and per dirty state)."""
    name = (git.get("commit") or "nogit")[:12] + (f"-dirty-{_code_digest()}" if git.get("dirty") or not git.get("commit") else "")
    target = (runs_dir() / ".code" / name).resolve()  # absolute: it goes on a remote task's PYTHONPATH
    if not target.is_dir():
        staging = target.with_name(f".{name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        for package in CODE_PACKAGES:
            shutil.copytree(R.PROJECT_ROOT / package, staging / package, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            staging.rename(target)  # atomic: another submission that got there first keeps its identical copy
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def task_environment(code: Path) -> dict[str, str]:
    """What a remote task needs in its environment: the frozen code first on the path, the roots as absolute paths."""
    env = {"PYTHONPATH": str(code)}
    for name in ROOT_VARIABLES + SETTING_VARIABLES:
        value = os.environ.get(name)
        if value:
            env[name] = value if name in SETTING_VARIABLES else str(Path(value).resolve())
    env.setdefault("METAREPRO_RUNS", str(runs_dir().resolve()))
    env.setdefault("METAREPRO_RESULTS", str(R.results_dir().resolve()))
    return env


def run_group_task(args: tuple) -> list[str]:
    """Run one training group through the runner, in this process (imported from the frozen code: :func:`_entry`)."""
    from benchmarks.harness.runner import _run_group
    from metarepro.runtime import keep_freed_memory
    from metarepro.trainer import stop_on_signals

    keep_freed_memory()  # as a pool worker: without it a Ray task trained MAML 20-way 5-shot 1.8x slower (measured here)
    stop_on_signals()  # SIGTERM / SIGINT: checkpoint after the iteration at hand and stop (module docstring)
    return _run_group(*args)


def _make_entry():
    """A remote task's entry, defined in a closure so that Ray and submitit pickle it by value: it puts the frozen code
    first on the path and drops any copy of the suite's packages the process imported from elsewhere (a worker started
    in the checkout imports it from there first), then runs :func:`run_group_task` from the frozen copy."""

    def entry(code: str, args: tuple) -> list[str]:
        import importlib
        import sys

        for name in list(sys.modules):
            if name.split(".")[0] in ("benchmarks", "methods", "metarepro"):
                del sys.modules[name]
        sys.path.insert(0, code)
        importlib.invalidate_caches()
        from benchmarks.harness.launchers import run_group_task as frozen

        return frozen(args)

    return entry


class GroupJob:
    """submitit's callable for one group: :meth:`checkpoint` makes it requeueable on SIGUSR2 (module docstring)."""

    def __init__(self, code: str):
        self.code = code

    def __call__(self, args: tuple) -> list[str]:
        return _make_entry()(self.code, args)

    def checkpoint(self, args: tuple):
        import submitit

        return submitit.helpers.DelayedSubmission(GroupJob(self.code), args)


def ray_task_interrupted(err: BaseException) -> bool:
    """Whether a Ray task's failure is an interruption to resume from (its worker or node died, the OOM killer, or the
    trainer stopped on SIGTERM) rather than an error that a rerun would repeat (a NaN loss, a bad configuration)."""
    from ray.exceptions import NodeDiedError, OutOfMemoryError, RayTaskError, WorkerCrashedError

    if isinstance(err, (WorkerCrashedError, NodeDiedError, OutOfMemoryError)):
        return True
    return isinstance(err, RayTaskError) and isinstance(getattr(err, "cause", None), KeyboardInterrupt)


def submitit_job_interrupted(err: BaseException) -> bool:
    """Whether a submitit job's failure is an interruption to resume from: it ended without a result (killed, timed out)
    or the trainer stopped on SIGTERM (``KeyboardInterrupt`` in its traceback); not an error raised by the training."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    if isinstance(err, FailedJobError):  # the job's function raised: its traceback is the message
        return "KeyboardInterrupt" in str(err)
    return isinstance(err, UncompletedJobError)


def run_on_ray(task_args: list[tuple], env: dict[str, str], threads: int, gpus: float = 0, retries: int = 2, log=print) -> list[str]:
    """Every group a Ray task (``num_cpus=threads``), one fresh worker each (``max_calls=1``). Connects to the cluster
    ``ray.init()`` finds (``RAY_ADDRESS``), or starts a local one.

    A task interrupted (:func:`ray_task_interrupted`: its worker or node died, or the trainer stopped on SIGTERM) is
    resubmitted here, up to ``retries`` times, and resumes from the group's checkpoints; any other failure is raised. Ray's
    own ``max_retries`` would retry worker deaths only, not a trainer stopped by a node's SIGTERM."""
    import ray
    from ray.exceptions import RayError

    if not ray.is_initialized():
        # a local instance started here runs its workers at the pool's priority: Ray's default niceness of 15 starves
        # them behind any other busy process (measured here, 2 cores busy: 50 s to start a task's worker, 3 s at 0)
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(include_dashboard=False, log_to_driver=True)
    remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_calls=1, max_retries=0)(_make_entry())

    def submit(args: tuple):
        return remote.options(runtime_env={"env_vars": env}).remote(env["PYTHONPATH"], args)

    pending = {submit(args): (args, 0) for args in task_args}
    written: list[str] = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        args, attempt = pending.pop(ref)
        try:
            written += ray.get(ref)
        except RayError as err:  # the worker died or the training was stopped: resume from its checkpoints
            if attempt >= retries or not ray_task_interrupted(err):
                raise
            log(f"launcher: Ray task for {args[0]} ended with {type(err).__name__}; resubmitting (attempt {attempt + 2} of "
                f"{retries + 1}), it resumes from its checkpoints")
            pending[submit(args)] = (args, attempt + 1)
    return written


def submitit_executor(kind: str, folder: Path, env: dict[str, str], threads: int, slurm: dict | None = None):
    """A submitit executor: ``"local"`` (this machine, for trying a submission and for the tests) or ``"slurm"``."""
    import submitit

    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=int((slurm or {}).get("time_min", 24 * 60)))
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    exports = [f"export {k}={v}" for k, v in env.items()]
    options = {k: v for k, v in (slurm or {}).items() if v is not None}
    executor.update_parameters(timeout_min=int(options.pop("time_min", 24 * 60)), cpus_per_task=threads,
                               slurm_setup=exports, slurm_additional_parameters={"requeue": True}, **options)
    return executor


def run_on_submitit(task_args: list[tuple], env: dict[str, str], kind: str, threads: int, slurm: dict | None = None,
                    retries: int = 2, log=print) -> list[str]:
    """Submit every group as a job; wait; resubmit a job that ended interrupted or failed (up to ``retries`` times)."""
    folder = runs_dir() / ".submitit"
    executor = submitit_executor(kind, folder, env, threads, slurm)
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the local executor's jobs inherit this process's environment at submission
    try:
        task = GroupJob(env["PYTHONPATH"])
        pending = [(args, executor.submit(task, args), 0) for args in task_args]
        written: list[str] = []
        while pending:
            args, job, attempt = pending.pop(0)
            try:
                written += job.result()
            except Exception as err:  # interrupted (SIGTERM) or killed: resume from its checkpoints; an error is raised
                if attempt >= retries or not submitit_job_interrupted(err):
                    raise
                log(f"launcher: job {job.job_id} ({args[0]}) ended with {type(err).__name__}; resubmitting "
                    f"(attempt {attempt + 2} of {retries + 1}), it resumes from its checkpoints")
                pending.append((args, executor.submit(task, args), attempt + 1))
        return written
    finally:
        for k, v in previous.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def launch(kind: str, task_args: list[tuple], git: dict, threads: int, slurm: dict | None = None, gpus: float = 0,
           retries: int = 2, log=print) -> list[str]:
    """Run the groups' ``_run_group`` argument tuples on ``kind`` (``"ray"``, ``"slurm"``, ``"local"``)."""
    if kind not in LAUNCHERS[1:]:
        raise ValueError(f"unknown launcher {kind!r}; choose one of {LAUNCHERS}")
    code = frozen_code(git)
    env = task_environment(code)
    log(f"launcher {kind}: {len(task_args)} group(s), code frozen at {code}")
    if kind == "ray":
        return run_on_ray(task_args, env, threads, gpus, retries, log)
    return run_on_submitit(task_args, env, kind, threads, slurm, retries, log)


if __name__ == "__main__":  # pragma: no cover - a manual check of the frozen copy
    print(frozen_code(R.git_state()), file=sys.stderr)
