"""CUB-200-2011 (Wah et al. 2011): 200 bird species, 11,788 images (41 to 60 per class), resized to 84x84 RGB.

Images: ``CUB_200_2011.tgz`` from CaltechDATA (``metarepro data fetch cub``), extracted to
``<data root>/cub/CUB_200_2011/``::

    images/<NNN.Class_name>/<Class_Name>_<NNNN>_<id>.jpg   e.g. images/001.Black_footed_Albatross/...
    images.txt, classes.txt, image_class_labels.txt, train_test_split.txt, ...

A class is its folder name (``001.Black_footed_Albatross``); its images are the ``*.jpg`` files of
the folder, sorted by name. The class split is Chen et al.'s (2019, "A Closer Look at Few-shot
Classification"), 100 / 50 / 50 class folder names in torchmeta's json lists
(``torchmeta/datasets/assets/cub/{train,val,test}.json``, installed by ``metarepro data fetch
splits`` under ``splits/cub/torchmeta/``).

Resizing: images are converted to RGB (a few are grey) and resized to 84x84 with BILINEAR by
default: the filter of torchvision's ``transforms.Resize`` on PIL images, which torchmeta's and
learn2learn's CUB pipelines use. Chen et al.'s own test transform (which ALFA's cross-domain
setting follows) is ``Resize([96, 96])`` then ``CenterCrop(84)`` (``int(84 * 1.15) = 96``):
``crop_from=96`` reproduces it. The aspect ratio is not kept in either case, as in those pipelines.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from metarepro.data.pool import ImageCache, ImagePool, cache_path, decode_rgb, load_or_build, write_cache
from metarepro.data.store import DataError, data_root, require_split_file

SIZE = 84


def cub_dir(root: Path | None = None) -> Path:
    folder = Path(root or data_root()) / "cub" / "CUB_200_2011"
    if not (folder / "images").is_dir():
        raise DataError(f"CUB-200-2011 not found: {folder / 'images'} does not exist. Run `metarepro data fetch cub` "
                        f"(or extract CUB_200_2011.tgz into {folder.parent})")
    return folder


def list_images(folder: Path) -> dict[str, list[Path]]:
    """``{class folder name: [jpg, ...]}``, classes and files sorted by name."""
    classes = sorted(p for p in (folder / "images").iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{folder / 'images'} holds no class folders; the archive was not fully extracted: fetch it again")
    out = {}
    for c in classes:
        files = sorted(p for p in c.iterdir() if p.suffix.lower() == ".jpg" and not p.name.startswith("."))
        if not files:
            raise DataError(f"{c} holds no .jpg image; the dataset is incomplete: fetch it again")
        out[c.name] = files
    return out


def load_cache(root: Path | None = None, size: int = SIZE, resample: str = "bilinear", crop_from: int | None = None, log=print) -> ImageCache:
    """All 200 classes decoded once (module docstring), memory-mapped."""
    folder = cub_dir(root)
    groups = list_images(folder)
    class_dirs = [folder / "images" / c for c in groups]
    path = cache_path(f"cub-{size}-{resample}" + (f"-crop{crop_from}" if crop_from else ""), root)
    files = [f for fs in groups.values() for f in fs]

    def build() -> None:
        def fill(out: np.ndarray) -> None:
            for row, f in enumerate(files):
                out[row] = decode_rgb(f, str(f), size, resample, crop_from)

        write_cache(path, list(groups), [len(v) for v in groups.values()], [str(f.relative_to(folder)) for f in files],
                    (size, size, 3), fill, {"dataset": "cub", "format": "CUB_200_2011", "size": size, "resample": resample,
                                            "crop_from": crop_from, "source": str(folder / "images")}, class_dirs)

    return load_or_build(path, class_dirs, build, log)


def default_split_file(split: str, root: Path | None = None) -> Path:
    """``<data root>/splits/cub/torchmeta/<split>.json``, where ``metarepro data fetch splits`` puts it."""
    return Path(root or data_root()) / "splits" / "cub" / "torchmeta" / f"{split}.json"


def read_class_split(path: Path) -> list[str]:
    """Class folder names of a CUB split file (a json list, torchmeta's form)."""
    path = require_split_file(path)
    try:
        names = json.loads(path.read_text())
    except ValueError as err:
        raise DataError(f"{path}: not readable json ({err})") from err
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: expected a json list of class folder names like '001.Black_footed_Albatross'")
    return names


def cub_pool(split: str, root: Path | None = None, split_file: Path | None = None, size: int = SIZE, resample: str = "bilinear",
             crop_from: int | None = None, log=print) -> ImagePool:
    """The classes of one CUB split (Chen et al.'s by default), ``size`` x ``size`` x 3; class sizes differ."""
    cache = load_cache(root, size, resample, crop_from, log)
    split_file = Path(split_file or default_split_file(split, root))
    return ImagePool.from_split(cache, read_class_split(split_file), f"CUB split file {split_file}")
