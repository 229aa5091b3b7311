"""tiered-ImageNet (Ren et al. 2018): 608 ImageNet classes in 34 categories, 84x84 RGB.

Splits train / val / test hold 351 / 97 / 160 classes (20 / 6 / 8 categories); classes differ in
size (732 to 1300 images). Files, in ``<data root>/tiered_imagenet/``, as Ren et al. distribute them
(``tiered-imagenet.tar``, linked from renmengye/few-shot-ssl-public; not downloadable by the suite)::

    {split}_labels.pkl       pickled dict: "label_specific" (N,) int32 class of each image,
                             "label_specific_str" [class name, ...] indexed by it,
                             "label_general" (N,) int32, "label_general_str" [category name, ...]
    {split}_images_png.pkl   pickled list of N PNG encodings of 84x84x3 images
                             (``cv2.imencode('.png', image)[1]``: (n_bytes, 1) uint8 arrays)
    {split}_images.npz       or: key "images", (N, 84, 84, 3) uint8

Source: renmengye/few-shot-ssl-public ``fewshot/data/tiered_imagenet.py`` (``read_cache``,
``save_cache``, ``read_dataset``) and ``fewshot/data/compress_tiered_imagenet.py``. Both pickles
were written by Python 2 (the reader loads them with ``encoding='bytes'`` and ``b"label_specific"``
keys); they are read here with ``encoding='latin1'``, which gives ``str`` names and intact arrays
for Python 2 and Python 3 copies alike.

Channel order. ``read_dataset`` reads images with ``cv2.imread`` (BGR) and ``np.savez``-es them;
``compress`` PNG-encodes those BGR arrays with ``cv2.imencode``, which writes a correct RGB PNG;
``decompress`` rebuilds the npz with ``cv2.imdecode(item, 1)``, i.e. BGR again. So the PNGs decode
to RGB (PIL here) and the npz holds BGR: it is flipped to RGB by default (``npz_channels="bgr"``),
so both files give the same RGB pixels. Pass ``npz_channels="rgb"`` for an npz made by a tool that
decoded with PIL.

``label_general`` is not used: ``read_dataset`` assigns it as the number of categories seen so far,
which is not the category index for a class whose category was seen earlier (torchmeta's converter
guards against ``label_general`` running past ``label_general_str``). Classes are named by
``label_specific_str`` and ordered by their label id; images keep their file order within a class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarepro.data.pool import (
    ImageCache,
    ImagePool,
    as_str,
    cache_path,
    decode_rgb,
    encoded_bytes,
    load_or_build,
    load_pickle,
    npz_array,
    str_keys,
    write_cache,
)
from metarepro.data.store import DataError, data_root

SPLITS = ("train", "val", "test")
CLASSES = {"train": 351, "val": 97, "test": 160}
SIZE = 84
MANUAL = ("tiered-ImageNet cannot be downloaded by the suite (ImageNet terms): extract Ren et al.'s tiered-imagenet.tar "
          "(linked from renmengye/few-shot-ssl-public) and put {{train,val,test}}_labels.pkl with {{train,val,test}}_images_png.pkl "
          "(or _images.npz) into {folder}")


def tiered_imagenet_dir(root: Path | None = None) -> Path:
    folder = Path(root or data_root()) / "tiered_imagenet"
    if not folder.is_dir():
        raise DataError(f"tiered-ImageNet not found: {folder} does not exist. " + MANUAL.format(folder=folder))
    return folder


@dataclass(frozen=True)
class TieredLabels:
    """``specific (N,)`` int64 class of each image; ``specific_str (n_classes,)`` class names;
    ``general_str`` category names (``label_general`` is unreliable: module docstring)."""

    specific: np.ndarray
    specific_str: tuple[str, ...]
    general_str: tuple[str, ...]


def read_labels(path: Path) -> TieredLabels:
    """``{split}_labels.pkl``, checked: every image's class has a name, every named class has images."""
    fix = f"replace {Path(path).name} with a good copy from tiered-imagenet.tar"
    data = str_keys(load_pickle(path, fix), path, fix)
    missing = [k for k in ("label_specific", "label_specific_str") if k not in data]
    if missing:
        raise DataError(f"{path}: no {missing[0]!r} in the pickled dict (it has {sorted(data)}); expected Ren et al.'s labels: "
                        "label_specific, label_general, label_specific_str, label_general_str")
    specific = np.asarray(data["label_specific"])
    if specific.ndim != 1 or not np.issubdtype(specific.dtype, np.integer):
        raise DataError(f"{path}: 'label_specific' is {specific.dtype} {specific.shape}; expected (N,) integers")
    names = tuple(as_str(n) for n in data["label_specific_str"])
    if len(specific) and (specific.min() < 0 or specific.max() >= len(names)):
        raise DataError(f"{path}: 'label_specific' runs from {specific.min()} to {specific.max()}, but 'label_specific_str' "
                        f"names {len(names)} classes")
    empty = np.flatnonzero(np.bincount(specific, minlength=len(names)) == 0)
    if len(empty):
        raise DataError(f"{path}: class {names[empty[0]]!r} (label {empty[0]}) has no image")
    return TieredLabels(specific.astype(np.int64), names, tuple(as_str(n) for n in data.get("label_general_str", ())))


def load_cache(split: str, root: Path | None = None, source: str = "auto", npz_channels: str = "bgr", log=print) -> ImageCache:
    """One split decoded once into a class-major cache, memory-mapped.

    ``source``: ``"png"`` (``{split}_images_png.pkl``), ``"npz"`` (``{split}_images.npz``) or
    ``"auto"`` (the npz when present: nothing to decode; else the PNG pickle).
    """
    if npz_channels not in ("bgr", "rgb"):
        raise ValueError(f"npz_channels must be 'bgr' or 'rgb', not {npz_channels!r}")
    folder = tiered_imagenet_dir(root)
    labels_file = folder / f"{split}_labels.pkl"
    if not labels_file.exists():
        raise DataError(f"{labels_file} not found. " + MANUAL.format(folder=folder))
    png, npz = folder / f"{split}_images_png.pkl", folder / f"{split}_images.npz"
    if source == "auto":
        source = "npz" if npz.exists() else "png"
    if source not in ("png", "npz"):
        raise ValueError(f"unknown source {source!r}; choose 'png', 'npz' or 'auto'")
    images_file = png if source == "png" else npz
    if not images_file.exists():
        raise DataError(f"{images_file} not found. " + MANUAL.format(folder=folder))
    variant = "png" if source == "png" else f"npz-{npz_channels}"
    path = cache_path(f"tiered_imagenet-{split}-{variant}", root)
    fix = f"replace {images_file.name} with a good copy from tiered-imagenet.tar"

    def build() -> None:
        labels = read_labels(labels_file)
        n = len(labels.specific)
        order = np.argsort(labels.specific, kind="stable")  # (N,) source index of each cache row
        destination = np.empty(n, dtype=np.int64)  # (N,) cache row of each source index
        destination[order] = np.arange(n)
        counts = np.bincount(labels.specific, minlength=len(labels.specific_str))
        meta = {"dataset": "tiered_imagenet", "format": source, "split": split, "source": str(images_file),
                "labels": str(labels_file), "categories": list(labels.general_str)}
        if source == "npz":
            meta["npz_channels"] = npz_channels

        def fill_png(out: np.ndarray) -> None:
            encoded = load_pickle(images_file, fix)
            if not isinstance(encoded, list | tuple | np.ndarray) or len(encoded) != n:
                found = f"{len(encoded)} items" if hasattr(encoded, "__len__") else type(encoded).__name__
                raise DataError(f"{images_file}: {found}, but {labels_file.name} labels {n} images; the two files do not match")
            for i, item in enumerate(encoded):
                image = decode_rgb(encoded_bytes(item), f"{images_file}[{i}]")
                if image.shape != (SIZE, SIZE, 3):
                    raise DataError(f"{images_file}[{i}]: a {image.shape[1]}x{image.shape[0]} image; expected {SIZE}x{SIZE}")
                out[destination[i]] = image

        def fill_npz(out: np.ndarray) -> None:
            with npz_array(images_file, "images", fix) as (shape, dtype, read):
                if dtype != np.uint8 or shape != (n, SIZE, SIZE, 3):
                    raise DataError(f"{images_file}: 'images' is {dtype} {shape}; expected uint8 ({n}, {SIZE}, {SIZE}, 3) "
                                    f"to match {labels_file.name}")
                for start in range(0, n, 4096):
                    block = read(min(4096, n - start))
                    out[destination[start : start + len(block)]] = block[..., ::-1] if npz_channels == "bgr" else block

        items = [f"{images_file.name}[{i}]" for i in order]
        write_cache(path, labels.specific_str, counts.tolist(), items, (SIZE, SIZE, 3), fill_png if source == "png" else fill_npz,
                    meta, [labels_file, images_file])

    return load_or_build(path, [labels_file, images_file], build, log)


def tiered_imagenet_pool(split: str, root: Path | None = None, source: str = "auto", classes: list[str] | None = None,
                         npz_channels: str = "bgr", log=print) -> ImagePool:
    """The classes of one tiered-ImageNet split (all of them, or the ``classes`` named), 84x84x3."""
    cache = load_cache(split, root, source, npz_channels, log)
    name = f"tiered_imagenet/{split} ({Path(cache.meta['source']).name})"
    if classes is None:
        return ImagePool.whole(cache, name)
    return ImagePool.from_split(cache, classes, name)
