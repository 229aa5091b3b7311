"""Fetch datasets from their upstream or a local mirror, verify, extract atomically.

The data root is ``data/`` in the checkout, or ``$METAREPRO_DATA``. With
``$METAREPRO_MIRROR`` set, files are taken from that directory (laid out as
``../shared/data``) instead of their upstream URLs. Either way every file is
checked against the digests pinned in :mod:`metarepro.data.sources`, archives
are checked for their extracted content, and nothing is moved into the data
root until it has passed: an interrupted or refused fetch leaves nothing
half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

from metarepro.atomic import atomic_write_text
from metarepro.data.sources import DATASETS, Dataset, SourceFile

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ".metarepro-manifest.json"


class DataError(RuntimeError):
    """Missing, corrupt or mismatched data; the message names the file and the fix."""


def data_root() -> Path:
    return Path(os.environ.get("METAREPRO_DATA", PROJECT_ROOT / "data"))


def require_split_file(path: Path) -> Path:
    """``path``, or a DataError that says how to get the split files."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"split file {path} not found: run `metarepro data fetch splits` (METAREPRO_MIRROR=../shared/data "
                        "for the local mirror)")
    return path


def mirror_root() -> Path | None:
    mirror = os.environ.get("METAREPRO_MIRROR")
    return Path(mirror) if mirror else None


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_digest(path: Path, accepted: tuple[str, ...]) -> str:
    """Return the accepted ``"algorithm:hex"`` that ``path`` matches, or raise."""
    found = {}
    for spec in accepted:
        algorithm, expected = spec.split(":", 1)
        found.setdefault(algorithm, file_digest(path, algorithm))
        if found[algorithm] == expected:
            return spec
    shown = ", ".join(f"{a}:{h}" for a, h in found.items())
    raise DataError(f"{path}: wrong digest. Expected one of {', '.join(accepted)}; found {shown}. "
                    "The file is corrupt or not the published one: delete it and fetch again.")


def tree_digest(folder: Path) -> str:
    """sha256 of ``"<sha256>  <folder name>/<path>"`` lines, sorted bytewise.

    The same as ``find NAME -type f -print0 | LC_ALL=C sort -z | xargs -0
    sha256sum | sha256sum`` run in the folder's parent.
    """
    folder = Path(folder)
    paths = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: str(p.relative_to(folder.parent)).encode())
    lines = "".join(f"{file_digest(p)}  {p.relative_to(folder.parent)}\n" for p in paths)
    return hashlib.sha256(lines.encode()).hexdigest()


def _obtain(file: SourceFile, scratch: Path, mirror: Path | None) -> tuple[Path, str]:
    """The file in ``scratch`` (copied from the mirror or downloaded) and its source."""
    local = scratch / Path(file.mirror_path).name
    if mirror is not None:
        src = mirror / file.mirror_path
        if not src.exists():
            raise DataError(f"{src} is missing from the mirror METAREPRO_MIRROR={mirror}; "
                            f"unset METAREPRO_MIRROR to download {file.url}")
        shutil.copyfile(src, local)
        return local, str(src)
    try:
        with urllib.request.urlopen(file.url, timeout=60) as response, open(local, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as err:
        raise DataError(f"could not download {file.url} ({err}); set METAREPRO_MIRROR to a local copy "
                        "(e.g. ../shared/data)") from err
    return local, file.url


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def _extract_tar(archive: Path, out: Path) -> None:
    """Extract a (gzipped) tar; members that would land outside ``out``, links and devices are refused."""
    try:
        with tarfile.open(archive, "r:*") as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(out, filter="data")
                return
            for member in t.getmembers():
                target = (out / member.name).resolve()
                if not (member.isfile() or member.isdir()) or not str(target).startswith(str(out.resolve())):
                    raise DataError(f"{archive}: refusing member {member.name!r} (a link, a device or a path outside the archive)")
            t.extractall(out)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(f"{archive} is not a readable tar archive ({err}); fetch it again") from err


def _extract(archive: Path, file: SourceFile, scratch: Path) -> tuple[Path, str]:
    """Extract ``archive``; return its top folder and content digest, checked against the pin if there is one."""
    out = scratch / "extracted"
    if file.mirror_path.endswith(TAR_SUFFIXES):
        _extract_tar(archive, out)
    else:
        try:
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad is not None:
                    raise DataError(f"{archive}: member {bad} is corrupt (CRC mismatch); fetch the archive again")
                z.extractall(out)
        except zipfile.BadZipFile as err:
            raise DataError(f"{archive} is not a readable zip ({err}); fetch it again") from err
    top = out / Path(file.target).name
    if not top.is_dir():
        found = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        raise DataError(f"{archive}: expected a top folder {top.name}/ inside, found {found}")
    digest = tree_digest(top)
    if file.content_sha256 and digest != file.content_sha256:
        raise DataError(f"{archive}: extracted content digest {digest} differs from the pinned {file.content_sha256}")
    return top, digest


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _write_manifest(root: Path, manifest: dict) -> None:
    atomic_write_text(root / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def fetch(name: str, root: Path | None = None, mirror: Path | None = None, log=print) -> list[Path]:
    """Fetch, verify and install every file of dataset ``name``; skip what is already there."""
    dataset = get_dataset(name)
    if not dataset.files and dataset.manual:
        raise DataError(f"{name} cannot be fetched: {dataset.manual}")
    root = Path(root or data_root())
    mirror = mirror if mirror is not None else mirror_root()
    root.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(root)
    installed = []
    for file in dataset.files:
        target = root / file.target
        if target.exists() and file.target in manifest:
            installed.append(target)
            continue
        with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as scratch:
            local, source = _obtain(file, Path(scratch), mirror)
            matched = check_digest(local, file.digests)
            payload, content = _extract(local, file, Path(scratch)) if file.archive else (local, None)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # present but unrecorded: replace it with the verified copy
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(payload, target)
        # the content digest found: the pinned one, or for an archive without a pin the one recorded now
        manifest[file.target] = {"source": source, "digest": matched, "content_sha256": content}
        _write_manifest(root, manifest)
        log(f"  {file.target}: {matched.split(':')[0]} ok ({source})")
        if file.archive and not file.content_sha256:
            log(f"  {file.target}: content digest {content} recorded on first fetch (no pinned value)")
        installed.append(target)
    return installed


def verify(root: Path | None = None, log=print) -> list[str]:
    """Re-check everything fetched under the data root; return the problems found."""
    root = Path(root or data_root())
    manifest = _read_manifest(root)
    files = {f.target: f for d in DATASETS.values() for f in d.files}
    problems = []
    for target in sorted(manifest):
        found = _check_installed(root, target, files.get(target), manifest[target])
        if found:
            problems.append(found)
        else:
            log(f"  ok  {target}")
    return problems


def _check_installed(root: Path, target: str, file: SourceFile | None, recorded: dict | None = None) -> str | None:
    """What is wrong with one installed target, or None.

    An archive's tree is checked against its pinned content digest, or, without a pin, the one
    recorded in the manifest when it was first fetched.
    """
    path = root / target
    if file is None:
        return f"{target}: recorded in {MANIFEST} but no longer a known source"
    if not path.exists():
        return f"{path} is missing: run `metarepro data fetch` again"
    if file.archive:
        expected = file.content_sha256 or (recorded or {}).get("content_sha256")
        if not expected:
            return f"{path}: no content digest pinned or recorded; delete it and fetch it again"
        digest = tree_digest(path)
        if digest != expected:
            kind = "pinned" if file.content_sha256 else "recorded on first fetch"
            return f"{path}: content digest {digest}, {kind} {expected}; fetch it again"
        return None
    try:
        check_digest(path, tuple(d for d in file.digests if d.startswith("sha256:")))
    except DataError as err:
        return str(err)
    return None
