"""Omniglot: decode once into a uint8 cache, read class splits, sample episodes.

Layout (official zips, extracted by ``metarepro data fetch omniglot``)::

    omniglot/images_background/<Alphabet>/<characterNN>/<id>_<drawer>.png
    omniglot/images_evaluation/<Alphabet>/<characterNN>/<id>_<drawer>.png

1623 characters x 20 drawers, 105x105 1-bit PNGs. A character is named
``"<Alphabet>/<characterNN>"`` as in the Vinyals split files, whose lines
``<Alphabet>/<characterNN>/rotDDD`` make each 90-degree rotation a class.

The cache holds every image once, resized to ``size`` x ``size``, at
rotation 0; rotations are applied when sampling (``np.rot90`` of the resized
image).

Resizing: the PNGs are 1-bit, and Pillow resizes 1-bit images with NEAREST
whatever filter is asked for (its documentation; checked here: MAML's
``resize((28, 28), resample=LANCZOS)`` on a 1-bit PNG gives exactly the
NEAREST pixels, values 0/255 only). So MAML's, Snell et al.'s and Reptile's
pipelines all produce binary nearest-neighbour images, and ``"nearest"`` is
the default. ``"lanczos"`` (converting to greyscale first, then a true LANCZOS
resize, as Relation Networks' code does) is available as its own cache.

Rotation order: Snell et al.'s code rotates the 105x105 image and then
resizes; MAML and Reptile resize and then rotate. With NEAREST both orders
give identical pixels (a test checks it). With a smoothing filter they do
not: measured on 49 real images, 90/270-degree rotations differ by up to 31
grey levels with LANCZOS on greyscale, 16 with BICUBIC, 1 with BILINEAR.
Pixel values are 0 = ink, 255 = paper, uint8; benchmarks convert them as
their reference code does (Snell et al. and MAML invert them).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metarepro.atomic import atomic_path, atomic_write_text
from metarepro.data.store import DataError, data_root
from metarepro.episodes import Episode

SETS = ("images_background", "images_evaluation")
DRAWERS = 20
#: PIL filters by name, applied to the greyscale image (module docstring).
RESAMPLE = ("lanczos", "nearest", "bilinear", "bicubic", "box")


def _pil_filter(name: str):
    from PIL import Image

    if name not in RESAMPLE:
        raise ValueError(f"unknown resize filter {name!r}; choose one of {RESAMPLE}")
    return getattr(Image.Resampling, name.upper())


def decode(path: Path, size: int, resample: str) -> np.ndarray:
    """One PNG as ``(size, size)`` uint8 grayscale."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L").resize((size, size), resample=_pil_filter(resample)), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{path}: not a readable image ({err}); run `metarepro data verify` and fetch again") from err


@dataclass(frozen=True)
class CharacterCache:
    """All images, ``images (n_characters * 20, size, size)`` uint8 (memory-mapped).

    Character ``characters[i]`` owns rows ``20 * i .. 20 * i + 19``.
    """

    images: np.ndarray
    characters: tuple[str, ...]
    size: int
    resample: str

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.characters)}


def omniglot_dir(root: Path | None = None) -> Path:
    folder = Path(root or data_root()) / "omniglot"
    if not all((folder / s).is_dir() for s in SETS):
        raise DataError(f"Omniglot not found under {folder}: run `metarepro data fetch omniglot` "
                        "(with METAREPRO_MIRROR=../shared/data to use the local mirror)")
    return folder


def list_characters(folder: Path) -> list[tuple[str, Path]]:
    """``("Alphabet/characterNN", folder)`` for every character, background set first."""
    out = []
    for s in SETS:
        for alphabet in sorted(p for p in (folder / s).iterdir() if p.is_dir()):
            for character in sorted(p for p in alphabet.iterdir() if p.is_dir()):
                out.append((f"{alphabet.name}/{character.name}", character))
    return out


def build_cache(root: Path | None = None, size: int = 28, resample: str = "nearest", log=print) -> Path:
    """Decode every image once into ``cache/omniglot-<size>-<resample>.npy`` (+ index)."""
    folder = omniglot_dir(root)
    characters = list_characters(folder)
    images = np.empty((len(characters) * DRAWERS, size, size), dtype=np.uint8)
    for i, (_, path) in enumerate(characters):
        pngs = sorted(path.glob("*.png"))
        if len(pngs) != DRAWERS:
            raise DataError(f"{path}: expected {DRAWERS} drawings, found {len(pngs)}; the dataset is incomplete")
        for j, png in enumerate(pngs):
            images[DRAWERS * i + j] = decode(png, size, resample)
    cache = _cache_path(root, size, resample)
    atomic_write_text(cache.with_suffix(".json"), json.dumps({"characters": [c for c, _ in characters], "size": size, "resample": resample}))
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:  # the array last: its presence means the cache is complete
        np.save(f, images)
    log(f"omniglot: cached {len(images)} images at {size}x{size} ({resample}) in {cache}")
    return cache


def _cache_path(root: Path | None, size: int, resample: str) -> Path:
    return Path(root or data_root()) / "cache" / f"omniglot-{size}-{resample}.npy"


def load_cache(root: Path | None = None, size: int = 28, resample: str = "nearest", log=print) -> CharacterCache:
    """The memory-mapped cache, built on first use."""
    cache = _cache_path(root, size, resample)
    if not cache.exists():
        build_cache(root, size, resample, log)
    meta = json.loads(cache.with_suffix(".json").read_text())
    return CharacterCache(np.load(cache, mmap_mode="r"), tuple(meta["characters"]), size, resample)


def read_split(path: Path) -> list[tuple[str, int]]:
    """``(character, rotation in degrees)`` per line of a Vinyals split file.

    Lines are ``Alphabet/characterNN/rotDDD``, or ``Alphabet/characterNN``
    (no rotation) in the ``vinyals_norot`` files.
    """
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split("/")
        if len(parts) == 3 and parts[2].startswith("rot"):
            out.append(("/".join(parts[:2]), int(parts[2][3:])))
        elif len(parts) == 2:
            out.append((line, 0))
        else:
            raise DataError(f"{path}:{n}: cannot read class {line!r} (expected Alphabet/characterNN[/rotDDD])")
    return out


def seeded_character_split(characters: tuple[str, ...] | list[str], seed: int, n_train: int) -> tuple[list[str], list[str]]:
    """``(train, test)`` characters as supervised-reptile draws them (Nichol et al. 2018, code at github.com/openai/
    supervised-reptile): list the alphabets of both sets merged into one folder, sorted, and each alphabet's characters
    sorted (``read_dataset``); ``random.seed(seed)``, ``random.shuffle`` (``run_omniglot.py``, ``--seed`` 0); the first
    ``n_train`` (1200) train, the rest (423) test (``split_dataset``). Python's shuffle of a seeded ``Random`` is stable
    across Python 3 versions, so the code's split is reproduced exactly.

    ``characters``: ``"Alphabet/characterNN"`` names, any order.
    """
    if len(set(characters)) != len(characters):
        raise DataError("seeded_character_split: character names repeat; the merged listing would be ambiguous")
    if not 0 < n_train < len(characters):
        raise DataError(f"cannot keep {n_train} training characters of {len(characters)} and test on the rest")
    listing = sorted(characters, key=lambda c: tuple(c.split("/")))  # per-folder sort, alphabet then character
    random.Random(seed).shuffle(listing)
    return listing[:n_train], listing[n_train:]


@dataclass(frozen=True)
class ClassPool:
    """The classes of one split: rows of the cache and a rotation each."""

    cache: CharacterCache
    rows: np.ndarray  # (n_classes,) first cache row of each class
    rotations: np.ndarray  # (n_classes,) quarter turns

    @staticmethod
    def from_split(cache: CharacterCache, split: list[tuple[str, int]], split_name: str = "split") -> ClassPool:
        index = cache.index()
        missing = [c for c, _ in split if c not in index]
        if missing:
            raise DataError(f"{split_name} names {len(missing)} character(s) absent from the data, e.g. {missing[0]!r}; "
                            "is the split meant for another dataset, or is the data incomplete?")
        bad_rot = sorted({r for _, r in split if r % 90})
        if bad_rot:
            raise DataError(f"{split_name}: rotations must be multiples of 90 degrees, got {bad_rot}")
        return ClassPool(cache, np.array([DRAWERS * index[c] for c, _ in split]), np.array([r // 90 for _, r in split]))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def counts(self) -> np.ndarray:
        """Drawings per class (every Omniglot character has ``DRAWERS``), as :class:`metarepro.data.pool.ImagePool` has."""
        return np.full(len(self), DRAWERS)

    def sample_indices(self, rng: np.random.Generator, ways: int, shots: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
        """Which classes and drawings an episode uses: ``classes (ways,)``, ``drawings (ways, shots+queries)``.

        The first ``shots`` drawings of each class are its support set.
        """
        if ways > len(self):
            raise DataError(f"{ways}-way episodes need {ways} classes; this split has {len(self)}")
        if shots + queries > DRAWERS:
            raise DataError(f"{shots} shots + {queries} queries exceed the {DRAWERS} drawings of an Omniglot class")
        classes = rng.choice(len(self), size=ways, replace=False)
        drawings = np.stack([rng.choice(DRAWERS, size=shots + queries, replace=False) for _ in classes])
        return classes, drawings

    def images(self, classes: np.ndarray, drawings: np.ndarray) -> np.ndarray:
        """``(len(classes), n_drawings, size, size)`` uint8, rotated as each class says."""
        size = self.cache.size
        out = np.empty((len(classes), drawings.shape[1], size, size), dtype=np.uint8)
        for w, c in enumerate(classes):
            block = self.cache.images[self.rows[c] + drawings[w]]
            out[w] = np.rot90(block, k=int(self.rotations[c]), axes=(1, 2)) if self.rotations[c] else block
        return out

    def sample(self, rng: np.random.Generator, ways: int, shots: int, queries: int) -> Episode:
        """One ``ways``-way ``shots``-shot episode with ``queries`` queries per class.

        ``support_x (ways*shots, 1, size, size)`` float32 in [0, 1] (1 = paper),
        labels ``0..ways-1`` class-major; ``query_x (ways*queries, 1, size, size)``.
        """
        classes, drawings = self.sample_indices(rng, ways, shots, queries)
        size = self.cache.size
        x = torch.from_numpy(self.images(classes, drawings)).float().div_(255.0).unsqueeze(2)  # (ways, s+q, 1, H, W)
        labels = torch.arange(ways).unsqueeze(1)
        return Episode(
            support_x=x[:, :shots].reshape(ways * shots, 1, size, size),
            support_y=labels.expand(ways, shots).reshape(-1),
            query_x=x[:, shots:].reshape(ways * queries, 1, size, size),
            query_y=labels.expand(ways, queries).reshape(-1),
        )

    def all_images(self) -> np.ndarray:
        """Every image of the split once: ``(n_classes, 20, size, size)`` uint8."""
        return self.images(np.arange(len(self)), np.tile(np.arange(DRAWERS), (len(self), 1)))


def ink_one_transposed(images: torch.Tensor) -> torch.Tensor:
    """``1 - x`` (ink = 1, paper = 0) with H and W swapped: the tensors of Snell et al.'s loader
    (jakesnell/prototypical-networks) and of R2-D2's, which descends from it (bertinetto/r2d2,
    ``fewshots/data/utils.py: convert_tensor``); ``(..., H, W)`` in [0, 1]."""
    return (1.0 - images).transpose(-1, -2).contiguous()
