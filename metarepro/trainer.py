"""The one meta-training loop: checkpoints, resume, progress, NaN guard.

Methods define ``outer_loss(batch) -> scalar`` and the loop steps the
optimizer; a method with its own update (Reptile, paired tasks, forward-mode
hypergradients) defines ``train_step(batch, optimizer) -> float`` instead and
the loop calls that. Batches come from ``batch_fn(iteration)``, a pure
function of the iteration index, so a resumed run sees exactly the batches an
uninterrupted one would, and its final numbers are the same.

Checkpoints are written atomically (temporary file + rename): a run killed at
any moment leaves the last complete checkpoint, never a torn one.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from metarepro.atomic import atomic_path
from metarepro.episodes import Episode
from metarepro.precision import autocast

CHECKPOINT_FORMAT = "metarepro-checkpoint-1"

#: the loop's own numerics (iteration order, when the rate schedule and validation act, what a checkpoint restores):
#: bump it in the commit that changes them, with the golden output of tests/test_protocol_versions.py
TRAINER_PROTOCOL_VERSION = 1


class NonFiniteLossError(RuntimeError):
    """The outer loss became NaN or infinite, or rose above the training's divergence bound; the last good checkpoint is
    kept. ``state``: the run's :class:`TrainState` when it stopped (``iteration`` the one whose loss stopped it; its
    validations and kept models so far), where the training loop raised it; ``loss`` and ``bound``: the loss and the
    bound it exceeded, where the loop raised it on a bound (else None)."""

    def __init__(self, message: str, state: TrainState | None = None, loss: float | None = None, bound: float | None = None):
        super().__init__(message)
        self.state, self.loss, self.bound = state, loss, bound


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable or belongs to another configuration."""


@dataclass
class TrainState:
    """Progress of a run: stored in every checkpoint."""

    iteration: int = 0
    elapsed_s: float = 0.0
    #: ``[iteration, mean outer loss over the preceding log interval]`` pairs
    loss_curve: list[list[float]] = field(default_factory=list)
    #: early stopping: ``[iteration, validation value]`` pairs (``[iteration, value per criterion...]`` with named
    #: criteria), the best so far, validations since it, and whether the run stopped on patience
    val_curve: list[list[float]] = field(default_factory=list)
    best_value: float | None = None
    best_iteration: int | None = None
    wait: int = 0
    stopped_early: bool = False
    #: with named criteria (:attr:`EarlyStopping.criteria`): ``{name: {"best_value", "best_iteration", "wait"}}``
    criteria: dict[str, dict] = field(default_factory=dict)
    #: outer losses since the last logged point (kept when a run is interrupted between two log points)
    window: list[float] = field(default_factory=list)
    #: one entry per process that trained this run (:func:`new_segment`): the code, machine and iterations of each;
    #: a checkpoint written before segments existed gets one ``{"unknown": True}`` entry for its earlier iterations
    segments: list[dict] = field(default_factory=list)
    #: :class:`Probes`: ``{"iteration": i, "seconds": s, **measured}`` at iteration 0 and every ``probes.every`` (and at
    #: ``probes.also_at``)
    probe_curve: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class Probes:
    """Measurements taken along training (Guiroy et al.'s landscape analyses): ``measure(model, iteration) -> dict`` of
    JSON numbers, at iteration 0 and every ``every`` iterations, stored in ``TrainState.probe_curve`` and checkpointed
    with it (a resumed run continues the curve and never measures an iteration twice).

    ``measure`` runs under ``torch.no_grad`` off (it may adapt or differentiate) with the global RNG forked and the model's
    buffers (BatchNorm statistics, ResNet-12's DropBlock call counter) restored after it, so a probed run trains exactly
    the weights an unprobed one does; it must leave the model's weights as it found them, and the model is put back in
    training mode after it. Its cost is the run's (``seconds`` per point), not the training's:
    ``elapsed_s`` excludes it.

    With ``snapshots`` (a folder), the weights each point measured are kept there as ``probe-<iteration>.pt``, so a
    probe changed after training can be taken again from them instead of retraining the run. ``settings`` names what
    ``measure`` measures (e.g. a hash of its task counts): each point carries it, and :func:`train`, on resuming a run
    whose points were taken under other settings, takes those again from their snapshots (:func:`reprobe`).
    """

    every: int
    measure: Callable[[nn.Module, int], dict]
    snapshots: Path | None = None
    settings: str | None = None
    #: iterations probed besides the multiples of ``every`` (e.g. inside the first epoch, where a curve may turn before
    #: its first regular point); their points carry ``"between": True``, so that what reads the regular points can
    #: leave them out (:class:`benchmarks.harness.base.CorrelationClaim`)
    also_at: tuple[int, ...] = ()

    def due(self, iteration: int) -> bool:
        """Whether a point is taken after ``iteration`` iterations."""
        return iteration % self.every == 0 or iteration in self.also_at


def _measure_point(model: nn.Module, probes: Probes, iteration: int) -> dict:
    """``{"iteration", "seconds", **measured[, "settings"]}`` of the model as it is; its buffers and the RNG as found."""
    started = time.perf_counter()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}  # BN statistics, call counters: training's own
    with torch.random.fork_rng(devices=devices):
        values = probes.measure(model, iteration)
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    model.train()
    point = {"iteration": iteration, "seconds": round(time.perf_counter() - started, 3), **values}
    if iteration % probes.every:
        point["between"] = True
    return {**point, "settings": probes.settings} if probes.settings is not None else point


def _probe(model: nn.Module, probes: Probes, state: TrainState) -> float:
    """Measure at ``state.iteration`` (unless already measured there); returns the seconds it took."""
    if state.probe_curve and state.probe_curve[-1]["iteration"] >= state.iteration:
        return 0.0
    started = time.perf_counter()
    if probes.snapshots is not None:
        save_checkpoint(Path(probes.snapshots) / f"probe-{state.iteration}.pt",
                        {"format": CHECKPOINT_FORMAT, "config_hash": None, "model": model.state_dict(), "iteration": state.iteration})
    state.probe_curve.append(_measure_point(model, probes, state.iteration))
    return time.perf_counter() - started


def reprobe(model: nn.Module, probes: Probes, curve: list[dict], keep: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """``curve`` with every point taken under settings other than ``probes.settings`` measured again on its snapshot
    (``probes.snapshots/probe-<iteration>.pt``), on a copy of ``model`` (the model itself is not touched). ``keep(curve)``
    is called after each point re-taken, so a stop (SIGTERM, Ctrl-C: asked between points) loses none of them. Raises
    :class:`CheckpointError` where a snapshot is missing (the run must then be retrained: ``--restart``)."""
    if probes.settings is None or all(p.get("settings") == probes.settings for p in curve):
        return curve
    import copy

    measured = copy.deepcopy(model)
    out = list(curve)
    for index, point in enumerate(curve):
        if point.get("settings") == probes.settings:
            continue
        if stop_requested():
            raise KeyboardInterrupt
        path = None if probes.snapshots is None else Path(probes.snapshots) / f"probe-{point['iteration']}.pt"
        if path is None or not path.exists():
            raise CheckpointError(f"the probe at iteration {point['iteration']} was taken under other settings "
                                  f"({point.get('settings')!r}, now {probes.settings!r}) and there is no snapshot to take it "
                                  f"again ({path or 'the run keeps none'}; a parked copy keeps none); retrain the run with --restart")
        measured.load_state_dict(load_checkpoint(path, None)["model"])
        out[index] = _measure_point(measured, probes, point["iteration"])
        if keep is not None:
            keep(list(out))
    return out


@dataclass(frozen=True)
class EarlyStopping:
    """Validate every ``every`` iterations (lower is better, e.g. validation loss).

    The best model so far is saved to ``best_path``; training stops once
    ``wait > patience`` validations in a row did not improve on it (the rule
    of Snell et al.'s code). ``validate`` must be deterministic (fixed
    validation episodes), so a resumed run makes the same decisions; it runs
    with the model in eval mode.
    """

    validate: Callable[[], float]
    every: int
    patience: int
    best_path: Path
    #: how many of the best validated models to keep (``keep > 1``: also ``top-<iteration>.pt`` beside ``best_path`` for
    #: each of the ``keep`` best, ties to the earlier; :func:`top_snapshots` lists them), e.g. for ALFA's and MAML++'s
    #: test-time ensemble of the best epochs
    keep: int = 1
    #: named criteria, when ``validate`` returns one value per name (lower is better each; e.g. R2-D2's code selects on
    #: 1-shot and on 5-shot validation accuracy): each keeps its own best model (:func:`criterion_path`) and its own count
    #: of validations without improvement, and the run stops once every count exceeds ``patience``
    criteria: tuple[str, ...] = ()
    #: whether a value equal to the best so far counts as an improvement (R2-D2's code compares with ``>=``; Snell et
    #: al.'s with ``<``, the default): the later of two equal models is kept
    ties_improve: bool = False

    def __post_init__(self):
        if self.criteria and self.keep > 1:
            raise ValueError("keep > 1 is for a single criterion: name the criteria or keep several models, not both")


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, config_hash: str | None = None) -> dict:
    """Read a checkpoint; check its format and, if given, its config hash."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path}") from None
    except Exception as err:  # torch raises several types for torn/garbage files
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(err).__name__}: {err}). It was left untouched; "
            "delete it (or run with --restart) to train from scratch."
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a metarepro checkpoint (format {CHECKPOINT_FORMAT} expected)")
    if config_hash is not None and payload.get("config_hash") != config_hash:
        raise CheckpointError(
            f"checkpoint {path} was written for configuration {payload.get('config_hash')}, "
            f"but this run's configuration is {config_hash}. It was left untouched; use --restart "
            "to discard it, or evaluate it with the configuration it was trained with."
        )
    return payload


class ProtocolChangeError(CheckpointError):
    """A checkpoint trained under other protocol versions than the code at hand (a resume would mix numerics)."""


def protocol_versions(model: nn.Module) -> dict[str, int]:
    """``{"trainer": v, "<Class>": v, ...}``: the protocol version of the trainer and of every class of the suite's
    ``methods`` package in ``model`` (``PROTOCOL_VERSION``, 1 where a class sets none). What a class computes may change
    only with its version (tests/test_protocol_versions.py holds each to a golden output)."""
    versions = {"trainer": TRAINER_PROTOCOL_VERSION}
    for module in model.modules():
        cls = type(module)
        if cls.__module__.split(".")[0] == "methods":
            versions[cls.__name__] = int(getattr(cls, "PROTOCOL_VERSION", 1))
    return dict(sorted(versions.items()))


#: what the process that trains says of itself in every segment (:func:`set_run_context`): commit, dirty, command
_RUN_CONTEXT: dict | None = None


def set_run_context(**fields) -> None:
    """Commit, dirty flag and command of the code this process runs (taken at launch, whatever is committed later)."""
    global _RUN_CONTEXT
    _RUN_CONTEXT = dict(fields)


def run_context() -> dict:
    global _RUN_CONTEXT
    if _RUN_CONTEXT is None:
        from metarepro.results import git_state

        _RUN_CONTEXT = git_state()
    return _RUN_CONTEXT


def new_segment(iteration: int, device: torch.device, versions: dict[str, int]) -> dict:
    """The record of one process's stretch of a run, from ``iteration``; :func:`train` fills in where it ended."""
    import socket

    context = run_context()
    return {"commit": context.get("commit"), "dirty": context.get("dirty"), "command": context.get("command"),
            "iterations": [iteration, iteration], "threads": torch.get_num_threads(), "host": socket.gethostname(),
            "device": str(device), "torch": str(torch.__version__), "protocol_versions": versions,
            "started_utc": _utc_now(), "ended_utc": None, "wall_time_s": 0.0, "cpu_time_s": 0.0}


def _utc_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


#: checkpoints a :func:`collect_trainings` block has trained or resumed, with their segments
_COLLECTED: list[dict] | None = None


@contextlib.contextmanager
def collect_trainings():
    """Within the block, every :func:`train` call appends ``{"checkpoint", "segments"}`` to the yielded list (the
    runner puts them in the record: which processes, commits and machines trained the model behind a number)."""
    global _COLLECTED
    previous, _COLLECTED = _COLLECTED, []
    try:
        yield _COLLECTED
    finally:
        _COLLECTED = previous


def note_training(entry: dict) -> None:
    """Add a training that was not run here to the :func:`collect_trainings` list (a finished training restored from the
    weights a record pinned: ``{"checkpoint", "segments", "weights_from"}``), so the record still names its segments."""
    if _COLLECTED is not None:
        _COLLECTED.append(entry)


def _default_step(model: nn.Module, batch: Episode, optimizer: torch.optim.Optimizer, forward_context=contextlib.nullcontext) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    with forward_context():
        loss = model.outer_loss(batch)
    if not torch.isfinite(loss):
        return loss.detach()  # the loop raises before anything is stepped
    loss.backward()
    optimizer.step()
    return loss.detach()


#: set by SIGINT/SIGTERM in a process that must stop (a parallel-job worker, :func:`stop_on_signals`); every later
#: :func:`train` in that process stops at once, so a stopped worker starts no new training
_stop_requested = False
_stop_persists = False  # True in a worker (stop_on_signals): a stop then outlives the train() that saw it


def request_stop(signum: int | None = None, frame=None) -> None:
    """Ask every training loop of this process to stop at its next iteration boundary (usable as a signal handler)."""
    global _stop_requested
    _stop_requested = True


def stop_requested() -> bool:
    return _stop_requested


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM only request a stop in this process (parallel-job workers; an ignored SIGINT stays
    ignored)."""
    global _stop_persists
    _stop_persists = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, request_stop)


class StopRequest:
    """While training: SIGINT or SIGTERM asks the loop to stop after the iteration at hand (a second one stops at once).

    The loop then checkpoints a consistent state (model, optimizer, iteration count and the partial loss window agree)
    and raises ``KeyboardInterrupt``: a run killed with ``kill`` or Ctrl-C loses no finished iteration. Handlers are
    installed only in a process's main thread (an ignored SIGINT, as under ``nohup ... &``, stays ignored) and
    restored on exit.
    """

    def __init__(self):
        self.forced = False  # a second signal: stopped mid-iteration, the state is not checkpointed
        self.previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return _stop_requested

    def _handle(self, signum, frame):
        if _stop_requested:
            self.forced = True
            raise KeyboardInterrupt
        request_stop()

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        global _stop_requested
        for sig, handler in self.previous.items():
            if handler is not None:  # None: a handler set outside Python, which cannot be put back from here
                signal.signal(sig, handler)
        if not _stop_persists:  # a stopped train() in an ordinary process: the next call may train again
            _stop_requested = False


def training_step(model: nn.Module, precision: str = "fp32") -> Callable[[Episode, torch.optim.Optimizer], torch.Tensor]:
    """One meta-iteration ``(batch, optimizer) -> loss``: the model's own ``train_step`` or backward of its ``outer_loss``.

    What :func:`train` repeats, and what ``metarepro time`` times.
    """
    device = next(model.parameters()).device
    forward_context = functools.partial(autocast, device, precision)
    own_step = getattr(model, "train_step", None)

    def step(batch: Episode, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        if own_step is None:
            return _default_step(model, batch, optimizer, forward_context)
        with forward_context():
            return own_step(batch, optimizer)

    return step


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_fn: Callable[[int], Episode],
    iterations: int,
    checkpoint_path: Path,
    config_hash: str,
    *,
    checkpoint_every: int = 1000,
    log_every: int = 100,
    progress: bool = True,
    desc: str = "meta-train",
    meta: dict | None = None,
    progress_position: int | None = None,
    early_stopping: EarlyStopping | None = None,
    lr_schedule: Callable[[int], float] | None = None,
    precision: str = "fp32",
    allow_protocol_change: bool = False,
    probes: Probes | None = None,
    loss_bound: float | None = None,
) -> TrainState:
    """Meta-train ``model`` to ``iterations``, resuming from ``checkpoint_path``.

    Raises :class:`NonFiniteLossError` (last good checkpoint kept) when the
    loss stops being finite, or exceeds ``loss_bound`` (a blow-up a finite
    float survives, after which a model may train on as a constant predictor),
    :class:`CheckpointError` when an existing
    checkpoint cannot be resumed. ``meta`` is stored in the checkpoint (what
    ``metarepro evaluate`` needs to rebuild the model). ``progress_position``
    puts the progress bar on its own terminal line (parallel jobs).
    ``early_stopping`` validates periodically, keeps the best model and may end
    the run before ``iterations``. ``lr_schedule(iteration)`` multiplies each
    parameter group's initial learning rate before that iteration's step (a
    pure function of the iteration, so resuming needs no scheduler state).
    ``precision="bf16"`` runs forward passes (and validation) under bf16
    autocast; a model with its own ``train_step`` runs the whole step under it.
    ``probes`` measures the model along training (:class:`Probes`).

    Every call that trains adds a segment to ``state.segments`` (:func:`new_segment`: commit, dirty flag, iteration
    range, threads, host, device, wall time, protocol versions). A checkpoint written under other protocol versions
    (:func:`protocol_versions`) is refused (:class:`ProtocolChangeError`) unless ``allow_protocol_change``; the
    segment then shows the change.
    """
    device = next(model.parameters()).device
    forward_context = functools.partial(autocast, device, precision)
    checkpoint_path = Path(checkpoint_path)
    checkpoint_every = checkpoint_interval(checkpoint_every)
    versions = protocol_versions(model)
    state = TrainState()
    if checkpoint_path.exists():
        payload = load_checkpoint(checkpoint_path, config_hash)
        state = TrainState(**payload["state"])
        if state.iteration and not state.segments:  # written before segments were recorded: say so, reconstruct nothing
            state.segments.append({"unknown": True, "iterations": [0, state.iteration],
                                   "note": "trained before checkpoints recorded their segments"})
        known = [seg["protocol_versions"] for seg in state.segments if "protocol_versions" in seg]
        allowed = allow_protocol_change or run_context().get("allow_protocol_change", False)
        if known and known[-1] != versions and state.iteration < iterations and not allowed:
            raise ProtocolChangeError(
                f"checkpoint {checkpoint_path} was trained under protocol versions {known[-1]}, this code has {versions}: "
                "resuming would mix two numerics in one model. Use --restart to train it anew, or --allow-protocol-change "
                "to resume anyway (the record then names both in its segments)."
            )
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
    segment: dict | None = None
    if state.iteration < iterations and not state.stopped_early:
        segment = new_segment(state.iteration, device, versions)
        state.segments.append(segment)
    if _COLLECTED is not None:
        _COLLECTED.append({"checkpoint": str(checkpoint_path), "segments": state.segments})

    def checkpoint() -> None:
        if segment is not None:
            segment["iterations"][1] = state.iteration
            segment["wall_time_s"] = round(time.perf_counter() - segment_started, 2)
            # the process's CPU time over the same stretch: below wall time x threads, other work shared the cores
            segment["cpu_time_s"] = round(time.process_time() - segment_cpu_started, 2)
            segment["ended_utc"] = _utc_now()
        save_checkpoint(
            checkpoint_path,
            {
                "format": CHECKPOINT_FORMAT,
                "config_hash": config_hash,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "state": state.__dict__,
                "meta": meta or {},
            },
        )

    step = training_step(model, precision)

    from tqdm import tqdm

    bar = tqdm(
        total=iterations,
        initial=state.iteration,
        desc=desc,
        disable=not progress,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
        dynamic_ncols=True,
        position=progress_position,
        leave=progress_position is None,
    )
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    window: list[float] = state.window
    started = time.perf_counter() - state.elapsed_s
    segment_started, segment_cpu_started = time.perf_counter(), time.process_time()
    model.train()
    stop = StopRequest()
    try:
        with stop:
            if probes is not None and state.probe_curve:  # points taken under other probe settings: again, from snapshots

                def keep(curve: list[dict]) -> None:
                    state.probe_curve = curve
                    checkpoint()

                state.probe_curve = reprobe(model, probes, state.probe_curve, keep)
            if probes is not None and state.iteration == 0:
                started += _probe(model, probes, state)
            while state.iteration < iterations and not state.stopped_early:
                if stop.requested:
                    raise KeyboardInterrupt
                if lr_schedule is not None:
                    for group in optimizer.param_groups:
                        group["lr"] = group["initial_lr"] * lr_schedule(state.iteration)
                loss = float(step(batch_fn(state.iteration), optimizer))
                if not math.isfinite(loss) or (loss_bound is not None and loss > loss_bound):
                    state.elapsed_s = time.perf_counter() - started
                    finite = math.isfinite(loss)
                    what = f"{loss:.4g}, above the divergence bound {loss_bound:.4g}," if finite else f"is {loss}"
                    raise NonFiniteLossError(
                        f"{desc}: outer loss {what} at iteration {state.iteration}; stopped. The last good "
                        f"checkpoint ({checkpoint_path}, iteration {_saved_iteration(checkpoint_path)}) is kept.", state,
                        *((loss, loss_bound) if finite else ()))
                window.append(loss)
                state.iteration += 1
                bar.update(1)
                if state.iteration % log_every == 0 or state.iteration == iterations:
                    state.loss_curve.append([state.iteration, sum(window) / len(window)])
                    bar.set_postfix(loss=f"{state.loss_curve[-1][1]:.4g}", refresh=False)
                    window = state.window = []
                validated = early_stopping is not None and state.iteration % early_stopping.every == 0
                if validated:
                    with forward_context():
                        _validate(model, early_stopping, state, meta)
                    bar.set_postfix(loss=f"{state.loss_curve[-1][1]:.4g}" if state.loss_curve else "-",
                                    val=f"{state.val_curve[-1][1]:.4g}", refresh=False)
                probed = probes is not None and probes.due(state.iteration)
                if probed:
                    started += _probe(model, probes, state)  # the clock times training only
                if validated or probed or state.iteration % checkpoint_every == 0 or state.iteration == iterations:
                    state.elapsed_s = time.perf_counter() - started
                    checkpoint()
            if stop.requested:  # asked during the last iteration: the run is complete, but the process must stop
                raise KeyboardInterrupt
    except KeyboardInterrupt:  # asked to stop (StopRequest) between iterations: keep every finished one
        if not stop.forced:
            state.elapsed_s = time.perf_counter() - started
            checkpoint()
        raise
    finally:
        bar.close()
    if not checkpoint_path.exists():  # zero iterations asked for
        checkpoint()
    return state


def checkpoint_interval(default: int) -> int:
    """Iterations between checkpoints: ``default``, or fewer where ``$METAREPRO_CHECKPOINT_EVERY`` asks (preemptible
    nodes lose less; a resume is exact either way, so the interval changes no number)."""
    override = os.environ.get("METAREPRO_CHECKPOINT_EVERY")
    if not override:
        return default
    try:
        every = int(override)
    except ValueError:
        raise ValueError(f"METAREPRO_CHECKPOINT_EVERY must be a positive integer, got {override!r}") from None
    if every < 1:
        raise ValueError(f"METAREPRO_CHECKPOINT_EVERY must be a positive integer, got {override!r}")
    return min(default, every)


def step_decay(every: int, factor: float = 0.5) -> Callable[[int], float]:
    """``factor ** (iteration // every)``: PyTorch's StepLR stepped every ``every`` iterations."""
    return lambda iteration: factor ** (iteration // every)


def lr_schedule_linear(iterations: int, final_factor: float) -> Callable[[int], float]:
    """Linear anneal of the rate from 1x to ``final_factor``x over ``iterations`` (supervised-reptile's meta step:
    ``frac_done * final + (1 - frac_done) * initial`` with ``frac_done = i / iterations``)."""
    return lambda iteration: 1.0 + (final_factor - 1.0) * iteration / iterations


def criterion_path(best_path: Path, name: str) -> Path:
    """Where the best model of criterion ``name`` is saved: ``best.pt`` -> ``best-<name>.pt``."""
    best_path = Path(best_path)
    return best_path.with_name(f"{best_path.stem}-{name}{best_path.suffix}")


def is_snapshot(path: Path) -> bool:
    """Whether ``path`` is a model early stopping kept (``best.pt``, snell's ``train-best.pt``, ``best-<criterion>.pt``,
    ``top-<i>.pt``), not a training's progress (its ``checkpoint.pt``, or a phase's)."""
    name = Path(path).name
    return name.endswith("best.pt") or name.startswith(("top-", "best-"))


def _improves(value: float, best: float | None, ties_improve: bool) -> bool:
    return best is None or value < best or (ties_improve and value == best)


def _save_best(path: Path, model: nn.Module, state: TrainState, value: float, meta: dict | None) -> None:
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "config_hash": None, "model": model.state_dict(),
                           "state": {"iteration": state.iteration, "value": value}, "meta": meta or {}})


def _validate_criteria(model: nn.Module, early: EarlyStopping, state: TrainState, values, meta: dict | None) -> None:
    """One validation of named criteria: each its own best model and patience count; stop when all ran out."""
    values = [float(v) for v in values]
    if len(values) != len(early.criteria):
        raise ValueError(f"validation returned {len(values)} values for the criteria {list(early.criteria)}")
    bad = [f"{n}={v}" for n, v in zip(early.criteria, values) if not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(f"validation values {', '.join(bad)} at iteration {state.iteration}")
    state.val_curve.append([state.iteration, *values])
    for name, value in zip(early.criteria, values):
        track = state.criteria.setdefault(name, {"best_value": None, "best_iteration": None, "wait": 0})
        if _improves(value, track["best_value"], early.ties_improve):
            track.update(best_value=value, best_iteration=state.iteration, wait=0)
            _save_best(criterion_path(early.best_path, name), model, state, value, meta)
        else:
            track["wait"] += 1
    state.stopped_early = all(state.criteria[n]["wait"] > early.patience for n in early.criteria)


def _validate(model: nn.Module, early: EarlyStopping, state: TrainState, meta: dict | None) -> None:
    model.eval()
    with torch.no_grad():
        value = early.validate()
    model.train()
    if early.criteria:
        _validate_criteria(model, early, state, value, meta)
        return
    value = float(value)
    if not math.isfinite(value):
        raise NonFiniteLossError(f"validation value is {value} at iteration {state.iteration}")
    state.val_curve.append([state.iteration, value])
    if _improves(value, state.best_value, early.ties_improve):
        state.best_value, state.best_iteration, state.wait = value, state.iteration, 0
        _save_best(early.best_path, model, state, value, meta)
    else:
        state.wait += 1
        state.stopped_early = state.wait > early.patience
    if early.keep > 1:
        kept = {int(i) for i, _ in top_validations(state.val_curve, early.keep)}
        if state.iteration in kept:
            _save_best(snapshot_path(early.best_path, state.iteration), model, state, value, meta)
        for path in early.best_path.parent.glob("top-*.pt"):  # those that fell out of the best (or a killed run's leftovers)
            if int(path.stem.split("-")[1]) not in kept:
                path.unlink(missing_ok=True)


def top_validations(val_curve: list[list[float]], keep: int) -> list[list[float]]:
    """The ``keep`` best ``[iteration, value]`` of a validation curve (lowest value first; ties to the earlier)."""
    return sorted(val_curve, key=lambda point: (point[1], point[0]))[:keep]


def snapshot_path(best_path: Path, iteration: int) -> Path:
    return Path(best_path).parent / f"top-{int(iteration)}.pt"


def top_snapshots(best_path: Path, val_curve: list[list[float]], keep: int) -> list[Path]:
    """The kept models (:attr:`EarlyStopping.keep`), best first; a CheckpointError names any that is missing."""
    paths = [snapshot_path(best_path, i) for i, _ in top_validations(val_curve, keep)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise CheckpointError(f"{missing[0]} is missing: the run kept fewer than its {keep} best models; rerun with --restart")
    return paths


def _saved_iteration(path: Path) -> str:
    try:
        return str(load_checkpoint(path)["state"]["iteration"])
    except CheckpointError:
        return "none"
