"""Checkpoints, resume after SIGKILL, NaN guard, and bad checkpoints."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from metarepro.episodes import SINUSOID_METASGD
from metarepro.inner import mse_per_task
from metarepro.trainer import CheckpointError, NonFiniteLossError, load_checkpoint, train
from methods.backbones import MLP
from methods.maml import MAML

from .conftest import ROOT


def make():
    torch.manual_seed(0)
    model = MAML(MLP([1, 40, 40, 1]), mse_per_task, 0.01, 1)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def batch(i):
    return SINUSOID_METASGD.train_batch(0, i, 5, 5, 5)


def test_training_lowers_the_loss_and_resumes_to_the_same_weights(tmp_path):
    model, opt = make()
    state = train(model, opt, batch, 200, tmp_path / "a.pt", "h", checkpoint_every=50, log_every=50, progress=False)
    assert state.iteration == 200 and len(state.loss_curve) == 4
    assert state.loss_curve[-1][1] < state.loss_curve[0][1]

    # stop at 120 (as a kill between checkpoints would leave it: last checkpoint at 100), then resume
    model2, opt2 = make()
    train(model2, opt2, batch, 100, tmp_path / "b.pt", "h", checkpoint_every=50, log_every=50, progress=False)
    model3, opt3 = make()
    resumed = train(model3, opt3, batch, 200, tmp_path / "b.pt", "h", checkpoint_every=50, log_every=50, progress=False)
    assert resumed.loss_curve == state.loss_curve
    for a, b in zip(model.state_dict().values(), model3.state_dict().values()):
        assert torch.equal(a, b)


def test_corrupt_checkpoint_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"not a checkpoint at all")
    model, opt = make()
    with pytest.raises(CheckpointError, match="unreadable"):
        train(model, opt, batch, 10, path, "h", progress=False)
    assert path.read_bytes() == b"not a checkpoint at all"


def test_checkpoint_of_another_configuration_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "c.pt"
    model, opt = make()
    train(model, opt, batch, 5, path, "config-a", progress=False)
    before = path.read_bytes()
    model, opt = make()
    with pytest.raises(CheckpointError, match="config-a"):
        train(model, opt, batch, 10, path, "config-b", progress=False)
    assert path.read_bytes() == before


class ExplodesAt(nn.Module):
    def __init__(self, at):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.at, self.calls = at, 0

    def outer_loss(self, batch):
        self.calls += 1
        return self.w.sum() * (float("nan") if self.calls > self.at else 1.0)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "n.pt"
    model = ExplodesAt(at=12)
    with pytest.raises(NonFiniteLossError, match=r"iteration 12.*iteration 10"):
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), batch, 50, path, "h", checkpoint_every=5, progress=False)
    assert load_checkpoint(path, "h")["state"]["iteration"] == 10
    assert torch.isfinite(load_checkpoint(path, "h")["model"]["w"]).all()


class BlowsUpAt(nn.Module):
    """A finite loss of 1.0 that jumps to ``size`` from call ``at`` on (then back to 1.0: a blow-up the float survives)."""

    def __init__(self, at, size):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.at, self.size, self.calls = at, size, 0

    def outer_loss(self, batch):
        self.calls += 1
        return self.w.sum() * (self.size if self.calls == self.at else 1.0)


def test_a_loss_above_the_bound_stops_the_run_as_diverged_and_one_at_or_below_it_does_not(tmp_path):
    path = tmp_path / "b.pt"
    model = BlowsUpAt(at=13, size=2e4)
    with pytest.raises(NonFiniteLossError, match=r"2e\+04, above the divergence bound 1e\+04, at iteration 12.*iteration 10") as err:
        train(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, 50, path, "h", checkpoint_every=5, progress=False, loss_bound=1e4)
    assert err.value.state.iteration == 12 and load_checkpoint(path, "h")["state"]["iteration"] == 10
    for bound in (None, 2e4):  # no bound, or the loss at it: the run goes on
        model = BlowsUpAt(at=13, size=2e4)
        state = train(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, 20, tmp_path / f"{bound}.pt", "h",
                      progress=False, loss_bound=bound)
        assert state.iteration == 20


SCRIPT = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, {root!r})
    torch.set_num_threads(1)
    from tests.test_trainer import make, batch
    from metarepro.trainer import train
    model, opt = make()
    train(model, opt, batch, 600, sys.argv[1], "h", checkpoint_every=20, log_every=20, progress=False)
    torch.save(model.state_dict(), sys.argv[1] + ".final")
    """
)


def test_run_killed_with_sigkill_resumes_to_the_same_final_weights(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(root=str(ROOT)))
    killed = tmp_path / "killed.pt"
    proc = subprocess.Popen([sys.executable, str(script), str(killed)], start_new_session=True)
    deadline = time.time() + 120
    while not killed.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = load_checkpoint(killed, "h")["state"]["iteration"]
    assert 0 < partial < 600, "the kill should land mid-run"

    subprocess.run([sys.executable, str(script), str(killed)], check=True)
    straight = tmp_path / "straight.pt"
    subprocess.run([sys.executable, str(script), str(straight)], check=True)
    a = torch.load(str(killed) + ".final")
    b = torch.load(str(straight) + ".final")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def interactive_signals():
    """SIGINT and SIGTERM as an interactive process has them: a run under ``nohup ... &`` (CI started so) inherits an
    ignored SIGINT, which the trainer leaves ignored on purpose, and ``ray.init`` in an earlier test replaces both."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for s, handler in previous.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_after_the_iteration_and_loses_nothing(tmp_path, signum, interactive_signals):
    """The signal lands inside iteration 37 (checkpoints every 50, log every 20): the run finishes that iteration,
    checkpoints iteration 38 with its partial loss window, and the resumed run ends exactly as an uninterrupted one."""
    model, opt = make()
    straight = train(model, opt, batch, 100, tmp_path / "straight.pt", "h", checkpoint_every=50, log_every=20, progress=False)

    def signalling_batch(i):
        if i == 37:
            os.kill(os.getpid(), signum)
        return batch(i)

    model2, opt2 = make()
    with pytest.raises(KeyboardInterrupt):
        train(model2, opt2, signalling_batch, 100, tmp_path / "b.pt", "h", checkpoint_every=50, log_every=20, progress=False)
    saved = load_checkpoint(tmp_path / "b.pt", "h")["state"]
    assert saved["iteration"] == 38 and len(saved["window"]) == 18 and len(saved["loss_curve"]) == 1
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    model3, opt3 = make()
    resumed = train(model3, opt3, batch, 100, tmp_path / "b.pt", "h", checkpoint_every=50, log_every=20, progress=False)
    assert resumed.loss_curve == straight.loss_curve
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model3.state_dict().values()))


def test_signal_in_the_last_iteration_still_stops_the_process(tmp_path):
    """The run completes (final checkpoint) but the caller must not go on to evaluation or the next job."""
    def signalling_batch(i):
        if i == 29:
            os.kill(os.getpid(), signal.SIGTERM)
        return batch(i)

    model, opt = make()
    with pytest.raises(KeyboardInterrupt):
        train(model, opt, signalling_batch, 30, tmp_path / "c.pt", "h", checkpoint_every=50, log_every=20, progress=False)
    assert load_checkpoint(tmp_path / "c.pt", "h")["state"]["iteration"] == 30
    model2, opt2 = make()  # the stop does not outlive that run in an ordinary process
    assert train(model2, opt2, batch, 5, tmp_path / "d.pt", "h", progress=False).iteration == 5


def test_second_signal_stops_at_once_without_writing_a_half_done_iteration(tmp_path):
    model, opt = make()
    train(model, opt, batch, 20, tmp_path / "e.pt", "h", checkpoint_every=20, log_every=20, progress=False)

    def twice(i):
        if i == 25:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # mid-iteration: KeyboardInterrupt right here
        return batch(i)

    with pytest.raises(KeyboardInterrupt):
        train(model, opt, twice, 100, tmp_path / "e.pt", "h", checkpoint_every=20, log_every=20, progress=False)
    assert load_checkpoint(tmp_path / "e.pt", "h")["state"]["iteration"] == 20  # the checkpoint before, untouched


def test_checkpoint_from_before_the_loss_window_resumes(tmp_path):
    model, opt = make()
    train(model, opt, batch, 20, tmp_path / "f.pt", "h", checkpoint_every=20, log_every=10, progress=False)
    payload = torch.load(tmp_path / "f.pt", weights_only=False)
    del payload["state"]["window"]
    torch.save(payload, tmp_path / "f.pt")
    model2, opt2 = make()
    assert train(model2, opt2, batch, 30, tmp_path / "f.pt", "h", checkpoint_every=20, log_every=10, progress=False).iteration == 30


def test_a_stopped_worker_starts_no_queued_group(isolated_results, monkeypatch):
    """After SIGTERM a parallel-job worker keeps its stop: a group it is handed later ends before training anything."""
    import metarepro.trainer as trainer
    from benchmarks.harness.runner import _run_group, runs_dir

    monkeypatch.setattr(trainer, "_stop_requested", True)
    monkeypatch.setattr(trainer, "_stop_persists", True)
    cell = {"row": "MAML", "column": "5-way 1-shot", "variant": "main"}
    with pytest.raises(KeyboardInterrupt):
        _run_group("finn2017-table1", "smoke", [cell], "func", 1, False, "test", 2, {"commit": None, "dirty": None}, "cpu")
    assert not (runs_dir() / "finn2017-table1").exists()


class Quadratic(nn.Module):
    """A model whose outer loss is deterministic per iteration, for early-stopping tests."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def outer_loss(self, batch):
        return (self.w - 1.0).pow(2).sum()


def test_early_stopping_keeps_the_best_model_and_stops_on_patience(tmp_path):
    from metarepro.trainer import EarlyStopping

    values = [5.0, 4.0, 3.0, 3.5, 2.9, 3.0, 3.1, 3.2, 1.0]  # at iterations 10, 20, ..., 90
    model = Quadratic()
    seen = []

    def validate():
        seen.append(values[len(seen)])
        return seen[-1]

    early = EarlyStopping(validate=validate, every=10, patience=2, best_path=tmp_path / "best.pt")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    state = train(model, opt, lambda i: None, 200, tmp_path / "c.pt", "h", progress=False, early_stopping=early,
                  checkpoint_every=1000)
    # best 2.9 at 50; 60, 70, 80 do not improve -> wait 3 > patience 2 -> stop at 80 (90's 1.0 is never seen)
    assert state.stopped_early and state.iteration == 80
    assert state.best_iteration == 50 and state.best_value == 2.9
    assert state.val_curve == [[10 * (i + 1), v] for i, v in enumerate(values[:8])]

    reference = Quadratic()
    train(reference, torch.optim.SGD(reference.parameters(), lr=0.01), lambda i: None, 50, tmp_path / "r.pt", "h",
          progress=False)
    best = load_checkpoint(tmp_path / "best.pt")
    assert torch.equal(best["model"]["w"], reference.w.detach())
    # resuming a stopped run does nothing more
    again = train(model, opt, lambda i: None, 200, tmp_path / "c.pt", "h", progress=False, early_stopping=early)
    assert again.iteration == 80 and len(seen) == 8


def test_early_stopping_keeps_the_k_best_models_across_a_resume(tmp_path):
    """``keep=3``: after each validation the 3 best so far (ties to the earlier) are on disk as ``top-<iteration>.pt``,
    each the model of its iteration (oracle: a plain run stopped there); a run resumed half-way keeps the same set."""
    from metarepro.trainer import EarlyStopping, top_snapshots

    values = [5.0, 3.0, 4.0, 3.0, 1.0, 6.0]  # at iterations 10, ..., 60: best 1.0@50, 3.0@20 (earlier tie), 3.0@40

    def run(folder, stop):
        seen = []

        def validate():
            seen.append(values[len(seen) + offset[0]])
            return seen[-1]

        offset = [0]
        model = Quadratic()
        early = EarlyStopping(validate=validate, every=10, patience=100, best_path=folder / "best.pt", keep=3)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        state = train(model, opt, lambda i: None, stop, folder / "c.pt", "h", progress=False, early_stopping=early, checkpoint_every=10)
        if stop < 60:  # resume to the end in a new process's shoes: same folder, validations continue the sequence
            offset[0] = len(seen)
            seen.clear()
            model = Quadratic()
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            state = train(model, opt, lambda i: None, 60, folder / "c.pt", "h", progress=False, early_stopping=early, checkpoint_every=10)
        return early, state

    for folder, stop in ((tmp_path / "whole", 60), (tmp_path / "resumed", 30)):
        early, state = run(folder, stop)
        assert sorted(p.name for p in folder.glob("top-*.pt")) == ["top-20.pt", "top-40.pt", "top-50.pt"]
        paths = top_snapshots(early.best_path, state.val_curve, 3)
        assert [p.name for p in paths] == ["top-50.pt", "top-20.pt", "top-40.pt"]  # best first
        for path in paths:
            iteration = int(path.stem.split("-")[1])
            reference = Quadratic()
            train(reference, torch.optim.SGD(reference.parameters(), lr=0.01), lambda i: None, iteration, folder / f"r{iteration}.pt",
                  "h", progress=False)
            assert torch.equal(load_checkpoint(path)["model"]["w"], reference.w.detach())
    (tmp_path / "whole" / "top-40.pt").unlink()
    with pytest.raises(CheckpointError, match="top-40.pt is missing"):
        top_snapshots(tmp_path / "whole" / "best.pt", state.val_curve, 3)


def test_named_criteria_keep_a_best_model_each_and_stop_when_all_ran_out_across_a_resume(tmp_path):
    """R2-D2's selection: two criteria, ties improving (``>=``), each its own best model and patience count, the run
    stopping once both counts exceed the patience. Oracle: the same bookkeeping written out by hand over the scripted
    values, and each kept model against a plain run stopped at its iteration."""
    from metarepro.trainer import EarlyStopping, criterion_path

    values = [(5, 5), (4, 6), (4, 4), (3, 7), (6, 4), (6, 8), (6, 9), (3, 9), (7, 9), (7, 9), (7, 9), (1, 1)]  # at 10, ..., 120
    patience = 2
    best, wait, stop_at = {}, {}, None  # the hand-written oracle
    for k, pair in enumerate(values):
        for name, v in zip("ab", pair):
            if name not in best or v <= best[name][0]:
                best[name], wait[name] = (v, 10 * (k + 1)), 0
            else:
                wait[name] += 1
        if all(w > patience for w in wait.values()):
            stop_at = 10 * (k + 1)
            break
    assert stop_at == 110 and best == {"a": (3, 80), "b": (4, 50)}  # the script exercises ties and a late improvement

    def run(folder, first_stop):
        seen = []

        def validate():
            seen.append(values[len(seen) + offset[0]])
            return [float(v) for v in seen[-1]]

        offset = [0]
        early = EarlyStopping(validate=validate, every=10, patience=patience, best_path=folder / "best.pt", criteria=("a", "b"),
                              ties_improve=True)
        for stop in (first_stop, 200):  # a second process resumes from the checkpoint; validations continue the sequence
            offset[0] += len(seen)
            seen.clear()
            model = Quadratic()
            state = train(model, torch.optim.SGD(model.parameters(), lr=0.01), lambda i: None, stop, folder / "c.pt", "h",
                          progress=False, early_stopping=early, checkpoint_every=10)
        return early, state

    for folder, first_stop in ((tmp_path / "whole", 200), (tmp_path / "resumed", 40)):
        early, state = run(folder, first_stop)
        assert state.stopped_early and state.iteration == stop_at
        assert state.val_curve == [[10 * (k + 1), *map(float, pair)] for k, pair in enumerate(values[:stop_at // 10])]
        assert {n: (t["best_value"], t["best_iteration"]) for n, t in state.criteria.items()} == best
        assert sorted(p.name for p in folder.glob("best*.pt")) == ["best-a.pt", "best-b.pt"]
        for name, (_, iteration) in best.items():
            reference = Quadratic()
            train(reference, torch.optim.SGD(reference.parameters(), lr=0.01), lambda i: None, iteration, folder / f"r{iteration}.pt",
                  "h", progress=False)
            assert torch.equal(load_checkpoint(criterion_path(early.best_path, name))["model"]["w"], reference.w.detach())
    with pytest.raises(ValueError, match="keep > 1"):
        EarlyStopping(validate=lambda: 0.0, every=1, patience=1, best_path=tmp_path / "b.pt", criteria=("a",), keep=2)


def test_step_decay_schedule_matches_torch_steplr(tmp_path):
    from metarepro.trainer import step_decay

    model = Quadratic()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    train(model, opt, lambda i: None, 35, tmp_path / "s.pt", "h", progress=False, lr_schedule=step_decay(10))

    oracle = Quadratic()
    opt2 = torch.optim.Adam(oracle.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt2, step_size=10, gamma=0.5)
    for _ in range(35):
        opt2.zero_grad()
        oracle.outer_loss(None).backward()
        opt2.step()
        sched.step()
    assert torch.equal(model.w.detach(), oracle.w.detach())
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)


def test_bf16_precision_runs_forward_passes_in_bf16_and_keeps_float32_weights(tmp_path):
    """The trainer's bf16 option: convolutions see bf16 under autocast, weights, grads and Adam state stay float32."""
    from metarepro.episodes import Episode
    from methods.backbones import Conv4
    from methods.protonet import ProtoNet

    torch.manual_seed(0)
    model = ProtoNet(Conv4(1, 8, pool=True))
    seen = []
    model.backbone.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    x = torch.rand(3, 2, 1, 28, 28)
    batch = Episode(x[:, 0], torch.arange(3), x[:, 1], torch.arange(3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train(model, opt, lambda i: batch, 2, tmp_path / "bf16.pt", "bf16", progress=False, precision="bf16")
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s["exp_avg"].dtype == torch.float32 for s in opt.state.values())
    with pytest.raises(ValueError, match="unknown precision"):
        train(model, opt, lambda i: batch, 3, tmp_path / "x.pt", "x", progress=False, precision="fp16")


def test_probes_measure_along_training_without_changing_it_and_resume_their_curve(tmp_path):
    """Probes at 0 and every 25 iterations; one that draws random numbers and runs the model leaves the trained weights
    exactly as an unprobed run's (the RNG is forked); a run stopped at iteration 60 and resumed measures no point twice
    and ends with the uninterrupted run's curve."""
    from metarepro.trainer import Probes

    def noisy_batch(i):  # the training itself draws from the global RNG
        b = batch(i)
        return type(b)(b.support_x, b.support_y + 0.01 * torch.randn_like(b.support_y), b.query_x, b.query_y)

    probe_batch = batch(10_000)

    def measure(model, iteration):
        torch.randn(1000)  # a probe that consumes random numbers
        model.eval()
        with torch.no_grad():
            loss = float(model.score(probe_batch).mean())
        return {"probe_loss": loss, "seen": iteration}

    plain, opt = make()
    train(plain, opt, noisy_batch, 100, tmp_path / "plain.pt", "h", checkpoint_every=50, progress=False)
    probed, opt = make()
    straight = train(probed, opt, noisy_batch, 100, tmp_path / "probed.pt", "h", checkpoint_every=50, progress=False, probes=Probes(25, measure))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), probed.state_dict().values()))
    assert [p["iteration"] for p in straight.probe_curve] == [0, 25, 50, 75, 100] == [p["seen"] for p in straight.probe_curve]
    assert straight.probe_curve[-1]["probe_loss"] < straight.probe_curve[0]["probe_loss"]

    def stopping_batch(i):
        if i == 60:
            os.kill(os.getpid(), signal.SIGTERM)
        return batch(i)

    reference, opt = make()  # the deterministic batches: a resumed run redraws nothing
    straight = train(reference, opt, batch, 100, tmp_path / "ref.pt", "h", checkpoint_every=50, progress=False, probes=Probes(25, measure))
    first, opt = make()
    with pytest.raises(KeyboardInterrupt):
        train(first, opt, stopping_batch, 100, tmp_path / "stopped.pt", "h", checkpoint_every=50, progress=False, probes=Probes(25, measure))
    assert [p["iteration"] for p in load_checkpoint(tmp_path / "stopped.pt", "h")["state"]["probe_curve"]] == [0, 25, 50]
    again, opt = make()
    resumed = train(again, opt, batch, 100, tmp_path / "stopped.pt", "h", checkpoint_every=50, progress=False, probes=Probes(25, measure))
    assert [p["iteration"] for p in resumed.probe_curve] == [0, 25, 50, 75, 100]
    assert [p["probe_loss"] for p in resumed.probe_curve] == [p["probe_loss"] for p in straight.probe_curve]

    # points between the regular ones (also_at) are marked, and perturb the training no more than the others
    between, opt = make()
    extra = train(between, opt, noisy_batch, 100, tmp_path / "between.pt", "h", checkpoint_every=50, progress=False,
                  probes=Probes(25, measure, also_at=(5, 10, 25)))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), between.state_dict().values()))
    assert [(p["iteration"], p.get("between", False)) for p in extra.probe_curve] == [
        (0, False), (5, True), (10, True), (25, False), (50, False), (75, False), (100, False)]


class _NormedRegressor(nn.Module):
    """A regressor with BatchNorm running statistics (buffers a probe's train-mode forward would move)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(1, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))

    def outer_loss(self, episode):
        return nn.functional.mse_loss(self.net(episode.support_x.reshape(-1, 1)), episode.support_y.reshape(-1, 1))


def test_a_probe_that_moves_buffers_leaves_training_as_it_was(tmp_path):
    from metarepro.trainer import Probes

    def measure(model, iteration):
        model.train()
        model.net(torch.randn(64, 1) * 5)  # a train-mode forward: moves BatchNorm's running statistics
        return {"n": iteration}

    plain = _NormedRegressor()
    train(plain, torch.optim.Adam(plain.parameters(), lr=1e-2), batch, 40, tmp_path / "a.pt", "h", progress=False)
    probed = _NormedRegressor()
    train(probed, torch.optim.Adam(probed.parameters(), lr=1e-2), batch, 40, tmp_path / "b.pt", "h", progress=False,
          probes=Probes(10, measure))
    for (name, a), b in zip(plain.state_dict().items(), probed.state_dict().values()):
        assert torch.equal(a, b), name  # running_mean / running_var / num_batches_tracked included


def test_probe_snapshots_keep_the_weights_each_point_measured(tmp_path):
    """A probe re-taken on a snapshot gives the number the run recorded at that point (so a probe fixed after training
    need not retrain it); one file per point, none written twice after a resume."""
    from metarepro.trainer import Probes

    probe_batch = batch(10_000)

    def measure(model, iteration):
        with torch.no_grad():
            return {"probe_loss": float(model.score(probe_batch).mean())}

    model, opt = make()
    state = train(model, opt, batch, 60, tmp_path / "run.pt", "h", checkpoint_every=20, progress=False,
                  probes=Probes(20, measure, snapshots=tmp_path / "probes"))
    assert sorted(p.name for p in (tmp_path / "probes").iterdir()) == ["probe-0.pt", "probe-20.pt", "probe-40.pt", "probe-60.pt"]
    for point in state.probe_curve:
        fresh, _ = make()
        fresh.load_state_dict(load_checkpoint(tmp_path / "probes" / f"probe-{point['iteration']}.pt")["model"])
        assert measure(fresh, point["iteration"])["probe_loss"] == point["probe_loss"]


def test_a_probe_whose_settings_changed_is_taken_again_from_its_snapshots_not_retrained(tmp_path):
    """After training under probe settings "a", resuming the finished run under "b" re-measures each point on the weights
    it was taken at (an independent oracle: a fresh model loaded from that point's snapshot) and keeps the final weights;
    without snapshots it refuses with what to do."""
    from metarepro.trainer import CheckpointError, Probes

    batches = {"a": batch(10_000), "b": batch(20_000)}

    def measure_on(which):
        def measure(model, iteration):
            with torch.no_grad():
                return {"probe_loss": float(model.score(batches[which]).mean())}
        return measure

    model, opt = make()
    train(model, opt, batch, 40, tmp_path / "run.pt", "h", checkpoint_every=20, progress=False,
          probes=Probes(20, measure_on("a"), snapshots=tmp_path / "probes", settings="a"))
    final = {k: v.clone() for k, v in model.state_dict().items()}
    from metarepro.trainer import request_stop

    def stopping(model, iteration):  # a SIGTERM arrives while the first point is re-taken
        request_stop()
        return measure_on("b")(model, iteration)

    stopped, opt = make()
    with pytest.raises(KeyboardInterrupt):
        train(stopped, opt, batch, 40, tmp_path / "run.pt", "h", checkpoint_every=20, progress=False,
              probes=Probes(20, stopping, snapshots=tmp_path / "probes", settings="b"))
    kept = load_checkpoint(tmp_path / "run.pt")["state"]["probe_curve"]
    assert [p["settings"] for p in kept] == ["b", "a", "a"]  # the point re-taken before the stop is not lost
    assert all(torch.equal(final[k], v) for k, v in load_checkpoint(tmp_path / "run.pt")["model"].items())
    again, opt = make()
    state = train(again, opt, batch, 40, tmp_path / "run.pt", "h", checkpoint_every=20, progress=False,
                  probes=Probes(20, measure_on("b"), snapshots=tmp_path / "probes", settings="b"))
    assert [p["settings"] for p in state.probe_curve] == ["b"] * 3 and len(state.segments) == 1  # nothing retrained
    for point in state.probe_curve:
        fresh, _ = make()
        fresh.load_state_dict(load_checkpoint(tmp_path / "probes" / f"probe-{point['iteration']}.pt")["model"])
        assert measure_on("b")(fresh, 0)["probe_loss"] == point["probe_loss"] != measure_on("a")(fresh, 0)["probe_loss"]
    assert all(torch.equal(final[k], v) for k, v in again.state_dict().items())
    stored = load_checkpoint(tmp_path / "run.pt")["state"]["probe_curve"]
    assert [p["settings"] for p in stored] == ["b"] * 3  # kept: the next resume measures nothing
    (tmp_path / "probes" / "probe-20.pt").unlink()
    third, opt = make()
    with pytest.raises(CheckpointError, match="iteration 20 .*--restart"):
        train(third, opt, batch, 40, tmp_path / "run.pt", "h", checkpoint_every=20, progress=False,
              probes=Probes(20, measure_on("a"), snapshots=tmp_path / "probes", settings="a"))
