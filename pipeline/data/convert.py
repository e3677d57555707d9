"""Per-image conversion into the canonical layout: validate, write semantic/panoptic PNGs, RLE masks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from maskformer.data.layout import IGNORE, CanonicalLayout, id_to_rgb
from pipeline.data.sources import IMAGE_ERRORS, DataError, Item, get_source


@dataclass(frozen=True)
class ConvertJob:
    """One image to convert: its source, the layout to write into, the category (id, isthing) list."""

    source: str
    item: Item
    out: CanonicalLayout
    categories: tuple[tuple[int, int], ...]
    skip_bad_files: bool


def _image_size(path: Path) -> tuple[int, int]:
    """Fully decode an image to catch truncation; returns (height, width) or DataError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.height, im.width
    except IMAGE_ERRORS as exc:
        raise DataError(f"{path}: unreadable image: {exc}") from exc


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link `target` to `source` (no second copy of a large data set), copying where the file system
    cannot (another device, no link support)."""
    target.unlink(missing_ok=True)  # a half-written file of an interrupted run
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _save_png(array: np.ndarray, path: Path) -> str:
    """Write a PNG and return the sha256 of its bytes."""
    Image.fromarray(array).save(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _bbox(mask: np.ndarray) -> list[int]:
    """COCO [x, y, w, h] of a non-empty boolean mask."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def _convert(job: ConvertJob) -> dict:
    """Validate and convert one item; returns its JSON records (ids are assigned by the caller)."""
    item = job.item
    height, width = _image_size(item.image)
    sample = get_source(job.source).load(item, len(job.categories))
    if (sample.height, sample.width) != (height, width):
        raise DataError(f"{item.label}: label size {sample.width}x{sample.height} does not match "
                        f"image {item.image} ({width}x{height})")
    seg = sample.segment_map
    semantic = np.full(seg.shape, IGNORE, np.uint8)
    infos, instances = [], []
    for seg_id, cls, crowd in sample.segments:
        mask = seg == seg_id
        area = int(mask.sum())
        if area == 0:  # listed but not drawn: nothing to learn from it
            continue
        semantic[mask] = cls
        cat_id, isthing = job.categories[cls]
        record = {"id": int(seg_id), "category_id": cat_id, "iscrowd": int(crowd), "area": area,
                  "bbox": _bbox(mask)}
        infos.append(record)
        if isthing:
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            instances.append({**{k: record[k] for k in ("category_id", "iscrowd", "area", "bbox")},
                              "segmentation": rle})
    kept = np.isin(seg, [r["id"] for r in infos])
    panoptic = np.where(kept, seg, 0)
    split, out = item.split, job.out
    image_name = f"{item.name}{item.image.suffix.lower()}"
    image_path = out.image(split, image_name)
    link_or_copy(item.image, image_path)
    semantic_png, panoptic_png = out.semantic(split, item.name), out.panoptic_png(split, item.name)
    return {
        "image": {"file_name": image_name, "height": height, "width": width},
        "panoptic": {"file_name": panoptic_png.name, "segments_info": infos},
        "instances": instances,
        "hashes": {  # relative to the layout's root: the manifest is independent of where the data lies
            _relative(out, image_path): hashlib.sha256(item.image.read_bytes()).hexdigest(),
            _relative(out, semantic_png): _save_png(semantic, semantic_png),
            _relative(out, panoptic_png): _save_png(id_to_rgb(panoptic), panoptic_png),
        },
    }


def _relative(layout: CanonicalLayout, path: Path) -> str:
    return path.relative_to(layout.root).as_posix()


RECORDS = ".records"  # per-item results of an unfinished conversion, in the scratch layout


def record_path(out: CanonicalLayout, item: Item) -> Path:
    """Where the result of `item` is kept while a conversion is unfinished (removed when it ends)."""
    return out.root / RECORDS / item.split / f"{item.name}.json"


def _verified(path: Path, root: Path) -> dict | None:
    """A kept result whose files all exist with the hashes it lists; None if any is missing or differs."""
    try:
        result = json.loads(path.read_text())
        ok = all(hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest
                 for rel, digest in result.get("hashes", {}).items())
    except (OSError, ValueError):
        return None
    return result if ok else None


def convert(job: ConvertJob) -> dict:
    """Convert one item, or reuse its verified result from an interrupted run; a bad file raises DataError,
    or is reported as skipped when params allow. The result is kept on disk as soon as it exists."""
    record = record_path(job.out, job.item)
    kept = _verified(record, job.out.root) if record.is_file() else None
    if kept is not None:
        return kept
    try:
        result = _convert(job)
    except DataError as exc:
        if not job.skip_bad_files:
            raise
        result = {"skipped": str(exc)}
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(record)
    return result
