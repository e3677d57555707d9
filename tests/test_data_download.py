"""Download stage against a local HTTP server: full, resumed, refused, unsafe and repeated downloads."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import zipfile

import numpy as np
import pytest
from data_fixtures import FixtureServer, ade_archive, data_params, md5

from pipeline.data.extract import CorruptArchiveError, UnsafeArchiveError, safe_extract
from pipeline.data.http import ChecksumError, DownloadError, fetch
from pipeline.stages.download import download

PAYLOAD = bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))


@pytest.fixture
def server():
    with FixtureServer() as srv:
        srv.files["/f.bin"] = PAYLOAD
        yield srv


def test_full_download_verifies_and_renames(server, tmp_path):
    dest = fetch(server.url("/f.bin"), tmp_path / "f.bin", md5(PAYLOAD), chunk_bytes=4096)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "f.bin.part").exists()
    assert (tmp_path / "f.bin.verified").is_file()


def test_cut_download_resumes_with_range(server, tmp_path):
    half = len(PAYLOAD) // 2
    server.cut_next["/f.bin"] = half
    with pytest.raises(DownloadError, match="failed after 1 attempts"):
        fetch(server.url("/f.bin"), tmp_path / "f.bin", md5(PAYLOAD), retries=0)
    part = tmp_path / "f.bin.part"
    assert part.stat().st_size == half and not (tmp_path / "f.bin").exists()
    dest = fetch(server.url("/f.bin"), tmp_path / "f.bin", md5(PAYLOAD), retries=0)
    assert server.requests[-1] == ("/f.bin", f"bytes={half}-")
    assert hashlib.md5(dest.read_bytes()).hexdigest() == hashlib.md5(PAYLOAD).hexdigest()
    # within one call, a cut connection is retried and resumed too
    server.cut_next["/f.bin"] = 1000
    dest2 = fetch(server.url("/f.bin"), tmp_path / "g.bin", md5(PAYLOAD), retries=2, backoff_s=0)
    assert dest2.read_bytes() == PAYLOAD and server.requests[-1] == ("/f.bin", "bytes=1000-")


def test_checksum_mismatch_is_refused_and_leaves_nothing(server, tmp_path):
    wrong = "md5:" + "0" * 32
    with pytest.raises(ChecksumError, match="checksum mismatch: expected md5:0000"):
        fetch(server.url("/f.bin"), tmp_path / "f.bin", wrong)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("/nope.zip"), tmp_path / "nope.zip", retries=0)


def _zip_with(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok/fine.txt", b"fine")
        zf.writestr(name, b"evil")
    return buf.getvalue()


@pytest.mark.parametrize("member", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_unsafe_zip_member_is_refused(tmp_path, member):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip_with(member))
    target = tmp_path / "out" / "extracted"
    with pytest.raises(UnsafeArchiveError, match="outside the target"):
        safe_extract(archive, target, "x")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert list(target.iterdir()) == []  # refused before anything was written


def test_tar_link_is_refused(tmp_path):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        link = tarfile.TarInfo("ok/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UnsafeArchiveError, match="link"):
        safe_extract(archive, tmp_path / "out", "x")


def test_truncated_archive_is_refused_and_leaves_nothing(tmp_path):
    data = ade_archive({"train/a": np.ones((8, 8), np.uint8)})
    archive = tmp_path / "ADEChallengeData2016.zip"
    archive.write_bytes(data[: len(data) // 2])
    params = data_params(tmp_path, "ade20k", sources={"ade20k": {"urls": {archive.name: str(archive)},
                                                                 "checksums": {archive.name: None}}})
    with pytest.raises(CorruptArchiveError, match="truncated or corrupt"):
        download(params)
    extracted = tmp_path / "data" / "raw" / "ade20k" / "extracted"
    assert not any(p.is_file() for p in extracted.rglob("*"))


def _ade_params(tmp_path, server):
    data = ade_archive({"train/a": np.ones((8, 8), np.uint8), "val/b": np.full((8, 8), 2, np.uint8)})
    server.files["/ade/ADEChallengeData2016.zip"] = data
    name = "ADEChallengeData2016.zip"
    return data_params(tmp_path, "ade20k", sources={"ade20k": {"urls": {name: server.url(f"/ade/{name}")},
                                                               "checksums": {name: md5(data)}}})


def test_stage_downloads_extracts_and_second_run_downloads_nothing(server, tmp_path):
    params = _ade_params(tmp_path, server)
    root = download(params)
    assert (root / "images" / "training" / "a.jpg").is_file()
    assert (root / "annotations" / "validation" / "b.png").is_file()
    n = len(server.requests)
    assert download(params) == root
    assert len(server.requests) == n  # verified copy found: nothing fetched
    shutil.rmtree(tmp_path / "data" / "raw")  # what DVC does to the stage's out before it reruns the stage
    assert (download(params) / "images" / "training" / "a.jpg").is_file()
    assert len(server.requests) == n  # extracted again from the kept archive: still nothing fetched


def test_mirror_with_official_checksum_is_refused(server, tmp_path):
    params = _ade_params(tmp_path, server)
    params.sources["ade20k"].checksums.clear()  # the official md5 cannot match the fixture archive
    with pytest.raises(ChecksumError, match="7328b3957e407ddae1d3cbf487f149ef"):
        download(params)
    assert not list((tmp_path / "data" / "downloads" / "ade20k").iterdir())


def test_local_archive_stands_in_for_url(tmp_path):
    data = ade_archive({"train/a": np.ones((8, 8), np.uint8)})
    archive = tmp_path / "mine.zip"
    archive.write_bytes(data)
    name = "ADEChallengeData2016.zip"
    params = data_params(tmp_path, "ade20k", sources={"ade20k": {"urls": {name: f"file://{archive}"},
                                                                 "checksums": {name: md5(data)}}})
    assert (download(params) / "images" / "training" / "a.jpg").is_file()


def test_login_source_without_local_copy_says_what_to_set(tmp_path):
    with pytest.raises(DownloadError, match="data.sources.cityscapes.local_path"):
        download(data_params(tmp_path, "cityscapes"))
