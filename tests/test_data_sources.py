"""Fetching from the mirror, verifying, and refusing bad data with a clear error."""

import shutil

import pytest

from benchmarks.harness.cli import main
from metarepro.data import DataError, fetch, verify
from metarepro.data.sources import DATASETS
from metarepro.data.store import tree_digest

from .conftest import SHARED

MIRROR = SHARED / "data"
needs_mirror = pytest.mark.skipif(not (MIRROR / "omniglot").exists(), reason=f"no local mirror at {MIRROR}")


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREPRO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("METAREPRO_MIRROR", str(MIRROR))
    return tmp_path / "data"


def test_tree_digest_matches_find_sort_sha256sum(tmp_path):
    """Against the shell recipe in the mirror's PROVENANCE.md, computed by hand."""
    import hashlib

    top = tmp_path / "top"
    (top / "b").mkdir(parents=True)
    (top / "a.txt").write_bytes(b"alpha")
    (top / "b" / "c.txt").write_bytes(b"gamma")
    (top / "B.txt").write_bytes(b"beta")  # uppercase sorts first bytewise
    lines = "".join(f"{hashlib.sha256(data).hexdigest()}  top/{name}\n"
                    for name, data in (("B.txt", b"beta"), ("a.txt", b"alpha"), ("b/c.txt", b"gamma")))
    assert tree_digest(top) == hashlib.sha256(lines.encode()).hexdigest()


@needs_mirror
def test_fetch_splits_and_omniglot_from_the_mirror_then_verify(data_env, capsys):
    assert main(["data", "fetch", "splits", "omniglot"]) == 0
    assert (data_env / "omniglot" / "images_evaluation").is_dir()
    assert len(list((data_env / "omniglot" / "images_background").glob("*/*/*.png"))) == 19280
    assert main(["data", "verify"]) == 0
    # a tampered split file and a deleted image are both found
    (data_env / "splits" / "omniglot" / "vinyals" / "test.txt").write_text("Tampered/character01/rot000\n")
    next((data_env / "omniglot" / "images_evaluation").glob("*/*/*.png")).unlink()
    problems = verify()
    assert len(problems) == 2
    assert any("test.txt" in p and "wrong digest" in p for p in problems)
    assert main(["data", "verify"]) == 1


@needs_mirror
def test_corrupt_zip_is_refused_and_nothing_is_installed(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "omniglot").mkdir(parents=True)
    blob = bytearray((MIRROR / "omniglot" / "images_background.zip").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (mirror / "omniglot" / "images_background.zip").write_bytes(bytes(blob))
    shutil.copy(MIRROR / "omniglot" / "images_evaluation.zip", mirror / "omniglot")
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"images_background\.zip: wrong digest"):
        fetch("omniglot", root=root, mirror=mirror, log=lambda *_: None)
    assert not (root / "omniglot").exists()
    assert not list(root.glob(".fetch-*")), "no scratch left behind"


def test_missing_mirror_file_and_unknown_dataset_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="missing from the mirror"):
        fetch("splits", root=tmp_path / "data", mirror=tmp_path / "empty", log=lambda *_: None)
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*omniglot"):
        fetch("imagenet", root=tmp_path / "data", mirror=tmp_path)


def test_every_source_names_an_upstream_and_a_sha256_or_published_digest():
    for dataset in DATASETS.values():
        assert dataset.files or dataset.manual, f"{dataset.name}: neither files to fetch nor instructions"
        for f in dataset.files:
            assert f.url.startswith("https://")
            assert f.digests and all(d.split(":")[0] in ("sha256", "md5") for d in f.digests)
            assert not f.archive or f.content_sha256 or "recorded on first fetch" in f.note
