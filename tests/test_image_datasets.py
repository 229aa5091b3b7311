"""mini-ImageNet, tiered-ImageNet, CIFAR-FS and CUB loaders on fixtures generated in each real on-disk format.

The oracle is always an independent read of the fixture files (PIL, numpy, pickle with the
encoding the publishers' own readers use), never the loader's cache.
"""

import hashlib
import io
import json
import pickle
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from metarepro.data import DataError, fetch, verify
from metarepro.data import store as store_module
from metarepro.data.cifarfs import cifar_fs_pool, read_class_split
from metarepro.data.cifarfs import load_cache as cifar_cache
from metarepro.data.cub import cub_pool
from metarepro.data.cub import load_cache as cub_cache
from metarepro.data.fixtures import make_cifar100, make_cub, make_mini_imagenet, make_tiered_imagenet, py2_pickle
from metarepro.data.miniimagenet import mini_imagenet_pool
from metarepro.data.sources import Dataset, SourceFile
from metarepro.data.tieredimagenet import tiered_imagenet_pool
from metarepro.episodes import task_rng

from .conftest import SHARED

SPLITS = SHARED / "data" / "splits"
quiet = dict(log=lambda *_: None)


def episode_pixels(episode) -> tuple[np.ndarray, np.ndarray]:
    """``(n, H, W, C)`` uint8 images and ``(n,)`` labels of support then query."""
    x = torch.cat([episode.support_x, episode.query_x])
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1
    return np.rint(x.numpy() * 255).astype(np.uint8).transpose(0, 2, 3, 1), torch.cat([episode.support_y, episode.query_y]).numpy()


def assert_drawn_from(episode, reference: dict[str, np.ndarray], ways: int, shots: int, queries: int) -> None:
    """Every image is exactly one reference image; one class per label, distinct classes, no image twice."""
    assert episode.support_y.tolist() == [w for w in range(ways) for _ in range(shots)]
    assert episode.query_y.tolist() == [w for w in range(ways) for _ in range(queries)]
    images, labels = episode_pixels(episode)
    owner, used = {}, set()
    for img, label in zip(images, labels):
        hits = {(c, i) for c, ref in reference.items() for i in range(len(ref)) if np.array_equal(ref[i], img)}
        assert len({c for c, _ in hits}) == 1, f"image of label {label} matches {hits or 'no source image'}"
        hit = hits.pop()
        assert hit not in used, f"{hit} drawn twice"
        used.add(hit)
        assert owner.setdefault(int(label), hit[0]) == hit[0], f"label {label} mixes classes"
    assert len(set(owner.values())) == ways


def assert_rows_are(pool, rng_args, decode) -> None:
    """The images of ``sample`` are the files the cache says they came from, decoded independently by ``decode(item)``."""
    classes, items = pool.sample_indices(task_rng(*rng_args), 3, 2, 2)
    episode = pool.sample(task_rng(*rng_args), 3, 2, 2)
    images, _ = episode_pixels(episode)
    rows = pool.rows(classes, items)  # (3, 4): support then query per class
    order = np.concatenate([rows[:, :2].reshape(-1), rows[:, 2:].reshape(-1)])
    for img, row in zip(images, order):
        assert np.array_equal(img, decode(pool.cache.items[row])), pool.cache.items[row]


# -- mini-ImageNet ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mini_root(tmp_path_factory):
    return make_mini_imagenet(tmp_path_factory.mktemp("data"))


def _ravi_rows(root, split):
    lines = (root / "splits" / "mini_imagenet" / "ravi" / f"{split}.csv").read_text().splitlines()
    assert lines[0] == "filename,label"
    return [line.split(",") for line in lines[1:] if line]


def test_mini_imagenet_csv_layout(mini_root):
    pool = mini_imagenet_pool("train", mini_root, source="csv", **quiet)
    rows = _ravi_rows(mini_root, "train")
    wnids = sorted({w for _, w in rows})
    assert pool.class_names == tuple(wnids) and pool.counts.tolist() == [5] * 4
    assert pool.cache.images.shape == (20, 84, 84, 3) and pool.cache.images.dtype == np.uint8
    assert isinstance(pool.cache.images, np.memmap) and pool.cache.meta["resample"] == "lanczos"
    assert pool.cache.by_class().shape == (4, 5, 84, 84, 3)

    def lanczos(name):
        with Image.open(mini_root / "mini_imagenet" / name) as im:
            assert im.size == (100, 80)
            return np.asarray(im.convert("RGB").resize((84, 84), Image.Resampling.LANCZOS))

    reference = {w: np.stack([lanczos(f"images/{f}") for f, c in rows if c == w]) for w in wnids}
    for i in range(3):
        assert_drawn_from(pool.sample(task_rng(0, "train", i), 3, 2, 2), reference, 3, 2, 2)
    assert_rows_are(pool, (1, "train", 0), lanczos)
    assert pool.all_images().shape == (4, 5, 3, 84, 84)


def test_mini_imagenet_pickle_layout_agrees_with_csv(mini_root):
    source = mini_root / "mini_imagenet" / "mini-imagenet-cache-val.pkl"
    with open(source, "rb") as f:  # as renmengye/few-shot-ssl-public reads it
        data = pickle.load(f, encoding="bytes")
    images, class_dict = data[b"image_data"], {k.decode(): v for k, v in data[b"class_dict"].items()}
    assert images.shape == (15, 84, 84, 3)
    pool = mini_imagenet_pool("val", mini_root, source="pickle", **quiet)
    assert pool.cache.meta["format"] == "pickle" and pool.class_names == tuple(sorted(class_dict))
    reference = {w: images[idx] for w, idx in class_dict.items()}
    assert_drawn_from(pool.sample(task_rng(0, "val", 0), 3, 1, 4), reference, 3, 1, 4)
    assert_rows_are(pool, (0, "val", 5), lambda item: images[int(item.split("[")[1][:-1])])
    # the fixture's pickle holds the csv layout's pixels: both layouts give the very same episodes
    from_csv = mini_imagenet_pool("val", mini_root, source="csv", **quiet)
    for i in range(3):
        a, b = pool.sample(task_rng(2, "val", i), 3, 2, 3), from_csv.sample(task_rng(2, "val", i), 3, 2, 3)
        assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)


def test_mini_imagenet_pickle_with_val_and_test_swapped_is_named(tmp_path):
    root = make_mini_imagenet(tmp_path, splits={"train": 2, "val": 2, "test": 2}, per_class=2)
    folder = root / "mini_imagenet"
    (folder / "mini-imagenet-cache-val.pkl").rename(folder / "swap.pkl")
    (folder / "mini-imagenet-cache-test.pkl").rename(folder / "mini-imagenet-cache-val.pkl")
    with pytest.raises(DataError, match=r"ravi/val\.csv names class 'n\d+'.*holds exactly the classes of .*test\.csv.*issue #3"):
        mini_imagenet_pool("val", root, source="pickle", **quiet)


def test_mini_imagenet_errors(tmp_path):
    with pytest.raises(DataError, match=r"mini-ImageNet not found: .*mini_imagenet does not exist.*images/.*mini-imagenet-cache"):
        mini_imagenet_pool("train", tmp_path / "nothing", **quiet)
    root = make_mini_imagenet(tmp_path / "a", splits={"train": 2, "val": 2}, per_class=2)
    csv_file = root / "splits" / "mini_imagenet" / "ravi" / "train.csv"
    good = csv_file.read_text()
    csv_file.write_text(good.replace("filename,label", "filename,class"))
    with pytest.raises(DataError, match=r"train\.csv:1: header \['filename', 'class'\], expected 'filename,label'"):
        mini_imagenet_pool("train", root, source="csv", **quiet)
    csv_file.write_text(good + "n0999999900000001.jpg,n09999999\n")
    with pytest.raises(DataError, match=r"n0999999900000001\.jpg not found, named by .*train\.csv"):
        mini_imagenet_pool("train", root, source="csv", **quiet)
    csv_file.write_text(good)
    victim = root / "mini_imagenet" / "images" / _ravi_rows(root, "train")[1][0]
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(DataError, match=rf"{victim.name}: not a readable image"):
        mini_imagenet_pool("train", root, source="csv", **quiet)
    bad = root / "mini_imagenet" / "mini-imagenet-cache-val.pkl"
    bad.write_bytes(bad.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"mini-imagenet-cache-val\.pkl: not a readable pickle"):
        mini_imagenet_pool("val", root, source="pickle", **quiet)
    py2_pickle({"image_data": np.zeros((4, 80, 80, 3), np.uint8), "class_dict": {"n01": [0, 1], "n02": [2, 3]}}, bad)
    with pytest.raises(DataError, match=r"'image_data' is uint8 \(4, 80, 80, 3\); expected uint8 \(N, 84, 84, 3\)"):
        mini_imagenet_pool("val", root, source="pickle", **quiet)
    py2_pickle({"image_data": np.zeros((4, 84, 84, 3), np.uint8), "class_dict": {"n01": [0, 1], "n02": [2, 9]}}, bad)
    with pytest.raises(DataError, match=r"'class_dict' names row 9, but 'image_data' has 4 rows"):
        mini_imagenet_pool("val", root, source="pickle", **quiet)


# -- tiered-ImageNet -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiered_root(tmp_path_factory):
    return make_tiered_imagenet(tmp_path_factory.mktemp("data"), interleave=True)


def _tiered_reference(root, split):
    """Class name -> (n, 84, 84, 3) RGB, read as Ren et al.'s code and torchmeta read the files."""
    folder = root / "tiered_imagenet"
    with open(folder / f"{split}_labels.pkl", "rb") as f:
        labels = pickle.load(f, encoding="bytes")
    with open(folder / f"{split}_images_png.pkl", "rb") as f:
        encoded = pickle.load(f, encoding="bytes")
    specific, names = labels[b"label_specific"], [n.decode() for n in labels[b"label_specific_str"]]
    png = np.stack([np.asarray(Image.open(io.BytesIO(np.squeeze(e).tobytes())).convert("RGB")) for e in encoded])
    with np.load(folder / f"{split}_images.npz") as z:
        npz = z["images"]
    assert np.array_equal(npz[..., ::-1], png), "the fixture's npz is the PNGs in BGR order, as cv2.imdecode gives"
    return {name: png[specific == c] for c, name in enumerate(names)}, png


@pytest.mark.parametrize("source", ["png", "npz"])
def test_tiered_imagenet_layouts(tiered_root, source):
    reference, png = _tiered_reference(tiered_root, "train")
    pool = tiered_imagenet_pool("train", tiered_root, source=source, **quiet)
    assert pool.class_names == tuple(reference) and pool.counts.tolist() == [len(v) for v in reference.values()]
    assert pool.cache.images.shape == (sum(len(v) for v in reference.values()), 84, 84, 3)
    assert pool.cache.images.dtype == np.uint8 and len(set(pool.counts.tolist())) > 1  # classes differ in size
    for i in range(3):
        assert_drawn_from(pool.sample(task_rng(0, "train", i), 3, 2, 2), reference, 3, 2, 2)
    assert_rows_are(pool, (0, "train", 7), lambda item: png[int(item.split("[")[1][:-1])])
    with pytest.raises(ValueError, match="use flat_images"):
        pool.all_images()
    flat, offsets = pool.flat_images()
    assert flat.shape == (len(png), 3, 84, 84) and offsets.tolist() == np.concatenate([[0], np.cumsum(pool.counts)]).tolist()
    classes, items = pool.sample_indices(task_rng(0, "test", 0), 2, 1, 1)
    assert np.array_equal(flat[pool.rows_in_flat(classes, items)], pool.images(classes, items))


def test_tiered_imagenet_errors(tmp_path):
    with pytest.raises(DataError, match=r"tiered-ImageNet not found: .*tiered_imagenet does not exist.*tiered-imagenet\.tar"):
        tiered_imagenet_pool("train", tmp_path / "nothing", **quiet)
    root = make_tiered_imagenet(tmp_path / "a", splits={"train": (3, 2)}, per_class=(2, 3))
    folder = root / "tiered_imagenet"
    with pytest.raises(DataError, match=r"val_labels\.pkl not found"):
        tiered_imagenet_pool("val", root, **quiet)
    with pytest.raises(DataError, match=r"tiered_imagenet/train .* names class 'no such synset', absent from .*train_images_png\.pkl"):
        tiered_imagenet_pool("train", root, source="png", classes=["no such synset"], **quiet)

    encoded = pickle.load(open(folder / "train_images_png.pkl", "rb"), encoding="bytes")
    py2_pickle(encoded[:-1], folder / "train_images_png.pkl")
    with pytest.raises(DataError, match=rf"train_images_png\.pkl: {len(encoded) - 1} items, but train_labels\.pkl labels {len(encoded)}"):
        tiered_imagenet_pool("train", root, source="png", **quiet)
    garbage = np.frombuffer(b"\x89PNG\r\n\x1a\n garbage", np.uint8).reshape(-1, 1)
    py2_pickle([*encoded[:2], garbage, *encoded[3:]], folder / "train_images_png.pkl")
    with pytest.raises(DataError, match=r"train_images_png\.pkl\[2\]: not a readable image"):
        tiered_imagenet_pool("train", root, source="png", **quiet)

    np.savez(folder / "train_images.npz", images=np.zeros((len(encoded), 80, 80, 3), np.uint8))
    with pytest.raises(DataError, match=rf"train_images\.npz: 'images' is uint8 \({len(encoded)}, 80, 80, 3\); expected uint8"):
        tiered_imagenet_pool("train", root, source="npz", **quiet)
    (folder / "train_images.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match=r"train_images\.npz: not a readable npz"):
        tiered_imagenet_pool("train", root, source="npz", **quiet)
    py2_pickle({"label_specific": np.array([0, 0, 1]), "label_specific_str": ["a"]}, folder / "train_labels.pkl")
    with pytest.raises(DataError, match=r"train_labels\.pkl: 'label_specific' runs from 0 to 1, but 'label_specific_str' names 1"):
        tiered_imagenet_pool("train", root, source="png", **quiet)


# -- CIFAR-FS --------------------------------------------------------------------------------------------------------

NAMES = [f"class_{i:02d}" for i in range(10)]


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return make_cifar100(tmp_path_factory.mktemp("data"), NAMES, splits={"train": NAMES[:5], "val": NAMES[5:7], "test": NAMES[7:]})


def test_cifar_fs(cifar_root):
    folder = cifar_root / "cifar100" / "cifar-100-python"
    parts = {}
    for part in ("train", "test"):
        with open(folder / part, "rb") as f:  # as the CIFAR page reads it
            d = pickle.load(f, encoding="bytes")
        parts[part] = (d[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.array(d[b"fine_labels"]))
    with open(folder / "meta", "rb") as f:
        assert [n.decode() for n in pickle.load(f, encoding="bytes")[b"fine_label_names"]] == NAMES
    reference = {n: np.concatenate([parts[p][0][parts[p][1] == c] for p in ("train", "test")]) for c, n in enumerate(NAMES)}

    cache = cifar_cache(cifar_root, **quiet)
    assert cache.classes == tuple(NAMES) and cache.by_class().shape == (10, 6, 32, 32, 3)
    for c, n in enumerate(NAMES):  # train images first, then test, each in file order
        assert np.array_equal(cache.by_class()[c], reference[n])
    pool = cifar_fs_pool("train", cifar_root, **quiet)
    assert pool.class_names == tuple(NAMES[:5]) and pool.counts.tolist() == [6] * 5
    for i in range(3):
        assert_drawn_from(pool.sample(task_rng(0, "train", i), 4, 1, 3), {n: reference[n] for n in NAMES[:5]}, 4, 1, 3)
    assert_rows_are(pool, (0, "train", 9), lambda item: parts[item.split("[")[0]][0][int(item.split("[")[1][:-1])])
    assert pool.all_images().shape == (5, 6, 3, 32, 32)
    json_split = cifar_root / "fs.json"
    json_split.write_text(json.dumps([["superclass_00", n] for n in NAMES[7:]]))
    assert cifar_fs_pool("test", cifar_root, split_file=json_split, **quiet).class_names == tuple(NAMES[7:])


@pytest.mark.skipif(not (SPLITS / "cifar_fs").exists(), reason=f"no split files under {SPLITS}")
def test_cifar_fs_real_bertinetto_and_torchmeta_splits(tmp_path):
    split = {s: read_class_split(SPLITS / "cifar_fs" / "bertinetto" / f"{s}.txt") for s in ("train", "val", "test")}
    names = sorted(n for s in split.values() for n in s)
    assert len(names) == len(set(names)) == 100
    root = make_cifar100(tmp_path, names, per_class=(1, 1))
    for s, n in (("train", 64), ("val", 16), ("test", 20)):
        pool = cifar_fs_pool(s, root, split_file=SPLITS / "cifar_fs" / "bertinetto" / f"{s}.txt", **quiet)
        other = cifar_fs_pool(s, root, split_file=SPLITS / "cifar_fs" / "torchmeta" / f"{s}.json", **quiet)
        assert len(pool) == n and set(pool.class_names) == set(other.class_names)


def test_cifar_fs_errors(tmp_path, cifar_root):
    with pytest.raises(DataError, match=r"CIFAR-100 not found: .*cifar-100-python/train is missing.*metarepro data fetch cifar100"):
        cifar_fs_pool("train", tmp_path / "nothing", **quiet)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{NAMES[0]}\nunicorn\n")
    with pytest.raises(DataError, match=r"CIFAR-FS split file .*wrong\.txt names class 'unicorn', absent from"):
        cifar_fs_pool("train", cifar_root, split_file=wrong, **quiet)
    with pytest.raises(DataError, match=r"nope\.txt not found: run `metarepro data fetch splits`"):
        cifar_fs_pool("train", cifar_root, split_file=tmp_path / "nope.txt", **quiet)
    root = make_cifar100(tmp_path / "a", NAMES[:3], per_class=(2, 1))
    part = root / "cifar100" / "cifar-100-python" / "train"
    data = pickle.load(open(part, "rb"), encoding="latin1")
    py2_pickle({**data, "data": data["data"][:, :3071]}, part)
    with pytest.raises(DataError, match=r"cifar-100-python/train: 'data' is uint8 \(6, 3071\); expected uint8 \(N, 3072\)"):
        cifar_cache(root, **quiet)
    part.write_bytes(b"\x80\x02}q\x01(U\x04data")
    with pytest.raises(DataError, match=r"cifar-100-python/train: not a readable pickle"):
        cifar_cache(root, **quiet)


# -- CUB -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cub_root(tmp_path_factory):
    return make_cub(tmp_path_factory.mktemp("data"), per_class=(4, 7))


def test_cub(cub_root):
    top = cub_root / "cub" / "CUB_200_2011"
    listed = [line.split()[1] for line in (top / "images.txt").read_text().splitlines()]
    classes = sorted({p.split("/")[0] for p in listed})

    def bilinear(item, side=84, crop=None):
        with Image.open(top / item) as im:
            out = im.convert("RGB").resize((crop or side, crop or side), Image.Resampling.BILINEAR)
        return np.asarray(out if crop is None else out.crop((6, 6, 90, 90)))

    reference = {c: np.stack([bilinear(f"images/{p}") for p in sorted(listed) if p.startswith(c + "/")]) for c in classes}
    cache = cub_cache(cub_root, **quiet)
    assert cache.classes == tuple(classes) and cache.counts.tolist() == [len(v) for v in reference.values()]
    assert cache.image_shape == (84, 84, 3)
    with pytest.raises(ValueError, match="classes hold"):
        cache.by_class()
    train = json.loads((cub_root / "splits" / "cub" / "torchmeta" / "train.json").read_text())
    pool = cub_pool("train", cub_root, **quiet)
    assert pool.class_names == tuple(train) and len(pool) == 6
    for i in range(3):
        assert_drawn_from(pool.sample(task_rng(0, "train", i), 3, 2, 1), reference, 3, 2, 1)
    assert_rows_are(pool, (0, "train", 3), bilinear)
    # Chen et al.'s test transform: Resize([96, 96]) then CenterCrop(84)
    cropped = cub_pool("val", cub_root, crop_from=96, **quiet)
    assert cropped.cache.meta["crop_from"] == 96
    assert_rows_are(cropped, (0, "val", 0), lambda item: bilinear(item, crop=96))


@pytest.mark.skipif(not (SPLITS / "cub").exists(), reason=f"no split files under {SPLITS}")
def test_cub_real_split_files(tmp_path):
    files = {s: SPLITS / "cub" / "torchmeta" / f"{s}.json" for s in ("train", "val", "test")}
    names = sorted(n for f in files.values() for n in json.loads(f.read_text()))
    assert len(names) == len(set(names)) == 200
    root = make_cub(tmp_path, names, per_class=(1, 1), split_files=False)
    lengths = [len(cub_pool(s, root, split_file=f, size=16, **quiet)) for s, f in files.items()]
    assert lengths == [100, 50, 50]


def test_cub_errors(tmp_path, cub_root):
    with pytest.raises(DataError, match=r"CUB-200-2011 not found: .*CUB_200_2011/images does not exist.*metarepro data fetch cub"):
        cub_pool("train", tmp_path / "nothing", **quiet)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(["001.Fixture_bird_B", "201.Dodo"]))
    with pytest.raises(DataError, match=r"CUB split file .*wrong\.json names class '201\.Dodo', absent from"):
        cub_pool("train", cub_root, split_file=wrong, **quiet)
    root = make_cub(tmp_path / "a", per_class=(2, 2))
    victim = sorted((root / "cub" / "CUB_200_2011" / "images").glob("*/*.jpg"))[3]
    victim.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    with pytest.raises(DataError, match=rf"{victim.name}: not a readable image"):
        cub_cache(root, **quiet)


# -- the pool --------------------------------------------------------------------------------------------------------


def test_pool_requests_beyond_the_split_are_value_errors(cub_root, cifar_root):
    pool = cifar_fs_pool("val", cifar_root, **quiet)
    with pytest.raises(ValueError, match=r"3-way episodes need 3 classes; CIFAR-FS split file .*val\.txt has 2"):
        pool.sample(task_rng(0, "val", 0), 3, 1, 1)
    with pytest.raises(ValueError, match=r"5 shots \+ 2 queries need 7 images per class; class 'class_05' of .* has 6"):
        pool.sample(task_rng(0, "val", 0), 2, 5, 2)
    ragged = cub_pool("train", cub_root, **quiet)
    smallest = int(ragged.counts.min())
    with pytest.raises(ValueError, match=rf"need {smallest + 1} images per class; class '.*' of CUB split file .* has {smallest}"):
        ragged.sample(task_rng(0, "train", 0), 2, smallest, 1)


def test_sampling_reads_the_cache_and_never_decodes(cub_root, mini_root, monkeypatch):
    pools = [cub_pool("train", cub_root, **quiet), mini_imagenet_pool("test", mini_root, source="csv", **quiet)]

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded while sampling")

    monkeypatch.setattr(Image, "open", no_decoding)
    for pool in pools:
        first = pool.sample(task_rng(3, "train", 0), 3, 1, 2)
        again = pool.sample(task_rng(3, "train", 0), 3, 1, 2)
        other = pool.sample(task_rng(3, "train", 1), 3, 1, 2)
        assert torch.equal(first.query_x, again.query_x) and not torch.equal(first.query_x, other.query_x)
    # and a loaded cache is reused without decoding
    assert cub_pool("train", cub_root, **quiet).cache.path == pools[0].cache.path


def test_a_cache_whose_sources_changed_is_rebuilt(tmp_path):
    root = make_mini_imagenet(tmp_path, splits={"train": 3}, per_class=2, formats=("csv",))
    assert len(mini_imagenet_pool("train", root, **quiet)) == 3
    csv_file = root / "splits" / "mini_imagenet" / "ravi" / "train.csv"
    lines = csv_file.read_text().splitlines()
    csv_file.write_text("\n".join(lines[:5]) + "\n")  # header + 2 classes
    messages = []
    pool = mini_imagenet_pool("train", root, log=messages.append)
    assert len(pool) == 2 and "changed since it was built" in messages[0]


# -- fetching tar archives and the manual datasets -------------------------------------------------------------------


def _tgz(path, top, files):
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def test_tar_archive_fetch_records_the_content_digest_then_verify_checks_it(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    archive = _tgz(mirror / "toy" / "toy-python.tar.gz", "toy-python", {"meta": b"m", "train": b"t" * 100})
    file = SourceFile(url="https://example.org/toy-python.tar.gz", mirror_path="toy/toy-python.tar.gz", target="toy/toy-python",
                      digests=(f"md5:{hashlib.md5(archive.read_bytes()).hexdigest()}",), archive=True,
                      note="content digest recorded on first fetch")
    monkeypatch.setitem(store_module.DATASETS, "toy", Dataset("toy", "a toy", (file,)))
    root = tmp_path / "data"
    messages = []
    fetch("toy", root=root, mirror=mirror, log=messages.append)
    assert (root / "toy" / "toy-python" / "train").read_bytes() == b"t" * 100
    recorded = json.loads((root / store_module.MANIFEST).read_text())["toy/toy-python"]["content_sha256"]
    assert recorded == store_module.tree_digest(root / "toy" / "toy-python") and "recorded on first fetch" in messages[-1]
    assert verify(root, log=lambda *_: None) == []
    (root / "toy" / "toy-python" / "meta").write_bytes(b"changed")
    assert "recorded on first fetch" in verify(root, log=lambda *_: None)[0]

    broken = tmp_path / "broken"
    (broken / "toy").mkdir(parents=True)
    (broken / "toy" / "toy-python.tar.gz").write_bytes(archive.read_bytes()[:60])
    cut = SourceFile(**{**file.__dict__, "digests": (f"md5:{hashlib.md5(archive.read_bytes()[:60]).hexdigest()}",)})
    monkeypatch.setitem(store_module.DATASETS, "toy", Dataset("toy", "a toy", (cut,)))
    shutil.rmtree(root)
    with pytest.raises(DataError, match=r"toy-python\.tar\.gz is not a readable tar archive"):
        fetch("toy", root=root, mirror=broken, log=lambda *_: None)
    assert not (root / "toy").exists()


def test_imagenet_derived_datasets_say_where_their_files_go(tmp_path):
    with pytest.raises(DataError, match=r"mini_imagenet cannot be fetched: .*<data root>/mini_imagenet/"):
        fetch("mini_imagenet", root=tmp_path, mirror=tmp_path)
    with pytest.raises(DataError, match=r"tiered_imagenet cannot be fetched: .*tiered-imagenet\.tar"):
        fetch("tiered_imagenet", root=tmp_path, mirror=tmp_path)


@pytest.mark.parametrize("module", ["cifarfs", "cub", "miniimagenet"])
def test_a_missing_split_file_says_how_to_fetch_it(tmp_path, module):
    import importlib

    loader = importlib.import_module(f"metarepro.data.{module}")
    reader = getattr(loader, "read_class_split", None) or loader.read_ravi_csv
    with pytest.raises(DataError, match=r"split file .*absent\.\w+ not found: run `metarepro data fetch splits`"):
        reader(tmp_path / "absent.json")
