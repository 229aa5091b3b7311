"""Shared machinery of the bilevel metric-learning tables: L2G (Tables 1-3, Figs 2-3), Hyper-Representation (Table 1, Fig 1)
and their Omniglot claim checks.

A cell trains ``runs`` independent models (training seeds ``0..runs-1``) and
tests each on the same fixed test episodes; L2G's tables report "mean and 95%
confidence interval over 5 runs, each the mean accuracy over 600 episodes",
so a cell's scores are the run means and its interval is over runs: the
Student-t interval on their sample deviation (``score_unit = "run"``; the
normal one would be ~1.6x too narrow at five runs). The per-episode
accuracies of every run stay in the record; two rows are compared run by
run (:func:`metarepro.results.paired_difference`). A benchmark with
``runs = 1`` (Hyper-Representation, the Omniglot claim checks) scores per
test episode instead, so that two rows can be compared episode by episode.

Rows are a base metric learner, optionally inside a bilevel wrapper, read
from the row's name: ``"L2G + Relation Network"`` is
:class:`methods.l2g.L2G` around :class:`methods.relationnet.RelationNet`.

Choices where the papers are silent, each cited or marked [choice]:

=========================  =====================================================================
setting                    value
=========================  =====================================================================
episodes per update        1 for ProtoNet / RelationNet / Matching Nets (their own papers); 5
                           task pairs for L2G + X ("the number of tasks for the backward
                           propagation to 5", L2G sec. 4) and 5 tasks for MAML + X [choice: as
                           L2G, the paper gives MAML + X no setting of its own]
learning rate              Adam 1e-3, halved every 10K (ProtoNet family) or 100K (RelationNet
                           family) updates: L2G sec. 4 for its own models ("at every 10K
                           episode"; one update counts as one episode [choice], though an L2G
                           update draws 5 task pairs), applied to the baselines too [choice]
training length            60K updates (ProtoNet family: 5 halvings) and 500K (RelationNet
                           family, Sung et al.'s mini-ImageNet code budget) [choice: L2G gives
                           none]; the checkpoint of best validation accuracy is tested [choice]
queries per class          15 in training and test (Snell et al., Sung et al. on mini-ImageNet)
training ways / shots      those of the test column (L2G's "C-way N-shot" episodes)
inner step (L2G, MAML+X)   one step of 1e-2 (L2G sec. 4), second order
BatchNorm at test          running statistics for the ProtoNet family and Matching Nets (Snell et
                           al.'s code calls ``model.eval()``); batch statistics of the episode for
                           the RelationNet family (Sung et al.'s code never leaves training mode),
                           MAML (its code) and Hyper-Representation [choice]
pixels                     RGB in [0, 1], no standardisation [choice]
gradient clipping          none [choice: Sung et al.'s code clips each network at 0.5 (``sung2018-table1``
                           does); L2G does not say, so base and bilevel rows are treated alike]
Matching Nets              full context embeddings, one attention read step (the variant of the cited
                           numbers, :mod:`methods.matchingnet`)
=========================  =====================================================================
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.harness.base import Benchmark, Cell, CellResult
from metarepro.data.samplers import disjoint_pair
from metarepro.data.store import DataError, data_root
from metarepro.episodes import Episode, task_rng
from metarepro.results import config_hash
from metarepro.timing import now
from metarepro.trainer import EarlyStopping, load_checkpoint, step_decay, train
from methods.l2g import L2G, TaskPairs
from methods.maml import MAML
from methods.maml_metric import MAMLMetric

#: the base learner of a row (after any ``"L2G + "`` / ``"MAML + "`` prefix)
BASES = {"Prototypical Network": "protonet", "Prototypical Networks": "protonet", "Relation Network": "relationnet",
         "Matching Nets": "matchingnet", "MAML": "maml", "Hyper-Representation": "hyperrepr"}
WRAPPERS = {"L2G + ": "l2g", "MAML + ": "maml"}
#: learners whose BatchNorm normalises with the batch at hand at test time too (module docstring)
BATCH_STATISTICS = {"relationnet", "maml", "hyperrepr"}
#: per base learner (the wrapper inherits it): updates, learning-rate halving period (L2G sec. 4 and the table above)
SCHEDULES = {"protonet": (60_000, 10_000), "matchingnet": (60_000, 10_000), "relationnet": (500_000, 100_000),
             "maml": (60_000, None), "hyperrepr": (40_000, None)}
QUERIES = 15
#: dataset -> (channels, image size)
IMAGES = {"mini_imagenet": (3, 84), "tiered_imagenet": (3, 84), "omniglot": (1, 28)}


def row_method(row: str) -> tuple[str, str | None]:
    """``"L2G + Relation Network"`` -> ``("relationnet", "l2g")``; KeyError for an unknown learner."""
    for prefix, wrapper in WRAPPERS.items():
        if row.startswith(prefix) and row != "MAML":
            return BASES[row[len(prefix):]], wrapper
    return BASES[row], None


def parse_setting(column: str) -> tuple[list[int], list[int]]:
    """A column's task settings: ``"5-way 1-shot"`` -> ``([5], [1])``; L2G Table 3's any-way / any-shot columns.

    Any-shot: 5-way with 1, 5 or 10 shots; any-way: 5, 7 or 10 ways at 5 shots (L2G sec. 4: "shots between 1, 5, 10 and
    ways between 5, 7, 10"; which shot the any-way column fixes is not stated: 5, the shot of L2G's fixed first task, is
    the one that reproduces the printed ProtoNet value: the mean of its 5/10-way 5-shot cells of Table 1, 65.8 and 49.3,
    and a 7-way value between them is ~58, against 57.94 printed; at 1 shot the mean would be ~39) [choice].
    """
    if column == "Any-shot":
        return [5], [1, 5, 10]
    if column == "Any-way":
        return [5, 7, 10], [5]
    if column == "Any-shot & Any-way":
        return [5, 7, 10], [1, 5, 10]
    head = column.split()[-2:]  # "mini-ImageNet 5-way 5-shot" -> "5-way 5-shot"
    return [int(head[0].split("-")[0])], [int(head[1].split("-")[0])]


def use_batch_statistics(model: nn.Module) -> nn.Module:
    """Every BatchNorm of ``model`` normalises with the statistics of the batch at hand, in eval mode too."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = False, None, None, None
    return model


def build_learner(cfg: dict, ways: int) -> nn.Module:
    """The model of a row, untrained (``ways``: MAML's head size)."""
    from methods.backbones import Conv4, ConvNet
    from methods.hyper_representation import HyperRepresentation
    from methods.matchingnet import MatchingNet
    from methods.protonet import ProtoNet
    from methods.relationnet import RelationNet

    channels, size = IMAGES[cfg["dataset"]]
    base, filters = cfg["base"], cfg["filters"]
    if base == "protonet":
        model = ProtoNet(Conv4(channels, filters, pool=True))
    elif base == "matchingnet":
        # with full context embeddings: the variant the cited 43.56 / 55.31 are (methods/matchingnet.py); one read step [choice]
        backbone = Conv4(channels, filters, pool=True)
        with torch.no_grad():
            dim = backbone.eval()(torch.zeros(1, channels, size, size)).shape[1]  # eval: the probe must not move BN statistics
        backbone.train()
        model = MatchingNet(backbone, fce=cfg["fce"], dim=dim)
    elif base == "relationnet":
        # Sung et al.: padded relation convs on 28x28 Omniglot, unpadded on 84x84 (methods/relationnet.py)
        model = RelationNet(channels, size, filters, 8, relation_padding=1 if size == 28 else 0)
    elif base == "maml":
        from benchmarks.anchors.finn2017_table1 import maml_task_loss

        # MAML on mini-ImageNet (Finn et al. sec. 5.2 and cbfinn/maml): 32 filters, max-pooling, offset-only BN, N(0, 1) head
        net = ConvNet(channels, ways, cfg["maml_filters"], pool=True, features="flatten", image_size=size, bn_scale=False,
                      head_init="normal")
        model = MAML(net, maml_task_loss(cfg["train_shots"][0]), cfg["maml_inner_lr"], cfg["maml_inner_steps"],
                     test_steps=cfg["maml_test_steps"], frozen=tuple(f"norms.{i}.bias" for i in range(4)))
    elif base == "hyperrepr":
        # Franceschi et al. sec. 4: four blocks of 32 filters; logistic ground models from zero, learned step size
        model = HyperRepresentation(Conv4(channels, cfg["hyperrepr_filters"], pool=True), steps=cfg["ground_steps"],
                                    eta=cfg["ground_eta"])
    else:
        raise KeyError(base)
    if base in BATCH_STATISTICS:
        use_batch_statistics(model)
    if cfg["wrapper"] == "l2g":
        return L2G(model, cfg["inner_lr"], loss=cfg.get("l2g_loss", "mean"))
    if cfg["wrapper"] == "maml":
        return MAMLMetric(model, cfg["inner_lr"])
    return model


def episode_accuracy(model: nn.Module, episode: Episode) -> float:
    """Query accuracy (fraction) of one episode; MAML adapts batched tasks ``(T, n, C, H, W)`` and scores by loss, so it is
    given a batch of one and its predictions are compared."""
    if isinstance(model, MAML):
        batch = Episode.stack([episode])
        return float((model.predict(batch).argmax(-1) == batch.query_y).float().mean())
    return float(model.score(episode)[0])


class FewShotMetricTable(Benchmark):
    """A table (or figure) whose cells train metric learners on image episodes: set ``dataset`` and the protocol dicts."""

    metric = "accuracy %"
    higher_is_better = True
    dataset = "mini_imagenet"
    #: overrides of the protocol, whole benchmark / per scale
    protocol: dict = {}
    scale_overrides: dict[str, dict] = {}
    #: training seeds per cell (L2G: 5 runs); 1 = scores per test episode
    runs = 5
    #: ``(row, column)`` pairs the table prints "-" for: not run
    absent: tuple[tuple[str, str], ...] = ()
    #: rows shown from the paper as cited baselines, never trained
    cited_rows: tuple[str, ...] = ()

    #: smoke scale runs each row only in the column named here, if any (CI time: l2g-table1's 30 smoke cells took 320 s),
    #: the costly rows in the small columns; a test holds every row to one runnable column and every column to some
    #: row, but those named in ``smoke_uncovered_columns``
    smoke_column: dict[str, str] = {}
    smoke_uncovered_columns: tuple[str, ...] = ()

    def cells(self, variants: list[str] | None = None, scale: str | None = None) -> list[Cell]:
        cells = [c for c in super().cells(variants, scale) if (c.row, c.column) not in self.absent]
        if scale == "smoke" and self.smoke_column:
            cells = [c for c in cells if self.smoke_column.get(c.row) == c.column]
        return cells

    @property
    def requires_data(self) -> str:  # type: ignore[override]
        return self.dataset

    def data_available(self) -> bool:
        if self.dataset == "omniglot":
            return super().data_available()
        from metarepro.data.miniimagenet import mini_imagenet_dir
        from metarepro.data.tieredimagenet import tiered_imagenet_dir

        try:
            folder = mini_imagenet_dir() if self.dataset == "mini_imagenet" else tiered_imagenet_dir()
        except DataError:  # absent: the loaders raise with what to do; here it is only a "no"
            return False
        return folder.is_dir() and any(folder.iterdir())

    def trivial_score(self, cell: Cell, scale: str) -> float:
        """Chance accuracy of the column's episodes (the mean over its settings), %."""
        ways, _ = parse_setting(cell.column)
        return float(np.mean([100.0 / w for w in ways]))

    # -- configuration ---------------------------------------------------------
    def config(self, cell: Cell, scale: str) -> dict:
        base, wrapper = row_method(cell.row)
        ways, shots = parse_setting(cell.column)
        iterations, decay = SCHEDULES[base]
        cfg = {"benchmark": self.id, "row": cell.row, "column": cell.column, "scale": scale, "dataset": self.dataset, "data": "real",
               "base": base, "wrapper": wrapper, "train_ways": ways, "train_shots": shots, "test_ways": ways, "test_shots": shots,
               "queries": QUERIES, "first_task": None, "iterations": iterations, "lr": 1e-3, "decay_every": decay,
               "tasks_per_update": 5 if wrapper else 1, "inner_lr": 1e-2, "filters": 64, "runs": self.runs,
               "test_episodes": 600, "val_every": 2000, "val_episodes": 300, "train_seed": cell.seed, "val_seed": 1, "test_seed": 2019,
               # MAML on mini-ImageNet (Finn et al. sec. 5.2): 32 filters, 5 steps of 0.01, 10 at test, meta-batch 4 / 2
               "maml_filters": 32, "maml_inner_lr": 0.01, "maml_inner_steps": 5, "maml_test_steps": 10,
               # Hyper-Representation (Franceschi et al. sec. 4; FAR-HO example): 32 filters, eta from 0.1, meta-batch 4
               "hyperrepr_filters": 32, "ground_steps": 5, "ground_eta": 0.1}
        if base == "maml":
            cfg["tasks_per_update"] = 4 if shots == [1] else 2
        if base == "hyperrepr":
            # each set embedded in its own pass (methods/hyper_representation.py); records before this key embedded the
            # support and query sets in one pass, so with batch statistics the queries shaped the support features
            cfg.update(tasks_per_update=4, embedding="support and query in separate passes")
        if base == "matchingnet":
            cfg["fce"] = True
        cfg.update(self.protocol)
        overrides = dict(self.scale_overrides.get(scale, {}))
        cap, rn_iterations = overrides.pop("tasks_per_update_cap", None), overrides.pop("relationnet_iterations", None)
        cfg.update(overrides)
        if cap:
            cfg["tasks_per_update"] = min(cfg["tasks_per_update"], cap)
        if rn_iterations and base == "relationnet":
            cfg["iterations"] = rn_iterations
        return self.adjust_config(cfg, cell, scale)

    def adjust_config(self, cfg: dict, cell: Cell, scale: str) -> dict:
        """Hook for a benchmark's own settings (e.g. L2G Table 3's fixed first task)."""
        return cfg

    #: keys that only change how a trained model is tested (cells differing in them share the training)
    TEST_KEYS = ("benchmark", "row", "column", "test_ways", "test_shots", "test_episodes", "test_seed", "trained_by", "figure", "runs")

    def training_key(self, cell: Cell, scale: str) -> str:
        cfg = self.config(cell, scale)
        name = f"{cfg['wrapper'] + '-' if cfg['wrapper'] else ''}{cfg['base']}"
        setting = "any" if len(cfg["train_ways"]) > 1 or len(cfg["train_shots"]) > 1 else f"{cfg['train_ways'][0]}w{cfg['train_shots'][0]}s"
        return f"{name}-{setting}-" + config_hash({k: v for k, v in cfg.items() if k not in self.TEST_KEYS})

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        """Measured on this CPU (1 thread, Omniglot 28x28, 5-way 1-shot, 15 queries): ProtoNet / RelationNet ~70 ms per
        update, their L2G versions ~1.4 s (five second-order task pairs: x20); mini/tiered-ImageNet's 84x84 images are
        assumed 9x the pixels' cost. A net narrower than the paper's (smoke: 8 filters) costs the square of the ratio
        (l2g-table1's smoke cells: 41 s projected so, 52 s measured, 2026-12-07; 36 min without it). Records carry the
        measured times."""
        cfg = self.config(cell, scale)
        per_update_ms = (70.0 if cfg["dataset"] == "omniglot" else 630.0) * max(cfg["train_ways"]) / 5
        per_update_ms *= 20 if cfg["wrapper"] else (5 if cfg["base"] in ("maml", "hyperrepr") else 1) * cfg["tasks_per_update"]
        width = {"maml": "maml_filters", "hyperrepr": "hyperrepr_filters"}.get(cfg["base"], "filters")
        if scale != "paper" and width in cfg:
            per_update_ms *= (cfg[width] / self.config(cell, "paper")[width]) ** 2
        return cfg["runs"] * cfg["iterations"] * per_update_ms / 1000

    def deviations(self, cfg: dict) -> list[str]:
        return []

    # -- data --------------------------------------------------------------------
    def pools(self, cfg: dict, runs_dir: Path) -> dict:
        """``{"train", "val", "test"}`` pools of classes (fixtures at smoke scale)."""
        if cfg["dataset"] == "omniglot":
            return omniglot_pools(cfg, runs_dir)
        fixture = cfg["data"] == "fixture"
        root = Path(runs_dir) / f"fixture-{cfg['dataset']}" if fixture else None
        if cfg["dataset"] == "mini_imagenet":
            from metarepro.data.fixtures import make_mini_imagenet
            from metarepro.data.miniimagenet import mini_imagenet_pool

            if fixture and not (root / "mini_imagenet").exists():
                make_mini_imagenet(root, splits={"train": 20, "val": 10, "test": 10}, per_class=12, formats=("pickle",))
            return {s: mini_imagenet_pool(s, root, log=lambda *_: None) for s in ("train", "val", "test")}
        from metarepro.data.fixtures import make_tiered_imagenet
        from metarepro.data.tieredimagenet import tiered_imagenet_pool

        if fixture and not (root / "tiered_imagenet").exists():
            make_tiered_imagenet(root, splits={"train": (20, 4), "val": (10, 2), "test": (10, 2)}, per_class=(12, 14), formats=("npz",))
        return {s: tiered_imagenet_pool(s, root, log=lambda *_: None) for s in ("train", "val", "test")}

    def sample_setting(self, rng: np.random.Generator, ways: list[int], shots: list[int]) -> tuple[int, int]:
        return int(rng.choice(ways)), int(rng.choice(shots))

    def train_batch(self, pool, cfg: dict, run: int, index: int):
        """Update ``index`` of run ``run``: a TaskPairs (L2G), a stacked batch of episodes, or one episode."""
        rng = task_rng(1000 * cfg["train_seed"] + run, "train", index)
        if cfg["wrapper"] == "l2g":
            firsts, seconds, ci, cj = [], [], [], []
            for _ in range(cfg["tasks_per_update"]):
                second = self.sample_setting(rng, cfg["train_ways"], cfg["train_shots"])
                first = tuple(cfg["first_task"]) if cfg["first_task"] else second
                a, b, ca, cb = disjoint_pair(pool, rng, first, second, cfg["queries"])
                firsts.append(a), seconds.append(b), ci.append(ca), cj.append(cb)
            return TaskPairs(firsts, seconds, ci, cj)
        episodes = []
        setting = self.sample_setting(rng, cfg["train_ways"], cfg["train_shots"])  # one setting per update, so tasks stack
        for _ in range(cfg["tasks_per_update"]):
            episodes.append(pool.sample(rng, setting[0], setting[1], cfg["queries"]))
        return episodes[0] if len(episodes) == 1 else Episode.stack(episodes)

    def fixed_episodes(self, pool, cfg: dict, split: str, count: int) -> list[Episode]:
        """Deterministic evaluation episodes; with several settings, episode ``i`` uses setting ``i mod n`` (the paper
        "iteratively change[s]" them)."""
        settings = list(itertools.product(cfg["test_ways"], cfg["test_shots"]))
        seed = cfg["test_seed"] if split == "test" else cfg["val_seed"]
        return [pool.sample(task_rng(seed, split, i), *settings[i % len(settings)], cfg["queries"]) for i in range(count)]

    # -- training and test -----------------------------------------------------------
    def make_optimizer(self, model: nn.Module, cfg: dict) -> torch.optim.Optimizer:
        return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"])

    def lr_schedule(self, cfg: dict):
        """Adam's rate halved every ``decay_every`` updates (L2G sec. 4), or constant."""
        return step_decay(cfg["decay_every"]) if cfg["decay_every"] else None

    def accuracies(self, model: nn.Module, episodes: list[Episode], device: str) -> np.ndarray:
        """``(len(episodes),)`` query accuracies %, the model in eval mode (BatchNorm as the row's code has it)."""
        was = model.training
        model.eval()
        try:
            out = [100.0 * episode_accuracy(model, e.to(device)) for e in episodes]
        finally:
            model.train(was)
        return np.array(out)

    def train_run(self, cfg: dict, run: int, runs_dir: Path, progress: bool, device: str, position: int | None, desc: str):
        """Train (resumably) run ``run`` of ``cfg``; returns ``(model at its best validation checkpoint, TrainState, pools)``."""
        pools = self.pools(cfg, runs_dir)
        key = f"{cfg['_key']}-run{run}"
        torch.manual_seed(1000 * cfg["train_seed"] + run)
        model = build_learner(cfg, max(cfg["train_ways"])).to(device)
        optimizer = self.make_optimizer(model, cfg)
        val = [e.to(device) for e in self.fixed_episodes(pools["val"], cfg, "val", cfg["val_episodes"])]
        early = EarlyStopping(validate=lambda: float(100.0 - self.accuracies(model, val, device).mean()), every=cfg["val_every"],
                              patience=cfg["iterations"], best_path=Path(runs_dir) / key / "best.pt")
        schedule = self.lr_schedule(cfg)
        state = train(model, optimizer, lambda i: self.train_batch(pools["train"], cfg, run, i).to(device), cfg["iterations"],
                      Path(runs_dir) / key / "checkpoint.pt", key, checkpoint_every=cfg["val_every"],
                      log_every=max(1, cfg["val_every"] // 10), progress=progress, desc=desc,
                      meta={"benchmark": self.id, "scale": cfg["scale"], "run": run}, progress_position=position,
                      early_stopping=early, lr_schedule=schedule)
        if early.best_path.exists():
            model.load_state_dict(load_checkpoint(early.best_path, None)["model"])
        return model, state, pools

    def run_directories(self, cell: Cell, scale: str) -> list[str]:
        """One folder per run (``<key>-run<i>``), in the runs folder of the benchmark that trains it (``trained_by``)."""
        cfg = self.config(cell, scale)
        home = self.runs_home(Path(self.id) / scale, cfg)
        return [f"{home}/{self.training_key(cell, scale)}-run{run}" for run in range(cfg["runs"])]

    def runs_home(self, runs_dir: Path, cfg: dict | None = None) -> Path:
        """Where the trained models live: this benchmark's runs/ folder, or that of the benchmark named by the config's ``trained_by``
        (figures reuse the tables' trainings: same training key, same folder)."""
        runs_dir = Path(runs_dir)
        owner = (cfg or {}).get("trained_by")
        return runs_dir if owner is None else runs_dir.parent.parent / owner / runs_dir.name

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        self.check_cell(cell)
        cfg = {**self.config(cell, scale), "_key": self.training_key(cell, scale)}
        home = self.runs_home(runs_dir, cfg)
        per_run, curves, selections, train_s, test_s, iterations, extra = [], [], [], 0.0, 0.0, 0, {}
        for run in range(cfg["runs"]):
            model, state, pools = self.train_run(cfg, run, home, progress, device, progress_position,
                                                 f"{cell.label} run {run + 1}/{cfg['runs']} [{scale}]")
            started = now(device)
            scores, more = self.score_run(model, pools, cfg, device, state)
            per_run.append(scores)
            extra.update(more)
            test_s += now(device) - started
            train_s, iterations = train_s + state.elapsed_s, iterations + state.iteration
            curves.append(state.loss_curve)
            selections.append({"selected_iteration": state.best_iteration, "validation_error": state.best_value})
        scores = per_run[0] if cfg["runs"] == 1 else np.array([s.mean() for s in per_run])
        return CellResult(scores=scores, deviations=self.deviations(cfg), wall_time_s=train_s + test_s, train_wall_time_s=train_s,
                          extra={**extra, "checkpoint_key": cfg["_key"], "loss_curves": curves, "selection": selections,
                                 **({"episode_scores_per_run": [s.tolist() for s in per_run]} if cfg["runs"] > 1 else {}),
                                 "timing": {"ms_per_iteration": 1000 * train_s / max(iterations, 1), "iterations_timed": iterations,
                                            "test_s": test_s, "threads": torch.get_num_threads(), "device": device,
                                            "load_average_1min": os.getloadavg()[0]}},
                          score_unit="episode" if cfg["runs"] == 1 else "run")

    def score_run(self, model: nn.Module, pools: dict, cfg: dict, device: str, state=None) -> tuple[np.ndarray, dict]:
        """A trained run's per-test-episode scores and anything the record should keep (figures override this)."""
        return self.accuracies(model, self.fixed_episodes(pools["test"], cfg, "test", cfg["test_episodes"]), device), {}

    def evaluate_checkpoint(self, checkpoint: Path, cell: Cell, scale: str, device: str = "cpu") -> np.ndarray:
        from benchmarks.harness.paths import runs_dir

        cfg = self.config(cell, scale)
        model = build_learner(cfg, max(cfg["train_ways"]))
        model.load_state_dict(load_checkpoint(checkpoint, None)["model"])
        pools = self.pools(cfg, self.runs_home(runs_dir() / self.id / scale, cfg))  # fixture data lives with the runs
        return self.score_run(model.to(device), pools, cfg, device)[0]

    def protocol_model(self, cell: Cell, scale: str) -> nn.Module:
        cfg = self.config(cell, scale)
        return build_learner(cfg, max(cfg["train_ways"]))


def omniglot_pools(cfg: dict, runs_dir: Path) -> dict:
    """Vinyals' Omniglot split, each character at 0/90/180/270 degrees a class, 28x28 NEAREST (``snell2017-table1``'s data);
    the test split at ``cfg["test_rotations"]`` only where the configuration names them."""
    from metarepro.data.fixtures import make_omniglot
    from metarepro.data.omniglot import ClassPool, load_cache, read_split

    if cfg["data"] == "fixture":
        root = Path(runs_dir) / "fixture-omniglot"
        if not (root / "omniglot").exists():
            make_omniglot(root, alphabets=(("images_background", "Alpha", 16), ("images_evaluation", "Beta", 10)))
        cache = load_cache(root, 28, "nearest", log=lambda *_: None)
        chars, rot = cache.characters, (0, 90, 180, 270)
        splits = {"train": [(c, r) for c in chars[:10] for r in rot], "val": [(c, r) for c in chars[10:16] for r in rot],
                  "test": [(c, r) for c in chars[16:] for r in rot]}
    else:
        cache = load_cache(None, 28, "nearest")
        folder = data_root() / "splits" / "omniglot" / "vinyals"
        if not folder.exists():
            raise DataError(f"split files not found under {folder}: run `metarepro data fetch splits`")
        splits = {s: read_split(folder / f"{s}.txt") for s in ("train", "val", "test")}
    if "test_rotations" in cfg:  # a protocol that tests on characters at some rotations only (MAML++: unrotated)
        splits["test"] = [(c, r) for c, r in splits["test"] if r in cfg["test_rotations"]]
    return {s: ClassPool.from_split(cache, split, f"vinyals/{s}") for s, split in splits.items()}
