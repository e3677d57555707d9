"""Safe archive extraction: members outside the target, absolute paths and links are refused."""

from __future__ import annotations

import json
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder or is a link/device."""


class CorruptArchiveError(ValueError):
    """A truncated or otherwise unreadable archive."""


def _check_name(archive: Path, name: str) -> None:
    """Refuse absolute names, drive letters and any '..' component."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise UnsafeArchiveError(f"{archive.name}: refusing member {name!r}: outside the target folder")


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> None:
    """Validate every zip member before anything is written."""
    for info in zf.infolist():
        _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{archive.name}: refusing link member {info.filename!r}")


def _tar_members(archive: Path, tf: tarfile.TarFile) -> None:
    """Validate every tar member before anything is written."""
    for m in tf.getmembers():
        _check_name(archive, m.name)
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(f"{archive.name}: refusing link or special member {m.name!r}")


def _extract_to(archive: Path, dest: Path) -> None:
    """Extract all members of a zip or tar archive into `dest` after validating them."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _zip_members(archive, zf)
                zf.extractall(dest)
            return
        with tarfile.open(archive) as tf:
            _tar_members(archive, tf)
            tf.extractall(dest, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise CorruptArchiveError(f"{archive}: truncated or corrupt archive: {exc}") from exc


def _merge(src: Path, dst: Path) -> None:
    """Move the tree `src` into `dst`, merging folders that several archives share."""
    for entry in sorted(src.iterdir()):
        final = dst / entry.name
        if entry.is_dir() and final.is_dir():
            _merge(entry, final)
        else:
            if final.is_dir():
                shutil.rmtree(final)
            entry.replace(final)


def safe_extract(archive: Path, target: Path, checksum: str) -> bool:
    """Extract `archive` into `target` atomically; returns False when already extracted at this checksum.

    Members go to a scratch folder first and are moved in only when all of them were written, so a
    refused or truncated archive leaves nothing behind. A marker records what was extracted.
    """
    marker = target / ".extracted" / f"{archive.name}.json"
    if marker.is_file() and json.loads(marker.read_text()).get("checksum") == checksum:
        return False
    target.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.{archive.name}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        _extract_to(archive, scratch)
        _merge(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"checksum": checksum}))
    return True
