"""mini-ImageNet (Vinyals et al. 2016; Ravi & Larochelle 2017 split): 100 classes x 600 images, 84x84 RGB.

Two on-disk layouts are read, each into its own uint8 cache (:mod:`metarepro.data.pool`):

``"csv"`` -- Ravi & Larochelle's release, under ``<data root>/mini_imagenet/``::

    images/<wnid><8 digits>.jpg      e.g. n0153282900000005.jpg, any size
    <data root>/splits/mini_imagenet/ravi/{train,val,test}.csv

  The csv files are twitter/meta-learning-lstm ``data/miniImagenet/{train,val,test}.csv``
  (``metarepro data fetch splits`` installs them): header ``filename,label``, one row per image,
  ``label`` the class wnid; 64 / 16 / 20 classes x 600 images. Images are converted to RGB and
  resized to 84x84 with LANCZOS by default: that is what cbfinn/maml
  ``data/miniImagenet/proc_images.py`` does (``im.resize((84, 84), resample=Image.LANCZOS)``,
  overwriting the JPEGs), and MAML, ALFA, L2G and the other MAML-family codes train on its output.
  Images already 84x84 (the usual case: a folder that went through that script) are taken as they
  are, whatever the filter.

``"pickle"`` -- ``mini-imagenet-cache-{train,val,test}.pkl`` in ``<data root>/mini_imagenet/``, as
  written by renmengye/few-shot-ssl-public ``fewshot/data/mini_imagenet.py`` (``_write_cache``,
  read back with ``pickle.load(f, encoding='bytes')``) and redistributed for learn2learn's
  ``MiniImagenet``: a pickled dict ``{"image_data": (N, 84, 84, 3) uint8 RGB, "class_dict":
  {wnid: [row, ...]}}``. That writer resized with ``scipy.misc.imresize`` (bilinear), so its pixels
  differ from the csv layout's; the cache records which layout it came from (``meta["format"]``).
  Its ``CSV_FILES`` maps ``"val"`` to Ravi's test.csv and ``"test"`` to val.csv (its issue #3): a
  pickle built with it has the two swapped. The loader therefore checks a pickle's classes against
  the Ravi csv of the same split when that file is present, and names the swap if it finds it.

Classes are sorted by wnid in both layouts, images keep their csv (or ``class_dict``) order, so
one split read from either layout gives the same classes and the same episodes for a seed.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from metarepro.data.pool import ImageCache, ImagePool, as_str, cache_path, decode_rgb, load_or_build, load_pickle, str_keys, write_cache
from metarepro.data.store import DataError, data_root, require_split_file

SPLITS = ("train", "val", "test")
SIZE = 84
HEADER = ["filename", "label"]
MANUAL = ("mini-ImageNet cannot be downloaded by the suite (ImageNet terms): put Ravi & Larochelle's images/ folder "
          "(n0153282900000005.jpg, ...) or mini-imagenet-cache-{{train,val,test}}.pkl into {folder}; the csv split files come "
          "from `metarepro data fetch splits`")


def mini_imagenet_dir(root: Path | None = None) -> Path:
    folder = Path(root or data_root()) / "mini_imagenet"
    if not folder.is_dir():
        raise DataError(f"mini-ImageNet not found: {folder} does not exist. " + MANUAL.format(folder=folder))
    return folder


def default_split_file(split: str, root: Path | None = None) -> Path:
    """``<data root>/splits/mini_imagenet/ravi/<split>.csv``, where ``metarepro data fetch splits`` puts it."""
    return Path(root or data_root()) / "splits" / "mini_imagenet" / "ravi" / f"{split}.csv"


def read_ravi_csv(path: Path) -> list[tuple[str, str]]:
    """``(filename, wnid)`` per row of a Ravi & Larochelle csv (header ``filename,label``)."""
    path = require_split_file(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != HEADER:
            raise DataError(f"{path}:1: header {header!r}, expected {','.join(HEADER)!r} (Ravi & Larochelle's csv; the "
                            "Vinyals csv of renmengye/few-shot-ssl-public, header 'filename,class', names original ImageNet files)")
        rows = []
        for n, row in enumerate(reader, 2):
            if not row or not any(row):
                continue
            if len(row) != 2 or not row[0] or not row[1]:
                raise DataError(f"{path}:{n}: expected 'filename,label', found {','.join(row)!r}")
            rows.append((row[0], row[1]))
    if not rows:
        raise DataError(f"{path}: no rows after the header")
    return rows


def _by_class(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """``{wnid: [filename, ...]}``, wnids sorted, filenames in csv order."""
    groups: dict[str, list[str]] = {}
    for filename, wnid in pairs:
        groups.setdefault(wnid, []).append(filename)
    return {w: groups[w] for w in sorted(groups)}


def load_csv_cache(split: str, root: Path | None = None, split_file: Path | None = None, size: int = SIZE,
                   resample: str = "lanczos", log=print) -> ImageCache:
    """The ``"csv"`` layout of one split, decoded once (module docstring), memory-mapped."""
    folder = mini_imagenet_dir(root)
    images_dir = folder / "images"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir} not found: the csv layout needs Ravi & Larochelle's images/ folder. "
                        + MANUAL.format(folder=folder))
    split_file = Path(split_file or default_split_file(split, root))
    groups = _by_class(read_ravi_csv(split_file))
    files = [(wnid, name) for wnid, names in groups.items() for name in names]
    path = cache_path(f"mini_imagenet-{split}-csv-{size}-{resample}", root)

    def build() -> None:
        def fill(out: np.ndarray) -> None:
            for row, (_, name) in enumerate(files):
                image = images_dir / name
                if not image.exists():
                    raise DataError(f"{image} not found, named by {split_file}: the images/ folder is incomplete or not "
                                    "Ravi & Larochelle's")
                out[row] = decode_rgb(image, str(image), size, resample)

        write_cache(path, list(groups), [len(v) for v in groups.values()], [f"images/{n}" for _, n in files], (size, size, 3), fill,
                    {"dataset": "mini_imagenet", "format": "csv", "split": split, "size": size, "resample": resample,
                     "split_file": str(split_file), "source": f"{images_dir} (as listed by {split_file})"},
                    [split_file, images_dir])

    return load_or_build(path, [split_file, images_dir], build, log)


def load_pickle_cache(split: str, root: Path | None = None, log=print) -> ImageCache:
    """The ``"pickle"`` layout of one split (``mini-imagenet-cache-<split>.pkl``), memory-mapped."""
    folder = mini_imagenet_dir(root)
    source = folder / f"mini-imagenet-cache-{split}.pkl"
    if not source.exists():
        raise DataError(f"{source} not found. " + MANUAL.format(folder=folder))
    path = cache_path(f"mini_imagenet-{split}-pickle", root)
    fix = f"replace {source.name} with a good copy"

    def build() -> None:
        data = str_keys(load_pickle(source, fix), source, fix)
        missing = [k for k in ("image_data", "class_dict") if k not in data]
        if missing:
            raise DataError(f"{source}: no {missing[0]!r} in the pickled dict (it has {sorted(data)}); expected "
                            "'image_data' (N, 84, 84, 3) uint8 and 'class_dict' {wnid: [rows]}")
        images = data["image_data"]
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != (SIZE, SIZE, 3):
            found = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise DataError(f"{source}: 'image_data' is {found}; expected uint8 (N, {SIZE}, {SIZE}, 3)")
        class_dict = data["class_dict"]
        if not isinstance(class_dict, dict) or not class_dict:
            raise DataError(f"{source}: 'class_dict' is {type(class_dict).__name__}; expected {{wnid: [row, ...]}}")
        groups = {as_str(k): [int(i) for i in v] for k, v in class_dict.items()}
        groups = {w: groups[w] for w in sorted(groups)}
        rows = np.array([i for v in groups.values() for i in v], dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(images)):
            raise DataError(f"{source}: 'class_dict' names row {rows.max() if rows.max() >= len(images) else rows.min()}, "
                            f"but 'image_data' has {len(images)} rows")
        if len(np.unique(rows)) != len(rows):
            raise DataError(f"{source}: 'class_dict' gives some rows to two classes")

        def fill(out: np.ndarray) -> None:
            for start in range(0, len(rows), 4096):
                out[start : start + 4096] = images[rows[start : start + 4096]]

        write_cache(path, list(groups), [len(v) for v in groups.values()], [f"{source.name}[{i}]" for i in rows], images.shape[1:], fill,
                    {"dataset": "mini_imagenet", "format": "pickle", "split": split, "source": str(source)}, [source])

    return load_or_build(path, [source], build, log)


def _check_pickle_classes(cache: ImageCache, split: str, split_file: Path) -> list[str]:
    """The split file's classes; DataError if the pickle lacks one, naming a val/test swap if that is what it is."""
    wanted = list(_by_class(read_ravi_csv(split_file)))
    have = set(cache.classes)
    missing = [c for c in wanted if c not in have]
    if missing:
        hint = ""
        for other in SPLITS:
            sibling = split_file.with_name(f"{other}.csv")
            if other != split and sibling.exists() and set(_by_class(read_ravi_csv(sibling))) == have:
                hint = (f"; {Path(cache.meta['source']).name} holds exactly the classes of {sibling} (renmengye/few-shot-ssl-public "
                        "issue #3: its cache writer reads test.csv for 'val' and val.csv for 'test')")
        raise DataError(f"{split_file} names class {missing[0]!r} ({len(missing)} of its {len(wanted)} classes), absent from "
                        f"{cache.meta['source']}{hint}")
    return wanted


def mini_imagenet_pool(split: str, root: Path | None = None, source: str = "auto", split_file: Path | None = None,
                       size: int = SIZE, resample: str = "lanczos", log=print) -> ImagePool:
    """The classes of one mini-ImageNet split, ready to sample episodes (84x84x3 by default).

    ``source``: ``"csv"`` (images/ + Ravi csv), ``"pickle"`` (``mini-imagenet-cache-<split>.pkl``)
    or ``"auto"`` (the csv layout when an images/ folder exists, else the pickle). ``split_file``
    defaults to ``<data root>/splits/mini_imagenet/ravi/<split>.csv``; with the pickle layout it is
    used, when present, to check the pickle's classes (module docstring). ``size`` and
    ``resample`` apply to the csv layout only.
    """
    if split not in SPLITS and split_file is None:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS} or pass split_file")
    folder = mini_imagenet_dir(root)
    if source == "auto":
        source = "csv" if (folder / "images").is_dir() else "pickle"
    if source == "csv":
        cache = load_csv_cache(split, root, split_file, size, resample, log)
        return ImagePool.whole(cache, f"mini_imagenet/{split} ({cache.meta['split_file']})")
    if source != "pickle":
        raise ValueError(f"unknown source {source!r}; choose 'csv', 'pickle' or 'auto'")
    cache = load_pickle_cache(split, root, log)
    check = Path(split_file) if split_file else default_split_file(split, root)
    if split_file is not None or check.exists():
        return ImagePool.from_split(cache, _check_pickle_classes(cache, split, check), f"mini_imagenet/{split} ({check})")
    return ImagePool.whole(cache, f"mini_imagenet/{split} ({Path(cache.meta['source']).name})")
