"""Resumable, verified HTTP downloads: Range resume, retries with backoff, checksum, atomic rename."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

_RETRY_HTTP = {408, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A file that could not be fetched after all retries, or a server answer that makes no sense."""


class ChecksumError(DownloadError):
    """The bytes on disk do not match the expected checksum."""


class _IncompleteError(Exception):
    """The connection ended before the announced length arrived (retried)."""


def file_hash(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks so archives of any size fit in memory."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, checksum: str | None) -> str:
    """Check `path` against 'algo:hex' (md5, sha1, sha256); returns 'algo:hex' of the file.

    With no expected checksum the sha256 is returned so it can be recorded.
    """
    algo, _, expected = (checksum or "sha256:").partition(":")
    actual = file_hash(path, algo)
    if expected and actual.lower() != expected.lower():
        raise ChecksumError(f"{path.name}: checksum mismatch: expected {algo}:{expected}, got {actual}")
    return f"{algo}:{actual}"


def _stamp(path: Path) -> Path:
    """The sidecar that records a verified file's checksum, size and mtime."""
    return path.with_name(path.name + ".verified")


def is_verified(path: Path, checksum: str | None) -> bool:
    """True when `path` was verified before and has not changed since (no re-hash of big archives)."""
    stamp = _stamp(path)
    if not (path.is_file() and stamp.is_file()):
        return False
    rec = json.loads(stamp.read_text())
    st = path.stat()
    same_file = rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns
    return same_file and (checksum is None or rec.get("checksum", "").lower() == checksum.lower())


def _record(path: Path, checksum: str) -> None:
    """Write the verified sidecar of `path`."""
    st = path.stat()
    rec = {"checksum": checksum, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _stamp(path).write_text(json.dumps(rec))


def local_source(url: str) -> Path | None:
    """The local path a 'URL' names (plain path or file://), or None for a remote URL."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    return Path(parsed.path) if parsed.scheme == "file" else Path(url)


def _stream(url: str, part: Path, timeout: float, chunk: int) -> None:
    """One attempt: GET from the end of `part` (Range) and append until the announced length."""
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the part is complete (checked later)
            return
        raise
    with resp:
        if start and resp.status != 206:  # server ignored Range: start over
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"
        with open(part, mode) as f, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                         desc=part.name.removesuffix(".part"), leave=False) as bar:
            while block := resp.read(chunk):
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise _IncompleteError(f"got {part.stat().st_size} of {total} bytes")


def fetch(url: str, dest: Path, checksum: str | None = None, *, retries: int = 5, backoff_s: float = 1.0,
          timeout_s: float = 60.0, chunk_bytes: int = 1 << 20) -> Path:
    """Download `url` to `dest` unless a verified copy is there; returns `dest`.

    Partial data lives in `dest.part` and is resumed with an HTTP Range request; only a complete,
    verified file is renamed into place, and a checksum mismatch deletes the partial file.
    """
    if is_verified(dest, checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _stream(url, part, timeout_s, chunk_bytes)
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in _RETRY_HTTP or attempt == retries:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException, _IncompleteError) as exc:
            if attempt == retries:
                raise DownloadError(f"{url}: failed after {retries + 1} attempts: {exc}") from exc
        time.sleep(backoff_s * 2**attempt)
    try:
        actual = verify(part, checksum)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    _record(dest, actual)
    return dest


def check_local(src: Path, checksum: str | None = None) -> Path:
    """Verify a local archive standing in for a URL; it is used in place, nothing is copied."""
    if not src.is_file():
        raise DownloadError(f"{src}: local archive not found")
    if not is_verified(src, checksum):
        verify(src, checksum)
    return src

