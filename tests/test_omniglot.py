"""Omniglot cache, splits and episode sampler on a generated fixture in the real layout."""

import os
import random
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from metarepro.data import DataError
from metarepro.data.fixtures import make_omniglot
from metarepro.data.omniglot import ClassPool, build_cache, decode, load_cache, read_split, seeded_character_split
from metarepro.episodes import task_rng

from .conftest import SHARED


@pytest.fixture(scope="module")
def omniglot_root(tmp_path_factory):
    return make_omniglot(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def cache(omniglot_root):
    return load_cache(omniglot_root, size=28, resample="lanczos", log=lambda *_: None)


def test_cache_holds_every_image_as_pil_decodes_it(omniglot_root, cache):
    assert cache.characters == ("Alpha/character01", "Alpha/character02", "Alpha/character03",
                                "Beta/character01", "Beta/character02")
    assert cache.images.shape == (5 * 20, 28, 28) and cache.images.dtype == np.uint8
    png = omniglot_root / "omniglot" / "images_evaluation" / "Beta" / "character02" / "0005_07.png"
    with Image.open(png) as im:
        expected = np.asarray(im.convert("L").resize((28, 28), resample=Image.Resampling.LANCZOS))
    assert np.array_equal(cache.images[4 * 20 + 6], expected)


def test_nearest_cache_equals_pils_resize_of_the_one_bit_png_with_any_filter(omniglot_root):
    """MAML's LANCZOS resize of a 1-bit PNG is NEAREST in effect: the default cache reproduces it."""
    png = omniglot_root / "omniglot" / "images_background" / "Alpha" / "character01" / "0001_02.png"
    with Image.open(png) as im:
        assert im.mode == "1"
        as_maml_does = np.asarray(im.resize((28, 28), resample=Image.Resampling.LANCZOS).convert("L"))
    assert set(np.unique(as_maml_does)) <= {0, 255}
    assert np.array_equal(decode(png, 28, "nearest"), as_maml_does)


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_with_nearest_rotating_before_resizing_equals_rotating_the_cached_image(omniglot_root, quarter_turns):
    """Snell et al.'s order (rotate 105x105, then resize) matches the cache's for NEAREST."""
    for png in sorted((omniglot_root / "omniglot").glob("*/*/*/*_0[1-3].png")):
        with Image.open(png) as im:
            rotated_first = np.asarray(im.convert("L").rotate(90 * quarter_turns).resize((28, 28), Image.Resampling.NEAREST))
        assert np.array_equal(rotated_first, np.rot90(decode(png, 28, "nearest"), k=quarter_turns)), png


def test_split_file_forms(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("Alpha/character01/rot000\nAlpha/character02/rot270\n\nBeta/character01\n")
    assert read_split(path) == [("Alpha/character01", 0), ("Alpha/character02", 270), ("Beta/character01", 0)]
    path.write_text("Alpha\n")
    with pytest.raises(DataError, match=r"s\.txt:1"):
        read_split(path)


def test_episode_sampling(cache):
    split = [(c, r) for c in cache.characters for r in (0, 90, 180, 270)]
    pool = ClassPool.from_split(cache, split, "fixture")
    episode = pool.sample(task_rng(0, "train", 3), ways=5, shots=2, queries=3)
    assert episode.support_x.shape == (10, 1, 28, 28) and episode.query_x.shape == (15, 1, 28, 28)
    assert episode.support_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert episode.support_x.dtype == torch.float32 and 0 <= episode.support_x.min() and episode.support_x.max() <= 1
    again = pool.sample(task_rng(0, "train", 3), ways=5, shots=2, queries=3)
    assert torch.equal(episode.query_x, again.query_x)
    other = pool.sample(task_rng(0, "train", 4), ways=5, shots=2, queries=3)
    assert not torch.equal(episode.query_x, other.query_x)

    # every image of a class is one of that class's 20 drawings, rotated as the split says
    images = np.rint(torch.cat([episode.support_x, episode.query_x]).squeeze(1).numpy() * 255).astype(np.uint8)
    labels = torch.cat([episode.support_y, episode.query_y]).numpy()
    for label in range(5):
        owners = set()
        for img in images[labels == label]:
            hits = {(ci, k) for ci in range(len(split)) for k in [pool.rotations[ci]]
                    if any(np.array_equal(img, np.rot90(cache.images[pool.rows[ci] + d], k=k)) for d in range(20))}
            owners |= {split[ci] for ci, _ in hits}
        assert len({o[0] for o in owners}) == 1, f"class {label} mixes characters: {owners}"


def test_bad_requests_are_clear_errors(cache, tmp_path):
    with pytest.raises(DataError, match="absent from the data.*Gamma/character01"):
        ClassPool.from_split(cache, [("Gamma/character01", 0)], "vinyals/test.txt")
    pool = ClassPool.from_split(cache, [(c, 0) for c in cache.characters], "fixture")
    with pytest.raises(DataError, match="6-way episodes need 6 classes; this split has 5"):
        pool.sample(task_rng(0, "train", 0), ways=6, shots=1, queries=1)
    with pytest.raises(DataError, match="exceed the 20 drawings"):
        pool.sample(task_rng(0, "train", 0), ways=2, shots=15, queries=6)
    with pytest.raises(DataError, match="Omniglot not found.*metarepro data fetch omniglot"):
        build_cache(tmp_path / "empty", log=lambda *_: None)


def test_corrupt_image_names_the_file(tmp_path):
    root = make_omniglot(tmp_path, alphabets=(("images_background", "Alpha", 1), ("images_evaluation", "Beta", 1)))
    bad = root / "omniglot" / "images_background" / "Alpha" / "character01" / "0001_04.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="0001_04.png: not a readable image"):
        build_cache(root, log=lambda *_: None)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_seeded_character_split_is_the_reference_codes_listing_and_shuffle(tmp_path, seed):
    """Oracle: supervised-reptile's own steps on a real folder (both sets merged as its fetch_data.sh does; os.listdir
    sorted per folder, non-character entries skipped; the module-level random.seed / random.shuffle)."""
    merged = tmp_path / "omniglot"
    # "Alpha-x" sorts before "Alpha/..." as a whole name but after "Alpha" per folder; "alpha_lower" after "Beta"
    counts = {"Alpha": 3, "Alpha-x": 2, "alpha_lower": 4, "Beta": 2, "N_Ko": 11, "Ge_ez": 1}
    for alphabet, n in counts.items():
        for k in range(1, n + 1):
            (merged / alphabet / f"character{k:02d}").mkdir(parents=True)
    (merged / "README").write_text("not an alphabet")
    (merged / "Beta" / "notes.txt").write_text("not a character")
    listing = [f"{a}/{c}" for a in sorted(os.listdir(merged)) if (merged / a).is_dir()
               for c in sorted(os.listdir(merged / a)) if c.startswith("character")]
    saved = random.getstate()
    try:
        random.seed(seed)
        random.shuffle(listing)
    finally:
        random.setstate(saved)
    names = sorted(listing, key=lambda c: c[::-1])  # any order in
    assert seeded_character_split(names, seed, 16) == (listing[:16], listing[16:])
    for bad in (23, 0):
        with pytest.raises(DataError, match=f"cannot keep {bad} training characters of 23"):
            seeded_character_split(names, seed, bad)


@pytest.mark.skipif(not (SHARED / "data" / "omniglot").exists(), reason="no local Omniglot mirror")
def test_reptile_code_split_of_the_real_characters_tests_on_alphabets_it_trained_on():
    """The facts nichol2018-table1's finding quotes: the code's 423 test characters (seed 0) come from 49 alphabets, all
    of them also among its 1200 training characters; 117 of them are in the Vinyals test file (13 alphabets, 12 never
    trained on)."""
    names = set()
    for part in ("images_background", "images_evaluation"):
        with zipfile.ZipFile(SHARED / "data" / "omniglot" / f"{part}.zip") as z:
            names |= {"/".join(n.split("/")[1:3]) for n in z.namelist() if n.endswith(".png")}
    assert len(names) == 1623
    train, test = seeded_character_split(sorted(names), 0, 1200)
    assert len(test) == 423 and not set(train) & set(test)
    test_alphabets = {c.split("/")[0] for c in test}
    assert len(test_alphabets) == 49 and test_alphabets <= {c.split("/")[0] for c in train}
    folder = SHARED / "data" / "splits" / "omniglot" / "vinyals"
    vinyals_test = {c for c, _ in read_split(folder / "test.txt")}
    vinyals_test_alphabets = {c.split("/")[0] for c in vinyals_test}
    vinyals_train_alphabets = {c.split("/")[0] for c, _ in read_split(folder / "trainval.txt")}
    assert len(vinyals_test) == 423 and len(vinyals_test_alphabets) == 13 and len(vinyals_test_alphabets - vinyals_train_alphabets) == 12
    assert len(vinyals_test & set(test)) == 117
