"""File checks shared by the sources: every read names the file when it fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.sources import IMAGE_ERRORS, DataError


def read_label(path: Path, mode: str) -> np.ndarray:
    """Decode a label PNG fully in `mode` ('L', 'I' or 'RGB'); DataError naming the file if unreadable.
    A palette PNG read as 'L' or 'I' gives its indices (the label ids), never luminance."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == mode or (im.mode == "P" and mode in ("L", "I")):
                return np.asarray(im)
            return np.asarray(im.convert(mode))
    except IMAGE_ERRORS as exc:
        raise DataError(f"{path}: unreadable label: {exc}") from exc


def check_values(path: Path, values: np.ndarray, allowed: set[int] | range) -> None:
    """Every value of the label must be allowed; otherwise name the file and the first bad value."""
    bad = [int(v) for v in np.unique(values) if int(v) not in allowed]
    if bad:
        raise DataError(f"{path}: label id {bad[0]} outside the categories ({len(bad)} bad ids)")
