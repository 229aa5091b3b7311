"""Data layer: pinned sources, fetch/verify, loaders and caches."""

from metarepro.data.sources import DATASETS
from metarepro.data.store import DataError, data_root, fetch, mirror_root, verify

__all__ = ["DATASETS", "DataError", "data_root", "fetch", "mirror_root", "verify"]
