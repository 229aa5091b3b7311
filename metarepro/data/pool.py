"""RGB image caches and the episode pool shared by mini-ImageNet, tiered-ImageNet, CIFAR-FS and CUB.

Every dataset is decoded once into a cache under ``<data root>/cache/``::

    <name>.npy   images (N, H, W, C) uint8, class-major: class i owns rows offsets[i]:offsets[i+1]
    <name>.json  {"classes": [...], "offsets": [...], "items": [...], "meta": {...}, "sources": {...}}

``items[r]`` says where row ``r`` was decoded from (a file, or a pickle and an index into it), so
every cached pixel can be traced back to its source. When every class has the same number of
images, :meth:`ImageCache.by_class` is the same array viewed as ``(n_classes, n_per_class, H, W,
C)``; otherwise (CUB, tiered-ImageNet) the flat array and the offsets are the layout.

The array is written through a memory map into a temporary file and moved into place after its
index, so its presence means the cache is complete, and building never holds more than one source
file in memory (a tiered-ImageNet train split is ~9.5 GB decoded). It is opened with
``np.load(mmap_mode="r")``: sampling an episode reads only the rows it needs and never decodes an
image. ``sources`` records the size and mtime of the files a cache was built from; a cache whose
sources changed is rebuilt (delete the ``.npy`` to force it).

:class:`ImagePool` is the sampling API of :class:`metarepro.data.omniglot.ClassPool` for these
caches: ``sample_indices``, ``sample`` (an :class:`~metarepro.episodes.Episode` of float32 images in
[0, 1], channel-first) and ``all_images``, generalised to RGB images and to classes of different
sizes.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from metarepro.atomic import atomic_path, atomic_write_text
from metarepro.data.store import DataError, data_root
from metarepro.episodes import Episode

#: PIL filters by name.
RESAMPLE = ("lanczos", "bilinear", "bicubic", "box", "nearest", "hamming")


# -- decoding ----------------------------------------------------------------------------------------------------------


def _pil_filter(name: str):
    from PIL import Image

    if name not in RESAMPLE:
        raise ValueError(f"unknown resize filter {name!r}; choose one of {RESAMPLE}")
    return getattr(Image.Resampling, name.upper())


def decode_rgb(source: Path | bytes, name: str, size: int | None = None, resample: str = "bilinear",
               crop_from: int | None = None) -> np.ndarray:
    """One encoded image (a file, or its bytes) as ``(H, W, 3)`` uint8 RGB.

    Grey, palette and CMYK images are converted to RGB first (a few ImageNet and CUB JPEGs are not
    RGB). With ``size``, the image is resized to ``size`` x ``size`` with ``resample`` (a PIL filter
    name; an image already that size is returned unchanged, as PIL does); with ``crop_from`` too, it
    is resized to ``crop_from`` x ``crop_from`` and the centre ``size`` x ``size`` is cut out, as
    torchvision's ``Resize`` then ``CenterCrop`` do (top-left corner ``round((crop_from - size) / 2)``).
    ``name`` is what an error message calls the image.
    """
    from PIL import Image, UnidentifiedImageError

    filter_ = _pil_filter(resample) if size else None
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as im:
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{name}: not a readable image ({err}); the file is corrupt or truncated: replace it "
                        "(for fetched data: `metarepro data verify`, then fetch again)") from err
    if size:
        side = crop_from or size
        rgb = rgb.resize((side, side), resample=filter_)
        if crop_from:
            if crop_from < size:
                raise ValueError(f"crop_from={crop_from} is smaller than the image size {size}")
            top = int(round((crop_from - size) / 2.0))
            rgb = rgb.crop((top, top, top + size, top + size))
    return np.asarray(rgb, dtype=np.uint8)


# -- pickles and npz files as the datasets ship them -------------------------------------------------------------------

#: The globals a dataset pickle may name: numpy arrays, dtypes and scalars (as numpy 1.x, 2.x and
#: Python 2's cPickle write them) and plain containers. Anything else is refused, not executed.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict"),
    *(("builtins", n) for n in ("set", "frozenset", "bytearray", "list", "dict", "tuple", "int", "float", "str", "bytes", "bool")),
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: a dataset pickle holds only "
                                         "numpy arrays and plain containers")
        return super().find_class(module, name)


def load_pickle(path: Path, fix: str) -> object:
    """Unpickle a dataset file, whether Python 2 or Python 3 wrote it.

    ``encoding="latin1"`` is what numpy documents for Python 2 pickles holding arrays: Python 2
    ``str`` (dict keys, class names, PNG bytes) comes back as ``str``, arrays come back intact;
    Python 3 pickles are unaffected. Only numpy arrays and plain containers may be in it (see
    ``_PICKLE_GLOBALS``). ``fix`` is the advice an error message ends with.
    """
    try:
        with open(path, "rb") as f:
            return _DataUnpickler(f, encoding="latin1").load()
    except FileNotFoundError as err:
        raise DataError(f"{path} not found; {fix}") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError, KeyError,
            struct.error, UnicodeDecodeError, OverflowError) as err:
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err}); the file is corrupt, truncated "
                        f"or not this dataset's; {fix}") from err


def as_str(value: object) -> str:
    """A pickled name as ``str``: Python 2 ``str`` loaded as bytes is decoded as latin-1."""
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)


def str_keys(mapping: object, path: Path, fix: str) -> dict[str, object]:
    """A pickled dict with its keys as ``str`` (``b"data"`` and ``"data"`` alike)."""
    if not isinstance(mapping, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(mapping).__name__}; {fix}")
    return {as_str(k): v for k, v in mapping.items()}


def encoded_bytes(item: object) -> bytes:
    """An encoded image as stored in a pickle: a uint8 array (``cv2.imencode``'s ``(n, 1)``), bytes, or latin-1 str."""
    if isinstance(item, np.ndarray):
        return item.tobytes()
    if isinstance(item, str):
        return item.encode("latin-1")
    return bytes(item)


@contextmanager
def npz_array(path: Path, key: str, fix: str) -> Iterator[tuple[tuple[int, ...], np.dtype, Callable[[int], np.ndarray]]]:
    """Stream one array of an ``.npz`` without loading it: yields ``(shape, dtype, read)``.

    ``read(n)`` returns the next ``n`` rows (along the first axis). ``np.load`` cannot memory-map an
    array inside an npz and would read all of it into memory.
    """
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError as err:
        raise DataError(f"{path} not found; {fix}") from err
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path}: not a readable npz (zip) file ({err}); {fix}") from err
    with archive:
        member = f"{key}.npy"
        if member not in archive.namelist():
            found = sorted(n.removesuffix(".npy") for n in archive.namelist())
            raise DataError(f"{path}: no array {key!r} in this npz (it holds {found}); {fix}")
        unreadable = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error)
        try:
            fp = archive.open(member)
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(fp, version)
        except unreadable as err:
            raise DataError(f"{path}: array {key!r} is not readable ({err}); the file is corrupt; {fix}") from err
        with fp:
            if fortran or dtype.hasobject:
                raise DataError(f"{path}: array {key!r} is {'Fortran-ordered' if fortran else 'of Python objects'}; "
                                f"expected a C-ordered numeric array; {fix}")
            row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

            def read(n: int) -> np.ndarray:
                try:
                    data = fp.read(n * row_bytes)
                except unreadable as err:
                    raise DataError(f"{path}: array {key!r} is not readable ({err}); the file is corrupt; {fix}") from err
                if len(data) != n * row_bytes:
                    raise DataError(f"{path}: array {key!r} is truncated; the file is corrupt; {fix}")
                return np.frombuffer(data, dtype=dtype).reshape(n, *shape[1:])

            yield tuple(shape), dtype, read


# -- the cache ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageCache:
    """Every image of a dataset (or split) once, class-major.

    ``images (N, H, W, C)`` uint8, memory-mapped; ``classes (n_classes,)`` names; ``offsets
    (n_classes + 1,)`` int64: class ``i`` owns rows ``offsets[i]:offsets[i + 1]``; ``items (N,)``
    the source of each row; ``meta`` how the cache was built (format, resize filter, ...).
    """

    images: np.ndarray
    classes: tuple[str, ...]
    offsets: np.ndarray
    items: tuple[str, ...]
    meta: dict = field(default_factory=dict, compare=False)
    path: Path | None = None

    @property
    def counts(self) -> np.ndarray:
        """``(n_classes,)`` images per class."""
        return np.diff(self.offsets)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def by_class(self) -> np.ndarray:
        """The cache as ``(n_classes, n_per_class, H, W, C)`` (a view); ValueError if class sizes differ."""
        counts = self.counts
        if len(counts) and (counts != counts[0]).any():
            raise ValueError(f"classes hold {counts.min()} to {counts.max()} images; use images and offsets")
        return self.images.reshape(len(self.classes), -1, *self.image_shape)

    def class_images(self, index: int) -> np.ndarray:
        """``(count, H, W, C)`` the images of class ``index`` (a view)."""
        return self.images[self.offsets[index] : self.offsets[index + 1]]


def cache_path(name: str, root: Path | None = None) -> Path:
    return Path(root or data_root()) / "cache" / f"{name}.npy"


def fingerprint(sources: Sequence[Path]) -> dict[str, list[int]]:
    """``{path: [size, mtime_ns]}`` of the files (or folders) a cache is built from."""
    out = {}
    for p in sources:
        st = Path(p).stat()
        out[str(p)] = [st.st_size, st.st_mtime_ns]
    return out


def write_cache(path: Path, classes: Sequence[str], counts: Sequence[int], items: Sequence[str], image_shape: tuple[int, ...],
                fill: Callable[[np.ndarray], None], meta: dict, sources: Sequence[Path]) -> None:
    """Write a cache: ``fill(out)`` writes every row of ``out (N, *image_shape)`` uint8, class-major.

    ``out`` is a memory map of the final file; ``counts[i]`` rows belong to ``classes[i]``.
    """
    n = int(sum(counts))
    if len(items) != n or len(classes) != len(counts):
        raise AssertionError(f"cache {path.name}: {len(items)} items, {n} rows, {len(classes)} classes, {len(counts)} counts")
    with atomic_path(path) as tmp:  # the array is renamed last: its presence means the cache is complete
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *image_shape))
        fill(out)
        out.flush()
        del out
        offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).tolist()
        index = {"classes": list(classes), "offsets": offsets, "items": list(items), "meta": meta, "sources": fingerprint(sources)}
        atomic_write_text(path.with_suffix(".json"), json.dumps(index))


def open_cache(path: Path) -> ImageCache:
    index = json.loads(path.with_suffix(".json").read_text())
    return ImageCache(np.load(path, mmap_mode="r"), tuple(index["classes"]), np.asarray(index["offsets"], dtype=np.int64),
                      tuple(index["items"]), index["meta"], path)


def load_or_build(path: Path, sources: Sequence[Path], build: Callable[[], None], log=print) -> ImageCache:
    """The cache at ``path``; ``build()`` writes it first when it is absent or its sources changed."""
    if path.exists():
        try:
            recorded = json.loads(path.with_suffix(".json").read_text()).get("sources")
        except (OSError, ValueError):
            recorded = None
        if recorded == fingerprint(sources):
            return open_cache(path)
        log(f"{path.name}: its source files changed since it was built; rebuilding")
    build()
    cache = open_cache(path)
    log(f"{path.stem}: cached {len(cache.images)} images of {len(cache.classes)} classes at "
        f"{'x'.join(map(str, cache.image_shape))} in {path}")
    return cache


# -- the pool ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePool:
    """The classes of one split over an :class:`ImageCache`.

    ``members (n_classes,)`` indexes ``cache.classes``; ``name`` is how messages call the split.
    Same sampling API as :class:`metarepro.data.omniglot.ClassPool`; images are channel-first.
    """

    cache: ImageCache
    members: np.ndarray
    name: str = "split"

    @staticmethod
    def whole(cache: ImageCache, name: str) -> ImagePool:
        """Every class of the cache, in cache order."""
        return ImagePool(cache, np.arange(len(cache.classes)), name)

    @staticmethod
    def from_split(cache: ImageCache, class_names: Sequence[str], split_name: str) -> ImagePool:
        """The classes a split names, in the split's order; DataError naming any class the data lacks."""
        index: dict[str, int] = {}
        ambiguous = set()
        for i, c in enumerate(cache.classes):
            if c in index:
                ambiguous.add(c)
            index.setdefault(c, i)
        missing = [c for c in class_names if c not in index]
        source = cache.meta.get("source", "the data")
        if missing:
            raise DataError(f"{split_name} names class {missing[0]!r}"
                            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}, absent from {source}; "
                            "is the split file meant for another dataset, or is the data incomplete?")
        twice = sorted({c for c in class_names if list(class_names).count(c) > 1})
        if twice:
            raise DataError(f"{split_name} names class {twice[0]!r} more than once")
        clash = [c for c in class_names if c in ambiguous]
        if clash:
            raise DataError(f"{split_name}: class name {clash[0]!r} belongs to several classes of {source}")
        return ImagePool(cache, np.array([index[c] for c in class_names], dtype=np.int64), split_name)

    def __len__(self) -> int:
        return len(self.members)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.cache.classes[i] for i in self.members)

    @property
    def counts(self) -> np.ndarray:
        """``(n_classes,)`` images per class of the split."""
        return self.cache.counts[self.members]

    def sample_indices(self, rng: np.random.Generator, ways: int, shots: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
        """Which classes and images an episode uses: ``classes (ways,)``, ``items (ways, shots+queries)``.

        ``items[w]`` index the images of class ``classes[w]`` (0-based within the class); the first
        ``shots`` are its support set. Draws classes, then each class's images, without replacement.
        """
        if ways < 1 or shots < 1 or queries < 0:
            raise ValueError(f"an episode needs ways >= 1, shots >= 1, queries >= 0; got {ways}, {shots}, {queries}")
        if ways > len(self):
            raise ValueError(f"{ways}-way episodes need {ways} classes; {self.name} has {len(self)}")
        counts = self.counts
        need = shots + queries
        if need > counts.min():
            smallest = int(np.argmin(counts))
            raise ValueError(f"{shots} shots + {queries} queries need {need} images per class; class "
                             f"{self.class_names[smallest]!r} of {self.name} has {counts[smallest]}")
        classes = rng.choice(len(self), size=ways, replace=False)
        items = np.stack([rng.choice(int(counts[c]), size=need, replace=False) for c in classes])
        return classes, items

    def rows(self, classes: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(classes), n)`` cache rows of ``items`` of pool classes ``classes``."""
        starts = self.cache.offsets[self.members[np.asarray(classes)]]
        return starts[:, None] + np.asarray(items)

    def images(self, classes: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(classes), n, C, H, W)`` uint8, read from the cache (no decoding)."""
        rows = self.rows(classes, items)
        block = self.cache.images[rows.reshape(-1)]  # (ways * n, H, W, C)
        return block.reshape(*rows.shape, *self.cache.image_shape).transpose(0, 1, 4, 2, 3)

    def sample(self, rng: np.random.Generator, ways: int, shots: int, queries: int) -> Episode:
        """One ``ways``-way ``shots``-shot episode with ``queries`` queries per class.

        ``support_x (ways*shots, C, H, W)`` float32 in [0, 1], labels ``0..ways-1`` class-major;
        ``query_x (ways*queries, C, H, W)``, ``query_y (ways*queries,)``.
        """
        classes, items = self.sample_indices(rng, ways, shots, queries)
        x = torch.from_numpy(np.ascontiguousarray(self.images(classes, items))).float().div_(255.0)  # (ways, s+q, C, H, W)
        shape = x.shape[2:]
        labels = torch.arange(ways).unsqueeze(1)
        return Episode(
            support_x=x[:, :shots].reshape(ways * shots, *shape),
            support_y=labels.expand(ways, shots).reshape(-1),
            query_x=x[:, shots:].reshape(ways * queries, *shape),
            query_y=labels.expand(ways, queries).reshape(-1),
        )

    def all_images(self) -> np.ndarray:
        """Every image of the split once: ``(n_classes, n_per_class, C, H, W)`` uint8.

        Index it with :meth:`sample_indices`' ``(classes, items)``. Classes of different sizes
        (CUB, tiered-ImageNet) cannot form this array: ValueError; use :meth:`flat_images`.
        """
        counts = self.counts
        if len(counts) and (counts != counts[0]).any():
            raise ValueError(f"the classes of {self.name} hold {counts.min()} to {counts.max()} images: use flat_images() "
                             "and rows_in_flat(classes, items)")
        n = int(counts[0]) if len(counts) else 0
        return self.images(np.arange(len(self)), np.tile(np.arange(n), (len(self), 1)))

    def flat_images(self) -> tuple[np.ndarray, np.ndarray]:
        """Every image of the split once, any class sizes: ``images (n_images, C, H, W)`` uint8 and
        ``offsets (n_classes + 1,)``: pool class ``i`` owns ``images[offsets[i]:offsets[i + 1]]``."""
        offsets = np.concatenate([[0], np.cumsum(self.counts)])
        rows = np.concatenate([np.arange(self.cache.offsets[m], self.cache.offsets[m + 1]) for m in self.members])
        return self.cache.images[rows].transpose(0, 3, 1, 2), offsets

    def rows_in_flat(self, classes: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``(len(classes), n)`` indices into :meth:`flat_images` of ``(classes, items)``."""
        offsets = np.concatenate([[0], np.cumsum(self.counts)])
        return offsets[np.asarray(classes)][:, None] + np.asarray(items)
