"""Training groups on Ray's local cluster and submitit's local executor: the same records as the process pool, and a task
killed mid-training (SIGKILL under Ray, SIGTERM under submitit) resumes to the weights of an uninterrupted run.

In CI (``CI`` set) a missing Ray or submitit is a failure, not a skip: a skipped launcher test is not a passed one."""

import json
import os
import shutil
import signal
import threading
import time

import pytest
import torch

from benchmarks import get_benchmark
from benchmarks.harness.base import Cell
from tests.conftest import ROOT, local_ray


def _need(module: str):
    if os.environ.get("CI"):
        return __import__(module)
    return pytest.importorskip(module)


GROUPS = [("alfa-table8", "MAML/2x40 5-shot"), ("finn2017-table1", "MAML/5-way 1-shot")]
KILLED = ("alfa-table8", "MAML/2x40 5-shot")  # 300 meta-iterations of a sinusoid MLP, a checkpoint every 3 here


def _roots(tmp_path, monkeypatch, name):
    results = tmp_path / name / "results"
    shutil.copytree(ROOT / "results" / "published", results / "published")
    for var, value in (("METAREPRO_RESULTS", results), ("METAREPRO_LOCAL_RESULTS", results), ("METAREPRO_RUNS", tmp_path / name / "runs")):
        monkeypatch.setenv(var, str(value))
    return results


def _run(launcher: str, benchmark_id: str, cell: str, lines: list | None = None):
    from benchmarks.harness.runner import reproduce

    log = (lambda *a: lines.append(" ".join(map(str, a)))) if lines is not None else (lambda *_: None)
    return reproduce(get_benchmark(benchmark_id), "smoke", [Cell.parse(cell)], progress=False, log=log, launcher=launcher)


def _record(results, benchmark_id: str, cell: str) -> dict:
    return json.loads((results / "reproduced" / benchmark_id / "smoke" / f"{Cell.parse(cell).slug}.json").read_text())


@pytest.fixture(scope="module")
def ray_cluster():
    with local_ray(_need("ray"), object_store_memory=80 * 2**20) as ray:
        yield ray


@pytest.fixture
def launcher(request):
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
    else:
        _need("submitit")
    return request.param


@pytest.mark.parametrize("launcher", ["ray", "local"], indirect=True)
def test_launched_groups_write_the_records_the_pool_writes(launcher, tmp_path, monkeypatch):
    for benchmark_id, cell in GROUPS:
        pool = _roots(tmp_path, monkeypatch, f"pool-{benchmark_id}")
        _run("pool", benchmark_id, cell)
        expected = _record(pool, benchmark_id, cell)
        remote = _roots(tmp_path, monkeypatch, f"{launcher}-{benchmark_id}")
        _run(launcher, benchmark_id, cell)
        got = _record(remote, benchmark_id, cell)
        assert got["scores"] == expected["scores"], (launcher, benchmark_id)
        segment = got["trainings"][0]["segments"][0]
        assert segment["host"] and segment["commit"] == expected["trainings"][0]["segments"][0]["commit"]
        assert (tmp_path / f"{launcher}-{benchmark_id}" / "runs" / ".code").is_dir()  # the frozen copy the task ran


def _checkpoint_iteration(runs) -> int:
    for path in runs.glob(f"{KILLED[0]}/smoke/*/checkpoint.pt"):
        try:
            return int(torch.load(path, weights_only=True)["state"]["iteration"])
        except Exception:  # being written
            return 0
    return 0


def _training_process(launcher: str):
    """The process training the group, the one Slurm or a lost node would signal: Ray's worker while it runs our task
    (``ray::entry``), or submitit's job."""
    import psutil

    if launcher == "local":
        for proc in psutil.Process().children(recursive=True):
            try:
                if "submitit.core._submit" in " ".join(proc.cmdline()):  # the job itself, not the local executor's controller
                    return proc
            except psutil.Error:
                continue
        return None
    for proc in psutil.process_iter(["name"]):
        if (proc.info["name"] or "").startswith("ray::entry"):
            return proc
    return None


def _kill_mid_training(launcher: str, signum: int, runs, iterations: int, outcome: dict) -> None:
    """Send ``signum`` to the training process once it has checkpointed and before it ends; ``outcome["killed_at"]``: the
    iteration checkpointed by then."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        process = _training_process(launcher)
        done = _checkpoint_iteration(runs)
        if process is not None and 3 <= done < iterations:
            process.send_signal(signum)
            outcome["killed_at"] = done
            return
        time.sleep(0.005)


@pytest.mark.parametrize(("launcher", "signame"), [("ray", "SIGKILL"), ("local", "SIGTERM"), ("local", "SIGUSR2")], indirect=["launcher"])
def test_a_task_killed_mid_training_resumes_to_the_uninterrupted_weights(launcher, signame, tmp_path, monkeypatch):
    """Ray: a worker SIGKILLed (a lost node) is resubmitted. submitit: SIGTERM (Slurm's pre-emption) is the trainer's, which
    checkpoints and stops; SIGUSR2 (Slurm's warning before the time limit) is submitit's, which requeues the job."""
    benchmark_id, cell = KILLED
    iterations = get_benchmark(benchmark_id).config(Cell.parse(cell), "smoke")["iterations"]
    monkeypatch.setenv("METAREPRO_CHECKPOINT_EVERY", "3")  # a resume is exact at any interval: the reference is unchanged
    pool = _roots(tmp_path, monkeypatch, "pool")
    _run("pool", benchmark_id, cell)
    reference = next((tmp_path / "pool" / "runs").glob(f"{benchmark_id}/smoke/*/checkpoint.pt"))
    remote = _roots(tmp_path, monkeypatch, launcher)
    runs = tmp_path / launcher / "runs"
    outcome: dict = {}
    killer = threading.Thread(target=_kill_mid_training, args=(launcher, getattr(signal, signame), runs, iterations, outcome), daemon=True)
    killer.start()
    lines: list[str] = []
    written = _run(launcher, benchmark_id, cell, lines)  # the launcher in the main thread: it resubmits the killed task
    killer.join(timeout=5)
    assert "killed_at" in outcome, "the task ended before it could be killed"
    assert written, "the launcher did not finish the group after the kill"
    resubmitted = any("resubmitting" in line for line in lines)
    assert resubmitted == (signame != "SIGUSR2"), lines  # SIGUSR2: submitit requeued the job itself, the launcher saw no failure
    resumed = next(runs.glob(f"{benchmark_id}/smoke/*/checkpoint.pt"))
    ours, theirs = torch.load(resumed, weights_only=True)["model"], torch.load(reference, weights_only=True)["model"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    segments = _record(remote, benchmark_id, cell)["trainings"][0]["segments"]
    assert len(segments) >= 2 and segments[0]["iterations"][0] == 0 and segments[-1]["iterations"][1] == iterations  # resumed
    assert _record(remote, benchmark_id, cell)["scores"] == _record(pool, benchmark_id, cell)["scores"]


def _visible_gpu(_) -> str | None:
    time.sleep(0.3)  # long enough that every worker of the pool takes tasks
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_pool_workers_on_cuda_each_see_their_own_gpu(monkeypatch):
    """``--device cuda --jobs N``: worker ``i`` starts with ``CUDA_VISIBLE_DEVICES`` set to the ``i``-th visible GPU (no GPU
    is needed to check the environment each spawned worker gets)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from benchmarks.harness.runner import _init_worker, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpus() == ["3", "5"]
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.Manager().Queue()
    for i in range(2):
        slots.put(i)
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=_init_worker, initargs=(slots, visible_gpus())) as pool:
        seen = list(pool.map(_visible_gpu, range(8)))
    assert set(seen) == {"3", "5"}


@pytest.mark.gpu
def test_groups_train_on_every_gpu_side_by_side(tmp_path, monkeypatch):
    from benchmarks.harness.runner import reproduce, visible_gpus

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    results = _roots(tmp_path, monkeypatch, "gpu")
    cells = ("MAML/2x40 5-shot", "MAML/3x80 5-shot")
    reproduce(get_benchmark("alfa-table8"), "smoke", [Cell.parse(c) for c in cells], jobs=len(visible_gpus()), device="cuda",
              progress=False, log=lambda *_: None)
    for cell in cells:
        assert _record(results, "alfa-table8", cell)["trainings"][0]["segments"][0]["device"].startswith("cuda")


def test_checkpoint_interval_is_the_smaller_of_the_default_and_the_environment(monkeypatch):
    from metarepro.trainer import checkpoint_interval

    monkeypatch.delenv("METAREPRO_CHECKPOINT_EVERY", raising=False)
    assert checkpoint_interval(500) == 500
    monkeypatch.setenv("METAREPRO_CHECKPOINT_EVERY", "20")
    assert checkpoint_interval(500) == 20 and checkpoint_interval(6) == 6
    for bad in ("0", "-3", "ten"):
        monkeypatch.setenv("METAREPRO_CHECKPOINT_EVERY", bad)
        with pytest.raises(ValueError, match="METAREPRO_CHECKPOINT_EVERY"):
            checkpoint_interval(500)


def test_a_task_gets_the_frozen_code_first_on_its_path_absolute_roots_and_the_lock_kind(tmp_path, monkeypatch):
    from benchmarks.harness.launchers import frozen_code, task_environment

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METAREPRO_RUNS", "runs")  # relative here: a remote node needs it absolute
    monkeypatch.setenv("METAREPRO_LOCK", "lease")
    monkeypatch.setenv("METAREPRO_CHECKPOINT_EVERY", "50")
    code = frozen_code({"commit": "0123456789abcdef", "dirty": True})
    assert code.parent == (tmp_path / "runs" / ".code").resolve()  # absolute, whatever the runs root's spelling
    assert code.name.startswith("0123456789ab-dirty-")
    assert all((code / package / "__init__.py").is_file() for package in ("benchmarks", "methods", "metarepro"))
    assert frozen_code({"commit": "0123456789abcdef", "dirty": True}) == code  # one copy per commit and dirty state
    env = task_environment(code)
    assert env["PYTHONPATH"] == str(code) and env["METAREPRO_RUNS"] == str((tmp_path / "runs").resolve())
    assert env["METAREPRO_LOCK"] == "lease" and env["METAREPRO_CHECKPOINT_EVERY"] == "50"


def test_only_interruptions_are_resubmitted():
    """A killed worker, a lost node or a trainer stopped by SIGTERM resumes; an error of the training itself would recur."""
    from benchmarks.harness.launchers import ray_task_interrupted, submitit_job_interrupted

    exceptions = _need("ray").exceptions
    utils = _need("submitit").core.utils
    assert ray_task_interrupted(exceptions.WorkerCrashedError())
    assert ray_task_interrupted(exceptions.RayTaskError("entry", "Traceback ... KeyboardInterrupt", KeyboardInterrupt()))
    assert not ray_task_interrupted(exceptions.RayTaskError("entry", "Traceback ... NonFiniteLossError", ValueError("loss is nan")))
    assert not ray_task_interrupted(exceptions.TaskCancelledError())
    assert submitit_job_interrupted(utils.UncompletedJobError("Job 123 has not produced any output (state: FAILED)"))
    assert submitit_job_interrupted(utils.FailedJobError("Job (task=0) failed\nTraceback ...\nKeyboardInterrupt"))
    assert not submitit_job_interrupted(utils.FailedJobError("Job (task=0) failed\nTraceback ...\nNonFiniteLossError: outer loss is nan"))
