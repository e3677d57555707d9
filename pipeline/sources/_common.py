"""File checks shared by the sources: every read names the file when it fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.sources import DataError


def read_label(path: Path, mode: str) -> np.ndarray:
    """Decode a label PNG fully in `mode` ('L', 'I' or 'RGB'); DataError naming the file if unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert(mode) if im.mode != mode else im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: unreadable label: {exc}") from exc


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colour to segment id: R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(seg: np.ndarray) -> np.ndarray:
    """Segment ids to the COCO panoptic PNG colour (the inverse of rgb_to_id)."""
    seg = seg.astype(np.int64)
    return np.stack([seg % 256, seg // 256 % 256, seg // 65536 % 256], axis=-1).astype(np.uint8)


def check_values(path: Path, values: np.ndarray, allowed: set[int] | range) -> None:
    """Every value of the label must be allowed; otherwise name the file and the first bad value."""
    bad = [int(v) for v in np.unique(values) if int(v) not in allowed]
    if bad:
        raise DataError(f"{path}: label id {bad[0]} outside the categories ({len(bad)} bad ids)")
