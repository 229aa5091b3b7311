"""CIFAR-FS (Bertinetto et al. 2019): CIFAR-100's 100 classes x 600 images, 32x32 RGB, split 64 / 16 / 20.

Images: CIFAR-100's python version, ``cifar-100-python.tar.gz`` from
https://www.cs.toronto.edu/~kriz/cifar.html (``metarepro data fetch cifar100``), extracted to
``<data root>/cifar100/cifar-100-python/``::

    train   pickled dict: b"data" (50000, 3072) uint8, b"fine_labels" [int], b"coarse_labels",
            b"filenames", b"batch_label"
    test    the same with 10000 images
    meta    b"fine_label_names" (100 names, label order), b"coarse_label_names" (20)

The pickles are Python 2's (the CIFAR page unpickles them with ``encoding='bytes'``, hence bytes
keys); they are read with ``encoding='latin1'``, which gives ``str`` keys and intact arrays. Each
``data`` row is the red, green and blue 32x32 planes in turn, each row-major: the image is
``row.reshape(3, 32, 32).transpose(1, 2, 0)``.

CIFAR-FS pools train and test images per class, 500 + 100 = 600 (train images first, file order
within each). The whole of CIFAR-100 is one cache (~184 MB); a split is a list of fine class names:
Bertinetto et al.'s ``{train,val,test}.txt`` (one name per line; ArnoutDevos/maml-cifar-fs
``data/CIFARFS/cifar-fs-splits/``, installed by ``metarepro data fetch splits`` under
``splits/cifar_fs/bertinetto/``) or torchmeta's json (``[[superclass, class], ...]``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from metarepro.data.pool import ImageCache, ImagePool, as_str, cache_path, load_or_build, load_pickle, str_keys, write_cache
from metarepro.data.store import DataError, data_root, require_split_file

PARTS = ("train", "test")
SIZE = 32


def cifar100_dir(root: Path | None = None) -> Path:
    folder = Path(root or data_root()) / "cifar100" / "cifar-100-python"
    missing = [p for p in (*PARTS, "meta") if not (folder / p).is_file()]
    if missing:
        raise DataError(f"CIFAR-100 not found: {folder / missing[0]} is missing. Run `metarepro data fetch cifar100` "
                        "(or extract cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into "
                        f"{folder.parent})")
    return folder


def _read_part(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``images (N, 32, 32, 3)`` uint8 and ``fine (N,)`` of one pickle, checked."""
    fix = "fetch it again (`metarepro data fetch cifar100`)"
    part = str_keys(load_pickle(path, fix), path, fix)
    missing = [k for k in ("data", "fine_labels") if k not in part]
    if missing:
        raise DataError(f"{path}: no {missing[0]!r} in the pickled dict (it has {sorted(part)}); not CIFAR-100's python version; {fix}")
    data = part["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is {found}; expected uint8 (N, {3 * SIZE * SIZE}) (CIFAR-10's or another format?); {fix}")
    fine = np.asarray(part["fine_labels"], dtype=np.int64)
    if fine.shape != (len(data),):
        raise DataError(f"{path}: {len(fine)} fine labels for {len(data)} images; {fix}")
    if len(fine) and (fine.min() < 0 or fine.max() >= n_classes):
        raise DataError(f"{path}: fine labels run from {fine.min()} to {fine.max()}, but meta names {n_classes} classes; {fix}")
    return data.reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1), fine


def load_cache(root: Path | None = None, log=print) -> ImageCache:
    """All of CIFAR-100, class by class (label order), train images then test images; memory-mapped."""
    folder = cifar100_dir(root)
    sources = [folder / "meta", *(folder / p for p in PARTS)]
    path = cache_path("cifar100-32", root)

    def build() -> None:
        fix = "fetch it again (`metarepro data fetch cifar100`)"
        meta = str_keys(load_pickle(folder / "meta", fix), folder / "meta", fix)
        if "fine_label_names" not in meta:
            raise DataError(f"{folder / 'meta'}: no 'fine_label_names' (it has {sorted(meta)}); not CIFAR-100's meta file; {fix}")
        names = [as_str(n) for n in meta["fine_label_names"]]
        parts = {p: _read_part(folder / p, len(names)) for p in PARTS}
        # (class, part, index in part) of each cache row
        order = [(c, p, i) for c in range(len(names)) for p in PARTS for i in np.flatnonzero(parts[p][1] == c)]
        counts = np.bincount([c for c, _, _ in order], minlength=len(names))

        def fill(out: np.ndarray) -> None:
            row = 0
            for c in range(len(names)):
                for p in PARTS:
                    block = parts[p][0][parts[p][1] == c]
                    out[row : row + len(block)] = block
                    row += len(block)

        write_cache(path, names, counts.tolist(), [f"{p}[{i}]" for _, p, i in order], (SIZE, SIZE, 3), fill,
                    {"dataset": "cifar100", "format": "cifar-100-python", "source": str(folder)}, sources)

    return load_or_build(path, sources, build, log)


def default_split_file(split: str, root: Path | None = None) -> Path:
    """``<data root>/splits/cifar_fs/bertinetto/<split>.txt``, where ``metarepro data fetch splits`` puts it."""
    return Path(root or data_root()) / "splits" / "cifar_fs" / "bertinetto" / f"{split}.txt"


def read_class_split(path: Path) -> list[str]:
    """Fine class names of a CIFAR-FS split file: ``.txt`` one per line, or torchmeta's ``.json`` pairs."""
    path = require_split_file(path)
    if path.suffix == ".json":
        try:
            pairs = json.loads(path.read_text())
            names = [pair[1] if isinstance(pair, list) else pair for pair in pairs]
        except (ValueError, TypeError, IndexError) as err:
            raise DataError(f"{path}: expected a json list of [superclass, class] pairs ({err})") from err
    else:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: no class names found")
    return names


def cifar_fs_pool(split: str, root: Path | None = None, split_file: Path | None = None, log=print) -> ImagePool:
    """The classes of one CIFAR-FS split (600 images each, 32x32x3).

    ``split_file`` defaults to Bertinetto et al.'s ``splits/cifar_fs/bertinetto/<split>.txt``.
    """
    cache = load_cache(root, log)
    split_file = Path(split_file or default_split_file(split, root))
    return ImagePool.from_split(cache, read_class_split(split_file), f"CIFAR-FS split file {split_file}")
