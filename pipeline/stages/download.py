"""Stage `download`: fetch, verify and safely extract the chosen source (or generate the synthetic set)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.data.extract import safe_extract
from pipeline.data.http import DownloadError, check_local, fetch, local_source
from pipeline.data.sources import get_source
from pipeline.locks import exclusive
from pipeline.outputs import download_dir, lock_file, raw_dir
from pipeline.params import DataParams, Params
from pipeline.stages.runner import run_stage

log = logging.getLogger(__name__)


def source_root(params: DataParams) -> Path:
    """Where the chosen source's own layout lives: the user's local folder or data/raw/<name>/extracted."""
    source = get_source(params.dataset)
    local = params.source().local_path
    if local and Path(local).is_dir():
        return source.find_root(Path(local))
    return source.find_root(raw_dir(params) / "extracted")


def download(params: DataParams) -> Path:
    """Make the chosen source available on disk and return the folder the preprocess stage reads.

    Remote archives go to data/downloads/<name>/ (resumed, verified, skipped when already verified;
    outside the stage's DVC out, so a rerun never fetches them again) and are extracted into
    data/raw/<name>/extracted/. A URL override may name a local archive, and
    `local_path` may name a folder (used in place) or an archive (extracted).
    """
    source, settings = get_source(params.dataset), params.source()
    raw = raw_dir(params)
    extracted = raw / "extracted"
    local = Path(settings.local_path) if settings.local_path else None
    if local is not None and local.is_dir():
        log.info("%s: using the local folder %s", source.name, local)
    elif local is not None:
        archive = check_local(local)
        safe_extract(archive, extracted, f"stat:{archive.stat().st_size}:{archive.stat().st_mtime_ns}")
    else:
        for spec in source.archives:
            url = settings.urls.get(spec.name, spec.url)
            if url is None:
                raise DownloadError(
                    f"{source.name}: {spec.name} needs a login; set data.sources.{source.name}.local_path "
                    f"(a folder or archive you have) or data.sources.{source.name}.urls.{spec.name}")
            checksum = settings.checksums.get(spec.name, spec.checksum)
            path = local_source(url)
            if path is not None:
                archive = check_local(path, checksum)
            else:
                d, folder = params.download, download_dir(params)
                with exclusive(lock_file(folder), f"{source.name}: another run is downloading into {folder}: "
                                                  "waiting for it"):  # then its verified copy is reused
                    archive = fetch(url, folder / spec.name, checksum, retries=d.retries,
                                    backoff_s=d.backoff_s, timeout_s=d.timeout_s, chunk_bytes=d.chunk_bytes)
            st = archive.stat()
            safe_extract(archive, extracted, checksum or f"stat:{st.st_size}:{st.st_mtime_ns}")
    root = source_root(params)
    if local is not None and local.is_dir():
        source.check_tree(root)  # the user's folder: read as it is, never written
    else:
        source.prepare(root, params)
    return root


def _run(params: Params, run: Any) -> str:
    return f"{params.data.dataset} ready at {download(params.data)}"


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline download [--params params.yaml]`."""
    return run_stage("download", __doc__, params_path, argv, _run)
