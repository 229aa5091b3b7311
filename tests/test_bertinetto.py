"""bertinetto2019-omniglot: R2-D2's own Omniglot protocol (bertinetto/r2d2), held to independent oracles."""

import numpy as np
import pytest
import torch

from benchmarks.anchors import bertinetto2019_omniglot as B
from benchmarks.families.fewshot_metric import omniglot_pools
from metarepro.data.omniglot import DRAWERS
from metarepro.episodes import Episode, task_rng
from methods.head_classifier import HeadClassifier, head_accuracies_from_embeddings
from methods.r2d2_encoder import R2D2Encoder
from methods.ridge_head import RidgeHead


@pytest.fixture(scope="module")
def pools(tmp_path_factory):
    return omniglot_pools({"data": "fixture"}, tmp_path_factory.mktemp("r2d2"))


def small_model(seed=0):
    torch.manual_seed(seed)
    return HeadClassifier(R2D2Encoder(1, (8, 8, 8, 8), form="r2d2", drop=0.0), RidgeHead(form="r2d2"), joint_pass=True)


def test_learning_rate_halves_every_20_epochs_as_pytorch_0_3_steps_it_at_each_epoch_start():
    """Oracle: PyTorch 0.3's scheduler (the version the authors' ``environment.yml`` pins), written out: the constructor
    calls ``step(last_epoch + 1)`` and then resets ``last_epoch`` to -1, and ``train.py`` calls ``step()`` before each
    epoch's updates, so epoch ``e`` runs at ``lr * gamma ** (e // step_size)``."""
    from metarepro.trainer import step_decay

    cfg = B.PROTOCOL
    per_epoch = cfg["episodes_per_epoch"]
    schedule = step_decay(cfg["decay_every_epochs"] * per_epoch, cfg["lr_decay"])

    class Torch03StepLR:
        def __init__(self, base, step_size, gamma, last_epoch=-1):
            self.base, self.step_size, self.gamma = base, step_size, gamma
            self.step(last_epoch + 1)
            self.last_epoch = last_epoch

        def step(self, epoch=None):
            self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
            self.lr = self.base * self.gamma ** (self.last_epoch // self.step_size)

    sched = Torch03StepLR(cfg["lr"], cfg["decay_every_epochs"], cfg["lr_decay"])
    for epoch in range(70):
        sched.step()  # on_start_epoch
        for i in (0, per_epoch // 2, per_epoch - 1):
            assert cfg["lr"] * schedule(epoch * per_epoch + i) == pytest.approx(sched.lr, rel=1e-12), (epoch, i)
    assert schedule(19 * per_epoch) == 1.0 and schedule(20 * per_epoch) == 0.5


def test_training_episodes_draw_one_to_nine_shots_of_sixty_classes_ten_images_each(pools):
    cfg = {**B.PROTOCOL, "train_way": 10, "batch_size": 100}  # the fixture's 40 training classes
    shots = set()
    for i in range(60):
        e = B.train_episode(pools["train"], cfg, i)
        n_support, n_query = e.support_x.shape[1], e.query_x.shape[1]
        shot = n_support // 10
        shots.add(shot)
        assert n_support == 10 * shot and n_query == 10 * (10 - shot) and e.support_x.shape[2:] == (1, 28, 28)
        assert torch.equal(e.support_y[0], torch.arange(10).repeat_interleave(shot))
        assert torch.equal(e.query_y[0], torch.arange(10).repeat_interleave(10 - shot))
    assert shots == set(range(1, 10))  # range(1, 10): never 10 shots, which would leave no query
    # the pixels: ink 1 and H/W transposed, from the stored images (paper 255)
    rng_episode = B.train_episode(pools["train"], cfg, 0)
    rng = task_rng(cfg["train_seed"], "train", 0)
    shot = int(rng.integers(1, 10))
    classes, drawings = pools["train"].sample_indices(rng, 10, shot, 10 - shot)
    stored = pools["train"].images(classes, drawings)  # (10, 10, 28, 28) uint8
    expected = 1.0 - stored[:, :shot].astype(np.float64) / 255.0
    np.testing.assert_allclose(rng_episode.support_x[0, :, 0].numpy().reshape(10, shot, 28, 28), expected.transpose(0, 1, 3, 2),
                               atol=1e-7)


def test_scores_from_features_embedded_once_equal_scoring_each_episode_from_its_images(pools):
    """Oracle: the model's own per-episode path (images through the eval-mode encoder, supports and queries together)."""
    model = small_model()
    model.eval()
    pool = pools["test"]
    features = B.embed_split(model.backbone, pool, "cpu")
    assert features.shape == (len(pool), DRAWERS, 8 * 4 + 8 * 4)
    for way, shot in ((5, 1), (20, 5)):
        episodes = B.episode_indices(pool, 3, "test", 7, way, shot)
        fast = head_accuracies_from_embeddings(model.head, features, episodes, shot, chunk=3)
        slow = []
        for classes, drawings in episodes:
            x = B.ink_one_transposed(torch.from_numpy(pool.images(classes, drawings)).float().div_(255.0)).unsqueeze(2)
            labels = torch.arange(way).unsqueeze(1)
            episode = Episode(x[:, :shot].reshape(-1, 1, 28, 28), labels.expand(way, shot).reshape(-1),
                              x[:, shot:].reshape(-1, 1, 28, 28), labels.expand(way, DRAWERS - shot).reshape(-1))
            slow.append(float(model.score(Episode.stack([episode]))[0]))
        np.testing.assert_allclose(fast.numpy(), slow, atol=1e-6)
        assert len(set(slow)) > 1  # episodes that differ: the check can fail


def test_joint_pass_embeds_supports_and_queries_in_one_batch():
    """R2-D2's code passes ``cat(xs, xq)`` through the encoder once (BatchNorm's training statistics span both);
    MetaOptNet's passes them apart. Checked by the batches the encoder sees, and the wiring by slicing one pass by hand."""
    torch.manual_seed(0)
    s, q, y = torch.rand(1, 5, 1, 28, 28), torch.rand(1, 10, 1, 28, 28), torch.arange(5).unsqueeze(0)
    episode = Episode(s, y, q, torch.arange(5).repeat_interleave(2).unsqueeze(0))
    model = small_model()
    model.train()
    batches = []
    model.backbone.register_forward_hook(lambda module, inputs, output: batches.append(inputs[0].shape[0]))
    logits = model.episode_logits(episode)
    assert batches == [15]
    torch.manual_seed(1)  # no dropout here; the seed only shows nothing random enters
    features = model.backbone(torch.cat([s, q], 1).flatten(0, 1)).unsqueeze(0)
    np.testing.assert_allclose(logits.detach().numpy(), model.head(features[:, :5], y, features[:, 5:], 5).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    model.joint_pass = False
    batches.clear()
    model.episode_logits(episode)
    assert batches == [5, 10]


def test_compare_says_the_table_is_not_transcribed_rather_than_a_figure(isolated_results):
    from benchmarks.harness.cli import records_table, summary_table

    assert records_table(B.BENCHMARK).startswith("No published numbers (not transcribed: the paper's Omniglot table")
    line = next(r for r in summary_table().splitlines() if "`bertinetto2019-omniglot`" in r)
    assert "none (not transcribed)" in line


def test_each_shot_is_scored_with_its_own_kept_model_and_rescoring_it_gives_the_record(isolated_results):
    """What pinning checks: the scored checkpoint (best-1shot.pt for 1-shot cells, best-5shot.pt for 5-shot ones)
    re-scored alone gives the run's per-episode scores; the two cells of a training read different files."""
    from benchmarks.harness.base import Cell
    from benchmarks.harness.paths import runs_dir

    bench = B.BENCHMARK
    scores = {}
    for column in ("5-way 1-shot", "5-way 5-shot"):
        cell = Cell("R2-D2 (64C)", column)
        result = bench.run_cell(cell, "smoke", runs_dir() / bench.id / "smoke", progress=False)
        checkpoint = bench.scored_checkpoint(cell, "smoke")
        assert checkpoint.name == f"best-{column[-6]}shot.pt" and checkpoint.exists()
        np.testing.assert_array_equal(bench.evaluate_checkpoint(checkpoint, cell, "smoke"), result.scores)
        assert result.extra["selection"]["validation_accuracy"] > 0
        scores[column] = result
    one, five = scores.values()
    assert one.extra["checkpoint_key"] == five.extra["checkpoint_key"]  # one training serves both shots


def test_the_two_shots_pin_their_own_kept_models_under_different_files():
    """One training keeps a best-by-1-shot and a best-by-5-shot model; each cell pins its own (under the training key
    alone the second cell's pinning overwrote the first's file)."""
    from benchmarks.anchors.bertinetto2019_omniglot import BENCHMARK as B
    from benchmarks.harness.base import Cell

    one, five = (B.chosen_training(Cell("R2-D2 (64C)", f"5-way {s}-shot"), "paper", {}) for s in (1, 5))
    assert one[0].name == "best-1shot.pt" and five[0].name == "best-5shot.pt"
    assert one[1] != five[1] and one[1].endswith("-1shot") and five[1].endswith("-5shot")


def test_a_record_whose_pinned_file_was_overwritten_pins_nothing(tmp_path, monkeypatch):
    """Oracle: hashlib on the bytes written; a file changed after the record named it no longer counts as pinned, an
    absent one still does."""
    import hashlib

    from benchmarks.harness.runner import _pins_its_file

    monkeypatch.setenv("METAREPRO_RESULTS", str(tmp_path))
    (tmp_path / "a.pt").write_bytes(b"weights")
    record = {"checkpoint": {"path": "a.pt", "sha256": hashlib.sha256(b"weights").hexdigest()}}
    assert _pins_its_file(record)
    (tmp_path / "a.pt").write_bytes(b"other weights")
    assert not _pins_its_file(record)
    (tmp_path / "a.pt").unlink()
    assert _pins_its_file(record)  # absent, not overwritten: a large file waits for `dvc pull`
    assert not _pins_its_file({"checkpoint": {"pinned": False, "why": "x"}})
