"""Prototypical Networks on Omniglot: Snell, Swersky & Zemel, NeurIPS 2017, Table 1.

Anchor table (not one of the five seed papers): it proves the image pipeline
and ProtoNet on the real data these machines have. Published accuracies (%)
without intervals: 98.8 / 99.7 (5-way 1/5-shot), 96.0 / 98.9 (20-way 1/5-shot).

Protocol, from the authors' code (``docs/protocols/omniglot.md`` gives each
source: jakesnell/prototypical-networks, ``scripts/train/few_shot/*``,
``protonets/data/omniglot.py``):

* Vinyals split (1028 train / 172 val / 423 test characters, x4 rotations as
  classes); 28x28 images resized with NEAREST (what Pillow does to the 1-bit
  PNGs), rotated, inverted (``1 - x``) and transposed, as the code does.
* Conv-4, 64 filters, max-pool; squared Euclidean distance.
* One model per shot; training episodes 60-way, k-shot, 5 queries per class,
  100 episodes per epoch; Adam 1e-3, halved every 20 epochs.
* Early stopping on the validation *loss* (100 fixed 5-way k-shot episodes of
  15 queries per epoch), patience 200 epochs, at most 10,000 epochs; then
  "trainval" mode: a fresh model trained on train+val for ``best_epoch - 1 +
  patience`` epochs (the code takes the 0-based argmin and adds patience),
  last epoch kept.
* Test: 1000 episodes per cell, 15 queries per class, accuracy mean and
  1.96 std / sqrt(n). Every test image is embedded once per evaluation.

This machine cannot give the full schedule (0.3-0.6 s per 60-way episode on
2 cores): the ``paper`` scale caps the epochs and the patience, and every
record states the caps as deviations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.harness.base import Benchmark, Cell, CellResult, way_shot
from benchmarks.harness.paths import runs_dir
from metarepro.data.fixtures import make_omniglot
from metarepro.data.omniglot import DRAWERS, ClassPool, load_cache, read_split
from metarepro.data.omniglot import ink_one_transposed as as_reference_input
from metarepro.data.store import DataError, data_root
from metarepro.episodes import Episode, task_rng
from metarepro.precision import autocast
from metarepro.results import config_hash
from metarepro.timing import now
from metarepro.trainer import EarlyStopping, load_checkpoint, step_decay, train
from methods.backbones import Conv4
from methods.protonet import ProtoNet, episode_accuracies_from_embeddings

PROTOCOL = {
    "split": "vinyals",
    "image_size": 28,
    "resample": "nearest",
    "train_way": 60,
    "train_query": 5,
    "episodes_per_epoch": 100,
    "lr": 1e-3,
    "decay_every_epochs": 20,
    "val_way": 5,
    "val_query": 15,
    "val_episodes": 100,
    "patience_epochs": 200,
    "max_epochs": 10_000,
    "test_episodes": 1000,
    "test_query": 15,
    "filters": 64,
    "train_seed": 1234,
    "val_seed": 1,
    "test_seed": 2017,
    "data": "omniglot",
}
#: what this machine forces at each scale; paper-scale caps become deviations
SCALE_OVERRIDES = {
    # 75 epochs per phase: 15,000 episodes at most for both phases, ~1.5 h per 1-shot model here (2 threads)
    "paper": {"max_epochs": 75, "patience_epochs": 20},
    "quick": {"max_epochs": 10, "patience_epochs": 3, "test_episodes": 600},
    "smoke": {"max_epochs": 2, "patience_epochs": 1, "train_way": 10, "val_episodes": 5, "test_episodes": 20,
              "episodes_per_epoch": 5, "filters": 8, "data": "fixture"},
}
#: ms per training episode, 60-way, 2 threads, idle machine, measured with this code; for estimates only
MS_PER_EPISODE = {1: 360.0, 5: 700.0}


def _episode(pool: ClassPool, rng: np.random.Generator, way: int, shot: int, query: int) -> Episode:
    e = pool.sample(rng, way, shot, query)
    return Episode(as_reference_input(e.support_x), e.support_y, as_reference_input(e.query_x), e.query_y)


class Snell2017Table1(Benchmark):
    id = "snell2017-table1"
    title = "Prototypical Networks on Omniglot (Snell et al. 2017, Table 1), accuracy %"
    paper = ""  # not among ../shared/papers; numbers from REFERENCE.md
    metric = "accuracy %"
    higher_is_better = True
    rows = ("Prototypical Networks",)
    columns = ("5-way 1-shot", "5-way 5-shot", "20-way 1-shot", "20-way 5-shot")
    requires_data = "omniglot"
    _ONE_SHOT_FINDING = (
        "the 1-shot model (paper scale, 75-epoch cap per phase, run of 2026-11-22) gives 98.42 +/- 0.18 (5-way) and 94.78 +/- 0.17 "
        "(20-way) against 98.8 and 96.0; validation loss had flattened (best 0.0438 at epoch 62, 0.047 at the cap, learning rate "
        "already 1/8 of its start), so the cap is an unlikely cause of 1.2 points. An independent PyTorch re-implementation "
        "(orobix/Prototypical-Networks-for-Few-shot-Learning-PyTorch, README at ed7a2341, 100 epochs, no train+val retraining) "
        "reports 98.5 and 95.1 for these cells, and REFERENCE.md lists a ProtoNet re-run at 98.4 and 94.9: the published 1-shot "
        "numbers sit above what the described procedure gives in PyTorch. The bf16 variant of the same model agrees with fp32 on "
        "the same episodes (paired difference -0.07 +/- 0.10 points at 20-way). Nor is it the BatchNorm initialisation: the "
        "bn-uniform variant (scales from U[0, 1) as the authors' PyTorch 0.4 drew them; run of 2026-12-07, phase 1 stopped at "
        "epoch 46 with its best validation loss 0.0448 at epoch 25, phase 2 44 epochs) gives 98.49 and 94.78, paired against "
        "the main protocol on the same episodes +0.07 +/- 0.11 and -0.00 +/- 0.10. Snell et al. print no interval, so "
        "'within' counts the printed number's rounding (+/- 0.05) as its half-width.")
    _FIVE_SHOT_FINDING = (
        "the 5-shot model (paper scale, run of 2026-11-30, 105 min on one thread) gives 99.60 +/- 0.06 (5-way) and 98.48 +/- 0.06 "
        "(20-way) against 99.7 and 98.9, the same as independent PyTorch reproductions: orobix/Prototypical-Networks-for-Few-shot-"
        "Learning-PyTorch (README at ed7a2341, 100 epochs) reports 99.6 and 98.6, REFERENCE.md's ProtoNet re-run 99.6 and 98.6. "
        "With this suite's patience of 20 epochs (the code's: 200) phase 1 stopped at epoch 62 (best validation loss 0.0080 at "
        "epoch 41) and phase 2 trained 60 epochs, where the code would train 240; the bf16 variant's separately trained 5-shot "
        "model, capped at 75 epochs without stopping early, gives 99.63 and 98.57: longer training moved the 20-way cell by "
        "0.09 of the 0.42 gap, so the shortened schedule does not explain it. Snell et al. print no interval, so 'within' "
        "counts the printed number's rounding (+/- 0.05) as its half-width; the 5-way cell is within that way (overlap rule), "
        "outside the difference test.")
    # 5-way 5-shot (99.60 +/- 0.06 against 99.7) is within since issue #14 counts the printed number's rounding (+/- 0.05)
    # under the overlap rule; the difference test (sqrt(0.055^2 + 0.05^2) = 0.075 < 0.10) keeps it outside, as `compare` shows
    known_deviations = {("Prototypical Networks", "5-way 1-shot"): _ONE_SHOT_FINDING,
                        ("Prototypical Networks", "20-way 1-shot"): _ONE_SHOT_FINDING,
                        ("Prototypical Networks", "20-way 5-shot"): _FIVE_SHOT_FINDING}

    variants = {"bf16": "training, validation and test embeddings under bf16 autocast (issue #4's speed option; "
                        "weights and Adam state stay float32); everything else as the main protocol",
                "bn-uniform": "BatchNorm scales initialised uniform in [0, 1), as the authors' code started them: it sets "
                              "none, and ran on PyTorch 0.4 (README: 'tested ... PyTorch 0.4'), whose BatchNorm drew them "
                              "so (1.2 and later start at 1, the main protocol); a test of whether the 1-shot gap comes "
                              "from the initialisation (it does not: the 1-shot finding)"}

    def config(self, cell: Cell, scale: str) -> dict:
        way, shot = way_shot(cell.column)
        precision = {"precision": "bf16"} if cell.variant == "bf16" else {}  # fp32 configs keep their hash
        bn = {"bn_weight_init": "uniform"} if cell.variant == "bn-uniform" else {}  # and so do the main protocol's
        return {"benchmark": self.id, "method": cell.row, "test_way": way, "shot": shot, "scale": scale,
                **PROTOCOL, **SCALE_OVERRIDES[scale], **precision, **bn}

    def backbone(self, cfg: dict) -> Conv4:
        return Conv4(1, cfg["filters"], pool=True, bn_weight_init=cfg.get("bn_weight_init", "ones"))

    def training_key(self, cell: Cell, scale: str) -> str:
        """One model per shot serves both the 5-way and the 20-way cell; the hash covers its training config."""
        cfg = self.config(cell, scale)
        training = {k: v for k, v in cfg.items() if k not in ("test_way", "test_episodes", "test_query", "test_seed")}
        return f"protonet-{cfg['shot']}shot-{config_hash(training)}"

    def estimated_seconds(self, cell: Cell, scale: str) -> float:
        cfg = self.config(cell, scale)
        per_epoch = cfg["episodes_per_epoch"] * MS_PER_EPISODE[cfg["shot"] if cfg["shot"] in MS_PER_EPISODE else 5] / 1000
        return 2 * cfg["max_epochs"] * per_epoch * (cfg["train_way"] / 60)  # two phases, at most

    def deviations(self, cfg: dict, phase1_epochs: int, stopped_early: bool) -> list[str]:
        out = []
        if cfg["max_epochs"] < PROTOCOL["max_epochs"]:
            out.append(f"at most {cfg['max_epochs']} epochs per phase (code: {PROTOCOL['max_epochs']})")
        if cfg["patience_epochs"] < PROTOCOL["patience_epochs"]:
            out.append(f"early-stopping patience {cfg['patience_epochs']} epochs (code: {PROTOCOL['patience_epochs']})")
        if not stopped_early:
            out.append(f"phase 1 reached its {phase1_epochs}-epoch cap before early stopping triggered")
        return out

    def trivial_score(self, cell: Cell, scale: str) -> float:
        """Chance accuracy, %."""
        return 100.0 / way_shot(cell.column)[0]

    # -- data ----------------------------------------------------------------
    def pools(self, cfg: dict, runs_dir: Path) -> dict[str, ClassPool]:
        if cfg["data"] == "fixture":
            root = Path(runs_dir) / "fixture-data"
            if not (root / "omniglot").exists():
                make_omniglot(root, alphabets=(("images_background", "Alpha", 14), ("images_evaluation", "Beta", 8)))
            cache = load_cache(root, cfg["image_size"], cfg["resample"], log=lambda *_: None)
            chars = cache.characters
            rot = (0, 90, 180, 270)
            splits = {"train": [(c, r) for c in chars[:10] for r in rot], "val": [(c, r) for c in chars[10:14] for r in rot],
                      "test": [(c, r) for c in chars[14:] for r in rot]}
            splits["trainval"] = splits["train"] + splits["val"]
        else:
            cache = load_cache(None, cfg["image_size"], cfg["resample"])
            folder = data_root() / "splits" / "omniglot" / cfg["split"]
            if not folder.exists():
                raise DataError(f"split files not found under {folder}: run `metarepro data fetch splits`")
            splits = {s: read_split(folder / f"{s}.txt") for s in ("train", "val", "test", "trainval")}
        return {s: ClassPool.from_split(cache, split, f"{cfg['split']}/{s}") for s, split in splits.items()}

    def dataset_digest(self) -> str | None:
        from metarepro.data.sources import OMNIGLOT

        return ",".join(f.content_sha256 for f in OMNIGLOT.files)

    # -- training ------------------------------------------------------------
    def _train_phase(self, cfg: dict, pool: ClassPool, runs_dir: Path, key: str, phase: str, epochs: int, progress: bool,
                     device: str, position: int | None, early: EarlyStopping | None = None, holder: dict | None = None):
        """One training run from a fresh, seeded model; ``holder["model"]`` exposes it to a validation closure."""
        torch.manual_seed(cfg["train_seed"])
        model = ProtoNet(self.backbone(cfg)).to(device)
        if holder is not None:
            holder["model"] = model
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        per_epoch = cfg["episodes_per_epoch"]

        def batch(i: int) -> Episode:
            return _episode(pool, task_rng(cfg["train_seed"], phase, i), cfg["train_way"], cfg["shot"],
                            cfg["train_query"]).to(device)

        state = train(model, optimizer, batch, epochs * per_epoch, Path(runs_dir) / key / f"{phase}.pt", f"{key}-{phase}",
                      checkpoint_every=per_epoch, log_every=per_epoch, progress=progress,
                      desc=f"ProtoNet {cfg['shot']}-shot [{phase}]", early_stopping=early,
                      lr_schedule=step_decay(cfg["decay_every_epochs"] * per_epoch), progress_position=position,
                      meta={"benchmark": self.id, "phase": phase}, precision=cfg.get("precision", "fp32"))
        return model, state

    def trained_model(self, cfg: dict, runs_dir: Path, key: str, progress: bool = True, device: str = "cpu",
                      position: int | None = None):
        """Phase 1 with early stopping on validation loss, then the "trainval" retraining."""
        pools = self.pools(cfg, runs_dir)
        val = [_episode(pools["val"], task_rng(cfg["val_seed"], "val", i), cfg["val_way"], cfg["shot"], cfg["val_query"]).to(device)
               for i in range(cfg["val_episodes"])]
        holder: dict = {}

        def val_loss() -> float:
            model = holder["model"]
            return float(np.mean([F.cross_entropy(model.episode_logits(e), e.query_y).item() for e in val]))

        early = EarlyStopping(validate=val_loss, every=cfg["episodes_per_epoch"], patience=cfg["patience_epochs"],
                              best_path=Path(runs_dir) / key / "train-best.pt")
        _, state1 = self._train_phase(cfg, pools["train"], runs_dir, key, "train", cfg["max_epochs"], progress, device, position,
                                      early, holder)
        best_epoch = state1.best_iteration // cfg["episodes_per_epoch"]  # 1-based
        # the code trains trainval for argmin (0-based, = best_epoch - 1) + patience epochs, from scratch
        epochs2 = max(1, min(best_epoch - 1 + cfg["patience_epochs"], cfg["max_epochs"]))
        model, state2 = self._train_phase(cfg, pools["trainval"], runs_dir, key, "trainval", epochs2, progress, device, position)
        info = {"phase1_epochs": state1.iteration // cfg["episodes_per_epoch"], "best_epoch": best_epoch,
                "stopped_early": state1.stopped_early, "phase2_epochs": epochs2, "val_curve": state1.val_curve,
                "loss_curve": state2.loss_curve, "train_wall_time_s": state1.elapsed_s + state2.elapsed_s}
        return model, pools, info

    # -- evaluation ----------------------------------------------------------
    def test_scores(self, model: ProtoNet, pool: ClassPool, cfg: dict, device: str = "cpu") -> np.ndarray:
        """Accuracy (%) of each fixed test episode, every test image embedded once."""
        model.eval()
        images = as_reference_input(torch.from_numpy(pool.all_images()).float().div_(255.0)).unsqueeze(2)  # (C, 20, 1, H, W)
        with torch.no_grad(), autocast(device, cfg.get("precision", "fp32")):
            flat = images.flatten(0, 1)
            embeddings = torch.cat([model.backbone(flat[i : i + 2048].to(device)).float().cpu() for i in range(0, len(flat), 2048)])
        embeddings = embeddings.view(len(pool), DRAWERS, -1)
        episodes = [pool.sample_indices(task_rng(cfg["test_seed"], "test", i), cfg["test_way"], cfg["shot"], cfg["test_query"])
                    for i in range(cfg["test_episodes"])]
        return 100.0 * episode_accuracies_from_embeddings(embeddings, episodes, cfg["shot"]).double().numpy()

    def run_cell(self, cell: Cell, scale: str, runs_dir: Path, engine: str = "func", progress: bool = True,
                 device: str = "cpu", progress_position: int | None = None) -> CellResult:
        self.check_cell(cell)
        cfg = self.config(cell, scale)
        key = self.training_key(cell, scale)
        model, pools, info = self.trained_model(cfg, runs_dir, key, progress, device, progress_position)
        started = now(device)
        scores = self.test_scores(model, pools["test"], cfg, device)
        return CellResult(
            scores=scores,
            deviations=self.deviations(cfg, info["phase1_epochs"], info["stopped_early"]) if scale == "paper" else [],
            wall_time_s=info["train_wall_time_s"] + now(device) - started,
            train_wall_time_s=info["train_wall_time_s"],
            extra={"training": {k: v for k, v in info.items() if k != "train_wall_time_s"}, "checkpoint_key": key},
        )

    def evaluate_checkpoint(self, checkpoint: Path, cell: Cell, scale: str, device: str = "cpu") -> np.ndarray:
        self.check_cell(cell)
        cfg = self.config(cell, scale)
        payload = load_checkpoint(checkpoint, f"{self.training_key(cell, scale)}-trainval")
        model = ProtoNet(self.backbone(cfg))
        model.load_state_dict(payload["model"])
        pools = self.pools(cfg, runs_dir() / self.id / scale)  # fixture data lives with the runs
        return self.test_scores(model.to(device), pools["test"], cfg, device)

    def scored_checkpoint(self, cell: Cell, scale: str) -> Path:
        """The "trainval" phase's last checkpoint: the model the cell is scored with."""
        return runs_dir() / self.id / scale / self.training_key(cell, scale) / "trainval.pt"

    def protocol_model(self, cell: Cell, scale: str) -> ProtoNet:
        return ProtoNet(self.backbone(self.config(cell, scale)))


BENCHMARK = Snell2017Table1()
