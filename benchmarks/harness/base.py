"""What every benchmark (one paper table or figure) provides."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from metarepro.results import SCALES, result_hash, slugify

MAIN = "main"


class UnknownCellError(KeyError):
    """A row, column, variant or seed a benchmark does not have; its message prints as written (KeyError's quotes it)."""

    def __str__(self) -> str:
        return self.args[0]


def did_you_mean(name: str, known) -> str:
    """``" (did you mean 'x'?)"`` for the closest of the ``known`` names (difflib's ratio at least 0.75), else ``""``."""
    close = difflib.get_close_matches(name, [str(k) for k in known], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def way_shot(column: str) -> tuple[int, int]:
    """A classification column's ``(ways, shots)``: ``"20-way 5-shot"`` -> ``(20, 5)``."""
    match = re.fullmatch(r"(\d+)-way (\d+)-shot", column)
    if match is None:
        raise ValueError(f"expected a column like '5-way 1-shot', got {column!r}")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class Cell:
    """One cell of a table under one protocol (``variant``; ``"main"`` is the paper's), trained from ``seed``.

    ``seed`` is the training seed of a benchmark that trains each cell several times (claim checks:
    :attr:`Benchmark.training_seeds`); each seed is its own record and checkpoint. Seed 0 keeps the names cells had before
    seeds existed, so its records and run folders stay where they were.
    """

    row: str
    column: str
    variant: str = MAIN
    seed: int = 0

    @property
    def slug(self) -> str:
        return f"{slugify(self.row)}--{slugify(self.column)}--{slugify(self.variant)}" + (f"--seed{self.seed}" if self.seed else "")

    @property
    def label(self) -> str:
        suffix = ("" if self.variant == MAIN else f" [{self.variant}]") + (f" seed {self.seed}" if self.seed else "")
        return f"{self.row} / {self.column}{suffix}"

    @staticmethod
    def parse(text: str) -> Cell:
        """``"row/column"``, ``"row/column/variant"`` or ``"row/column/variant/seed=N"``."""
        parts = [p.strip() for p in text.split("/")]
        seed = 0
        if len(parts) == 4 and parts[3].startswith("seed="):
            try:
                seed = int(parts.pop()[len("seed="):])
            except ValueError:
                raise ValueError(f"a cell's seed is 'seed=N' with N a non-negative integer, got {text!r}") from None
        if len(parts) not in (2, 3) or not all(parts) or seed < 0:
            raise ValueError(f"a cell is 'row/column', 'row/column/variant' or 'row/column/variant/seed=N', got {text!r}")
        return Cell(*parts, seed=seed)

    @staticmethod
    def of(record: dict) -> Cell:
        """The cell a reproduced record belongs to (records made before seeds existed are seed 0)."""
        return Cell(record["row"], record["column"], record["variant"], record.get("seed", 0))

    def matches(self, record: dict) -> bool:
        return Cell.of(record) == self


@dataclass(frozen=True)
class CorrelationClaim:
    """A claim that two measures move together (Guiroy et al.'s figures), read off records' ``probe_curve``
    (:class:`metarepro.trainer.Probes`): ``x`` and ``y`` are keys of its points, ``expected_sign`` the sign the claim gives
    their correlation (``-1``: ``y`` falls as ``x`` rises).

    ``over="training"``: per run, Pearson's R between ``x`` and ``y`` over that run's probe points (its epochs; with
    ``skip_untrained``, not the probe of the untrained model at iteration 0, which the paper's axes start after; with
    ``after_peak_of`` / ``until_peak_of``, only the points after / before the maximum of that key (the points probed
    between epochs included: :attr:`metarepro.trainer.Probes.also_at`; a claim over the whole curve reads the per-epoch
    points only, as the paper's axes have them), the maximum itself
    left out: a segment that ends or starts at its own maximum leans to the claimed sign by construction, so that on
    pure noise, 100 points and 3 runs, "rises to its peak" and "falls after it" held in 7.1% of 3,000 trials with the
    peak kept and 1.8% with it left out, against the 2.5% the one-sided interval promises), one check per column. On a
    smooth curve the split still decides the sign: on random walks (106 points, 3 runs, 1,000 trials) both held in ~17%
    of trials, since any walk rises to its maximum and falls after it. So a claim that splits at the peak of its own
    ``y`` (:attr:`splits_at_its_own_peak`) is judged on each run's Fisher z minus that of the same curve's steps in random
    order, split at their own peak (:meth:`shuffled_steps_z`): whether the rise (or fall) is more orderly than the run's
    steps alone make it (300 trials of 3 runs each: random walks held in ~1% of trials, i.i.d. noise in none; a rise
    and fall ``t exp(-t/2)`` over 106 points, peak 0.74, held in every trial with noise of sd 0.02, in 87% (rise) and
    100% (fall) at 0.05, 50% / 99% at 0.1: the price is power where i.i.d. noise is large beside the rise, which fixed
    probe tasks keep small). ``over="columns"``: per training seed, R between the final probe points of ``row``'s cells
    across ``columns`` (all the benchmark's when empty), one check. Either way the verdict rests on the interval over
    runs (:func:`benchmarks.harness.runner.correlation_checks`).
    """

    claim: str
    row: str
    x: str
    y: str
    over: str = "training"
    expected_sign: int = 1
    columns: tuple[str, ...] = ()
    after_peak_of: str | None = None
    until_peak_of: str | None = None
    skip_untrained: bool = False
    #: R between the epoch-to-epoch changes of ``x`` and ``y`` (first differences along the run's points), not their
    #: levels: what the two share beyond a trend both follow along training (:func:`and_their_changes`)
    changes: bool = False

    def _considered(self, curve: list[dict]) -> list[dict]:
        """The points the claim may read: less the untrained model's with ``skip_untrained``; less those probed between
        epochs, unless it reads before or after a peak."""
        curve = [p for p in curve if p["iteration"] > 0] if self.skip_untrained else curve
        if self.after_peak_of is None and self.until_peak_of is None:  # a claim over the regular (per-epoch) points
            curve = [p for p in curve if not p.get("between")]
        return curve

    def _peak(self, curve: list[dict]) -> int | None:
        """Index in ``curve`` of the first maximum of ``after_peak_of`` / ``until_peak_of``; None for a claim over the whole
        curve, or an empty one."""
        key = self.after_peak_of or self.until_peak_of
        return None if key is None or not curve else max(range(len(curve)), key=lambda i: curve[i][key])

    def points(self, curve: list[dict]) -> list[dict]:
        """The probe points the claim reads: the whole curve (less iteration 0 with ``skip_untrained``), or those after /
        before (both excluding) the peak of ``after_peak_of`` / ``until_peak_of``."""
        curve = self._considered(curve)
        peak = self._peak(curve)
        if peak is None:
            return curve
        return curve[peak + 1:] if self.after_peak_of else curve[:peak]

    @property
    def splits_at_its_own_peak(self) -> bool:
        """Whether the claim reads one side of the maximum of the measure it correlates (the segment chosen by the very
        curve it reads, not by another measure's)."""
        return (self.after_peak_of or self.until_peak_of) == self.y

    def shuffled_steps_z(self, curve: list[dict], surrogates: int = 500) -> float:
        """The Fisher z the claim's segment gives the run's curve with its steps in random order
        (:func:`metarepro.evaluate.peak_segment_z_of_shuffled_steps`, over the points :meth:`points` chooses from)."""
        from metarepro.evaluate import peak_segment_z_of_shuffled_steps

        curve = self._considered(curve)
        return peak_segment_z_of_shuffled_steps([p[self.x] for p in curve], [p[self.y] for p in curve], self.after_peak_of is not None,
                                                surrogates)

    def z_over_shuffled_steps(self, curve: list[dict]) -> float:
        """One run's evidence for a claim that :attr:`splits_at_its_own_peak`: Fisher's z of R over :meth:`points`
        minus :meth:`shuffled_steps_z` (NaN where either is undefined)."""
        from metarepro.evaluate import MAX_ABS_CORRELATION
        from metarepro.landscape import pearson

        points = self.points(curve)
        if len(points) < 3:
            return math.nan
        r = pearson([p[self.x] for p in points], [p[self.y] for p in points])
        if not math.isfinite(r):
            return math.nan
        return math.atanh(min(max(r, -MAX_ABS_CORRELATION), MAX_ABS_CORRELATION)) - self.shuffled_steps_z(curve)

    def peak_iteration(self, curve: list[dict]) -> int | None:
        """The iteration of the peak the claim reads before or after (None for a claim over the whole curve): a run whose
        peak comes within two probe points of its start (``until_peak_of``) or end (``after_peak_of``) leaves too few
        points for a correlation, and says where its peak was instead."""
        curve = self._considered(curve)
        peak = self._peak(curve)
        return None if peak is None else curve[peak]["iteration"]

    def series(self, points: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """The two series R is taken between: ``x`` and ``y`` over ``points``, or their first differences (``changes``)."""
        x, y = np.array([p[self.x] for p in points], dtype=np.float64), np.array([p[self.y] for p in points], dtype=np.float64)
        return (np.diff(x), np.diff(y)) if self.changes else (x, y)

    def __post_init__(self):
        if self.over not in ("training", "columns") or self.expected_sign not in (1, -1):
            raise ValueError(f"a correlation claim is over 'training' or 'columns' with expected_sign +-1, got {self}")
        if self.after_peak_of and self.until_peak_of:
            raise ValueError(f"a correlation claim reads after a peak or up to it, not both: {self}")
        if self.changes and (self.over != "training" or self.after_peak_of or self.until_peak_of or self.x == "iteration"):
            raise ValueError(f"a claim on changes reads two measures along a whole run, neither of them the iteration: {self}")


#: what :func:`and_their_changes` adds to a claim's words
CHANGES_SUFFIX = ("; beyond the trend both follow, their epoch-to-epoch changes move together too [ours, not the paper's: "
                  "first differences, the untrained model's point left out]")


def and_their_changes(claims: list[CorrelationClaim]) -> list[CorrelationClaim]:
    """``claims``, each claim between two measures along training followed by its twin on their epoch-to-epoch changes
    (:attr:`CorrelationClaim.changes`). Two measures that each drift with training correlate whatever links them; their
    changes correlate only if they move together epoch by epoch. The twin leaves out the untrained model's point, whose
    one large first step would otherwise decide R."""
    out = []
    for claim in claims:
        out.append(claim)
        if claim.over == "training" and claim.x != "iteration" and not (claim.after_peak_of or claim.until_peak_of):
            out.append(replace(claim, claim=claim.claim + CHANGES_SUFFIX, changes=True, skip_untrained=True))
    return out


@dataclass(frozen=True)
class LevelClaim:
    """A claim that one row's probed measure sits at another level than another row's along training (Guiroy et al.'s
    Fig. 6: the finetuning baseline's coherences "much closer to zero" than MAML's), or than another measure of the same
    run (``baseline_key``, with ``baseline == method``: Fig. 10's meta-train against meta-test accuracy). Per training
    seed, each run's level is the mean over its probe points of ``key`` (the baseline's of ``baseline_key`` where given;
    of the absolute value with ``absolute``); the claim is on the difference method - baseline, paired by seed, with the
    Student-t interval over seeds; ``expected_sign`` -1: the method's level is below the baseline's
    (:func:`benchmarks.harness.runner.level_checks`)."""

    claim: str
    baseline: str
    method: str
    key: str
    absolute: bool = False
    expected_sign: int = -1
    baseline_key: str | None = None

    def level(self, curve: list[dict], key: str | None = None) -> float:
        """The mean over ``curve``'s per-epoch points (not those probed between epochs) of ``key`` (default: the claim's
        ``key``)."""
        key = key or self.key
        values = [abs(p[key]) if self.absolute else p[key] for p in curve if not p.get("between")]
        return float(np.mean(values)) if values else math.nan

    def baseline_level(self, curve: list[dict]) -> float:
        return self.level(curve, self.baseline_key)

    def __post_init__(self):
        if self.expected_sign not in (1, -1):
            raise ValueError(f"a level claim has expected_sign +-1, got {self}")


@dataclass
class CellResult:
    """What a cell's run hands back to the runner."""

    scores: np.ndarray
    deviations: list[str]
    wall_time_s: float
    train_wall_time_s: float
    extra: dict
    score_unit: str = "episode"  # or "run": ``scores`` are the means of independent training runs (t interval)


class Benchmark:
    """Base class: rows x columns x protocol variants, and how to run a cell.

    Subclasses set the class attributes and implement :meth:`config`,
    :meth:`run_cell`, :meth:`evaluate_checkpoint` and
    :meth:`estimated_seconds`. ``known_deviations`` maps ``(row, column)`` of
    a main cell that does not reproduce at paper scale to the finding that
    explains it; the regression tests hold the list strict both ways.
    """

    id: str = ""
    title: str = ""
    paper: str = ""  # file under ../shared/papers/
    metric: str = ""
    higher_is_better: bool = True
    rows: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    #: variant name -> what it changes and where the protocol comes from
    variants: dict[str, str] = {}
    known_deviations: dict[tuple[str, str], str] = {}
    #: ``(row, column, variant)`` -> what happened to a run that left no record (divergence, ...)
    run_notes: dict[tuple[str, str, str], str] = {}
    #: rows the paper cites from other work: compared tables show their published numbers; never trained here
    cited_rows: tuple[str, ...] = ()
    #: any method of ``methods.METHODS`` may run as an extra row under this protocol
    accepts_registered_methods: bool = False
    #: the data it needs under the data root, or None for generated tasks
    requires_data: str | None = None
    #: independent trainings of every cell (seeds ``0..n-1``, one record each) at quick and paper scale; claim checks need
    #: at least 3 (:func:`benchmarks.harness.runner.claim_checks`); smoke scale trains seed 0 only, to keep CI short
    training_seeds: int = 1
    #: whether a finished training whose run folder is gone is restored from the weights a current record pinned
    #: (:func:`benchmarks.harness.checkpoints.restore_pinned`) instead of trained again; ``plan`` then counts it as done
    restores_pinned_trainings: bool = False
    #: why reproduced numbers cannot be held to the published ones (e.g. "CPU vs the paper's GPU"): ``compare`` shows them
    #: with the verdict "not comparable" and this reason, and :meth:`comparison_notes` says what can be compared
    not_comparable: str | None = None
    #: why no cell can run on data this suite reads (e.g. a benchmark whose dataset format has no reader): its cells are
    #: registered and compared with nothing (``compare`` shows the published numbers), ``reproduce`` says why and runs
    #: nothing, and no scale has cells
    not_runnable: str | None = None
    #: why the published file has no cells although the paper prints numbers (its table could not be read here):
    #: ``compare`` says so, instead of calling the benchmark a figure or a claim check
    untranscribed: str | None = None
    #: what the tables call a scale where the harness's name would mislead: a claim check whose largest scale is a measured
    #: budget of our protocol, not a paper's schedule (``alfa-omniglot``: ``{"paper": "claim budget"}``)
    scale_names: dict[str, str] = {}

    def scale_name(self, scale: str) -> str:
        """``scale`` as tables and messages show it (:attr:`scale_names`); records and ``--scale`` keep the harness's name."""
        return self.scale_names.get(scale, scale)

    def column_higher_is_better(self, column: str) -> bool:
        """Whether a higher score is better in ``column`` (benchmarks whose columns mix metrics override it)."""
        return self.higher_is_better

    def comparison_notes(self) -> list[dict]:
        """Extra rows ``compare`` prints after the cells (e.g. Table 7's meta / classical ratios); default none."""
        return []

    def seeds(self, scale: str | None) -> range:
        """Training seeds of every cell at ``scale`` (``None``: all the benchmark has)."""
        return range(1 if scale == "smoke" else self.training_seeds)

    # -- cells -------------------------------------------------------------
    def variant_applies(self, row: str, column: str, variant: str) -> bool:
        """Whether ``variant`` is run for this row and column (default: all)."""
        return True

    def cells(self, variants: list[str] | None = None, scale: str | None = None) -> list[Cell]:
        """Cells of the main protocol, then of each variant asked for; each training seed of ``scale`` (:meth:`seeds`)."""
        if self.not_runnable and scale is not None:
            return []
        names = [MAIN] + [v for v in self.variants if variants is not None and (v in variants or "all" in variants)]
        return [
            Cell(r, c, v, s)
            for v in names
            for r in self.rows
            for c in self.columns
            if v == MAIN or self.variant_applies(r, c, v)
            for s in self.seeds(scale)
        ]

    def check_cell(self, cell: Cell) -> None:
        from methods import METHODS

        row_ok = cell.row in self.rows or (self.accepts_registered_methods and cell.row in METHODS)
        if not row_ok or cell.column not in self.columns:
            hint = did_you_mean(cell.row, self.rows) if not row_ok else did_you_mean(cell.column, self.columns)
            raise UnknownCellError(f"{self.id} has no cell {cell.row!r}/{cell.column!r}{hint}; rows {list(self.rows)}, "
                                   f"columns {list(self.columns)}")
        applies = cell.variant in self.variants and self.variant_applies(cell.row, cell.column, cell.variant)
        if cell.variant != MAIN and cell.row in self.rows and not applies:
            raise UnknownCellError(f"{self.id}: variant {cell.variant!r} does not apply to {cell.row}/{cell.column}; "
                                   f"variants {list(self.variants)}")
        if cell.seed not in self.seeds(None):
            raise UnknownCellError(f"{self.id} trains seeds {list(self.seeds(None))} of each cell, not seed {cell.seed}")

    # -- configuration -----------------------------------------------------
    def config(self, cell: Cell, scale: str) -> dict:
        """Everything that determines the cell's number (JSON-able)."""
        raise NotImplementedError

    def result_hash(self, cell: Cell, scale: str) -> str:
        """What a current record's configuration must hash to (:func:`metarepro.results.result_hash`)."""
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
        return result_hash(self.config(cell, scale))

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        raise NotImplementedError

    def estimated_train_test(self, cell: Cell, scale: str) -> tuple[float, float]:
        """:meth:`estimated_seconds` as ``(training, test)`` where the benchmark knows the split; else all training."""
        return self.estimated_seconds(cell, scale), 0.0

    def estimated_training_overhead(self, cell: Cell, scale: str) -> float:
        """Rough seconds a training spends beyond its iterations (probes along training), added to a projection from a
        measured time per iteration (:func:`benchmarks.harness.runner.timed_iteration`)."""
        return 0.0

    # -- running -----------------------------------------------------------
    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        raise NotImplementedError

    def training_key(self, cell: Cell, scale: str) -> str:
        """Cells with the same key share one trained model (and checkpoint)."""
        return cell.slug

    def iterations(self, cfg: dict) -> int | None:
        """The iterations a training of ``cfg`` runs at the most (what its ``checkpoint.pt`` counts to), or None where
        its checkpoints count none (e.g. snell2017-table1's two phases)."""
        return cfg.get("iterations")

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        """Folders (under the runs root, ``<benchmark>/<scale>/<name>``) whose ``checkpoint.pt`` trains the cell's
        model(s), each to :meth:`iterations` of its config: what ``reproduce`` resumes and ``list --runs`` shows."""
        return [f"{self.id}/{scale}/{self.training_key(cell, scale)}"]

    def data_available(self) -> bool:
        """Whether the data its quick and paper scales need is under the data root."""
        if self.requires_data is None:
            return True
        from metarepro.data.store import data_root

        return (data_root() / self.requires_data).is_dir() and (data_root() / "splits").is_dir()

    def trivial_score(self, cell: Cell, scale: str) -> float:
        """The score of a model that learned nothing (chance accuracy, predict-zero MSE): smoke runs must beat it."""
        raise NotImplementedError

    def smoke_learning_evidence(self, record: dict) -> tuple[float, float, bool]:
        """``(score, untrained score, higher is better)`` by which a smoke record shows that its model learned
        (``tests/test_smoke.py``): by default the record's own mean against :meth:`trivial_score`."""
        cell = Cell.of(record)
        return record["mean"], self.trivial_score(cell, "smoke"), self.column_higher_is_better(cell.column)

    def diverged(self, cell: Cell, scale: str, scores: np.ndarray) -> np.ndarray:
        """Which test episodes' adaptations diverged (bool, per episode): the runner writes no record for a cell with
        any, as an average over them means nothing. Default: the non-finite scores; a benchmark whose metric is bounded
        for any sane model may also name a finite threshold (and say why)."""
        return ~np.isfinite(scores)

    def render_figures(self, scale: str) -> list[Path]:
        """Draw the benchmark's figure(s) from its records at ``scale`` into ``results/figures/`` (figure benchmarks
        override this); returns the PNG paths written."""
        return []

    def figure_path(self, scale: str, part: str = "") -> Path:
        from metarepro.results import results_dir

        return results_dir() / "figures" / f"{self.id}--{scale}{'--' + slugify(part) if part else ''}.png"

    def paired_claims(self) -> list[tuple]:
        """``(claim, baseline row, method row)`` checked cell by cell on shared test episodes, within each protocol; or
        ``(claim, baseline row, method row, baseline protocol, method protocol)`` across two protocols."""
        return []

    def correlation_claims(self) -> list[CorrelationClaim]:
        """Claims that two probed measures move together (:class:`CorrelationClaim`); default none."""
        return []

    def level_claims(self) -> list[LevelClaim]:
        """Claims that one row's probed measure sits below (or above) another's (:class:`LevelClaim`); default none."""
        return []

    def protocol_deviations(self, cell: Cell, scale: str) -> list[str]:
        """Deviations of the cell's protocol from the authors' code that the configuration itself implies (e.g. a split
        file in place of the code's own shuffle): new records carry them in ``deviations``; ``compare`` shows them for
        records made before they were declared too."""
        return []

    def probe_settings(self, cfg: dict) -> str | None:
        """What each probe point of a run configured by ``cfg`` must carry as its ``settings`` for the record to stand
        (:class:`metarepro.trainer.Probes`; :func:`benchmarks.harness.runner.probe_change`); None where the benchmark's
        probes name no settings."""
        return None

    def dataset_digest(self) -> str | None:
        """Digest of the data the cells read (None for generated tasks)."""
        return None

    def evaluate_checkpoint(self, checkpoint: Path, cell: Cell, scale: str, device: str = "cpu") -> np.ndarray:
        raise NotImplementedError

    def rescore_for_pinning(self, checkpoint: Path, cell: Cell, scale: str, extra: dict, device: str = "cpu") -> np.ndarray:
        """What pinning re-scores to check copied weights against the record's per-episode scores (``extra``: the run's
        record fields): the whole evaluation (:meth:`evaluate_checkpoint`) unless a benchmark whose evaluation first
        chooses test-time settings on validation episodes re-scores only the test, with the settings the run chose (hours
        of fine-tuning saved; ``metarepro evaluate`` still re-runs the choice)."""
        return self.evaluate_checkpoint(checkpoint, cell, scale, device=device)

    def scored_checkpoint(self, cell: Cell, scale: str) -> Path | None:
        """The one file (under the runs root) whose model gave the cell's scores, i.e. what :meth:`evaluate_checkpoint`
        reads: the early-stopping snapshot ``best.pt`` where the run kept one, else ``checkpoint.pt``; None where the
        scores come from several models (runs, grids). What the runner pins for a paper-scale record
        (:mod:`benchmarks.harness.checkpoints`), after checking that re-scoring it gives the record's scores."""
        from benchmarks.harness.paths import runs_dir

        folders = self.run_directories(cell, scale)
        if len(folders) != 1:
            return None
        folder = runs_dir() / folders[0]
        return folder / "best.pt" if (folder / "best.pt").is_file() else folder / "checkpoint.pt"

    def chosen_training(self, cell: Cell, scale: str, extra: dict) -> tuple[Path, str] | None:
        """Where the cell trains several models and its run chose one on validation episodes to score (a tuned
        coefficient): that model's file under the runs root and its training key, read from the run's record fields
        ``extra``; None where the cell's scores do not come from one chosen model of several (the default). Pinning copies
        it under the chosen key (:func:`~benchmarks.harness.checkpoints.pin_checkpoint`)."""
        return None

    def protocol_model(self, cell: Cell, scale: str):
        """An untrained instance of the model the cell trains (its classes name the protocol versions that decide its
        numbers: :func:`metarepro.trainer.protocol_versions`), or None where the benchmark cannot build one."""
        build = getattr(self, "build_model", None)
        return build(self.config(cell, scale)) if build is not None else None

    def load_trained(self, checkpoint: Path, cell: Cell, scale: str, key: str | None = None):
        """``(config, model)`` of a saved checkpoint, refused (CheckpointError) when it was trained with another configuration."""
        from metarepro.trainer import load_checkpoint

        self.check_cell(cell)
        cfg = self.config(cell, scale)
        payload = load_checkpoint(checkpoint, key or self.training_key(cell, scale))
        model = self.build_model(cfg)
        model.load_state_dict(payload["model"])
        return cfg, model
