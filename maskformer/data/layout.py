"""The canonical on-disk layout of a processed data set: where each file lives, and the panoptic id code.

    <root>/images/<split>/<file>                     the images
    <root>/semantic/<split>/<stem>.png               uint8 class index 0..K-1, 255 = ignore
    <root>/annotations/instances_<split>.json        COCO instances (RLE), things only
    <root>/annotations/panoptic_<split>.json         COCO panoptic (segments_info, categories)
    <root>/annotations/panoptic_<split>/<stem>.png   COCO panoptic PNG, id = R + 256 G + 256^2 B
    <root>/manifest.json                             counts, classes, source, params, hashes
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IGNORE = 255  # semantic label of unlabeled pixels (and of padding)


@dataclass(frozen=True)
class CanonicalLayout:
    """Paths of one processed data set rooted at `root` (the writer, the dataset and the report share it)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    def image_dir(self, split: str) -> Path:
        return self.root / "images" / split

    def semantic_dir(self, split: str) -> Path:
        return self.root / "semantic" / split

    def panoptic_dir(self, split: str) -> Path:
        return self.root / "annotations" / f"panoptic_{split}"

    def panoptic_json(self, split: str) -> Path:
        return self.root / "annotations" / f"panoptic_{split}.json"

    def instances_json(self, split: str) -> Path:
        return self.root / "annotations" / f"instances_{split}.json"

    def image(self, split: str, file_name: str) -> Path:
        return self.image_dir(split) / file_name

    def semantic(self, split: str, stem: str) -> Path:
        return self.semantic_dir(split) / f"{stem}.png"

    def panoptic_png(self, split: str, stem: str) -> Path:
        return self.panoptic_dir(split) / f"{stem}.png"


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG colour [..., 3] to segment id: R + 256 G + 256^2 B (int64)."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids to the COCO panoptic PNG colour uint8 [..., 3] (the inverse of rgb_to_id)."""
    ids = ids.astype(np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)
