"""Samplers: disjoint task pairs really share no class, any-way any-shot covers its choices, images match the pool."""

import numpy as np
import pytest

from metarepro.data.fixtures import make_omniglot
from metarepro.data.omniglot import ClassPool, load_cache
from metarepro.data.samplers import any_way_any_shot, disjoint_pair, sample_episode
from metarepro.episodes import task_rng


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = make_omniglot(tmp_path_factory.mktemp("o"), alphabets=(("images_background", "Alpha", 4), ("images_evaluation", "Beta", 2)))
    cache = load_cache(root, log=lambda *_: None)
    return ClassPool.from_split(cache, [(c, r) for c in cache.characters for r in (0, 90, 180, 270)], "all")  # 24 classes


def _class_of(pool, image: np.ndarray) -> set[int]:
    """Every pool class holding this exact image (an independent lookup through all images)."""
    every = pool.all_images()  # (classes, 20, H, W)
    return {c for c in range(len(pool)) if (every[c] == image).all(axis=(1, 2)).any()}


def test_disjoint_pairs_share_no_class_by_their_pixels(pool):
    for i in range(30):
        task_i, task_j, ci, cj = disjoint_pair(pool, task_rng(0, "train", i), (5, 1), (5, 1), queries=2)
        assert not set(ci) & set(cj)
        owners_i = set().union(*(_class_of(pool, (x[0].numpy() * 255).round().astype(np.uint8)) for x in task_i.support_x))
        owners_j = set().union(*(_class_of(pool, (x[0].numpy() * 255).round().astype(np.uint8)) for x in task_j.support_x))
        assert owners_i == set(ci) and owners_j == set(cj)  # the images are those of the claimed classes
        assert not owners_i & owners_j


def test_exclusion_is_enforced_and_too_many_ways_refused(pool):
    _, classes = sample_episode(pool, task_rng(1, "train", 0), 20, 1, 1, exclude=range(4))
    assert min(classes) >= 4
    with pytest.raises(ValueError, match="21-way"):
        sample_episode(pool, task_rng(1, "train", 0), 21, 1, 1, exclude=range(4))
    with pytest.raises(ValueError, match="images per class"):
        sample_episode(pool, task_rng(1, "train", 0), 5, 15, 6)


def test_any_way_any_shot_draws_every_choice_and_fixed_first_task(pool):
    seen = set()
    for i in range(60):
        t_i, t_j, ci, cj = disjoint_pair(pool, task_rng(2, "train", i), (5, 5), queries=1, second_ways_choices=[5, 7, 10],
                                         second_shots_choices=[1, 5, 10])
        assert len(t_i.support_y) == 25 and len(ci) == 5  # first task fixed 5-way 5-shot
        ways = len(cj)
        shots = len(t_j.support_y) // ways
        seen.add((ways, shots))
        assert not set(ci) & set(cj)
    assert {w for w, _ in seen} == {5, 7, 10} and {s for _, s in seen} == {1, 5, 10}
    e, _ = any_way_any_shot(pool, task_rng(3, "test", 0), [7], [10], 3)
    assert e.support_x.shape == (70, 1, 28, 28) and e.query_x.shape == (21, 1, 28, 28)


def test_samplers_work_on_rgb_image_pools(tmp_path):
    from metarepro.data.cifarfs import cifar_fs_pool
    from metarepro.data.fixtures import make_cifar100

    names = [f"class_{i:02d}" for i in range(12)]
    root = make_cifar100(tmp_path, names, splits={"train": names[:10], "val": names[10:11], "test": names[11:]})
    image_pool = cifar_fs_pool("train", root, log=lambda *_: None)
    every = image_pool.all_images()  # (10, 6, 3, 32, 32)
    task_i, task_j, ci, cj = disjoint_pair(image_pool, task_rng(4, "train", 0), (3, 2), (4, 1), queries=1)
    assert task_i.support_x.shape == (6, 3, 32, 32) and task_j.query_x.shape == (4, 3, 32, 32)
    assert not set(ci) & set(cj)
    for x, y in zip(task_j.support_x, task_j.support_y):
        pixels = (x.numpy() * 255).round().astype(np.uint8)
        assert (every[cj[int(y)]] == pixels).all(axis=(1, 2, 3)).any()
