"""Reader of the COCO panoptic raw layout, shared by `coco_panoptic` and the generated `synthetic` set.

Layout: <root>/<imgdir>/<image>, <root>/annotations/panoptic_<imgdir>.json and
<root>/annotations/panoptic_<imgdir>/<png>, with one <imgdir> per split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from maskformer.data.layout import rgb_to_id
from pipeline.data.sources import DataError, Item, Sample, Source
from pipeline.data.sources._common import check_values, read_label


class CocoPanopticLayout(Source):
    """A source stored in the COCO panoptic layout; `split_dirs` maps train/val to the image folders."""

    split_dirs: dict[str, str] = {}

    def _json(self, root: Path, split: str) -> tuple[Path, dict]:
        """The panoptic JSON of a split and its parsed content."""
        path = root / "annotations" / f"panoptic_{self.split_dirs[split]}.json"
        try:
            return path, json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read panoptic annotations: {exc}") from exc

    def categories(self, root: Path) -> list[dict]:
        """Categories as listed in the train JSON (the order defines the contiguous class index)."""
        _, content = self._json(root, "train")
        keys = ("id", "name", "isthing", "color", "supercategory")
        return [{k: c[k] for k in keys if k in c} for c in content["categories"]]

    def items(self, root: Path, split: str) -> list[Item]:
        """One item per annotated image; the segments (id, class index or -1, iscrowd) ride along."""
        path, content = self._json(root, split)
        index = {c["id"]: i for i, c in enumerate(self.categories(root))}
        images = {img["id"]: img for img in content["images"]}
        imgdir = root / self.split_dirs[split]
        labeldir = root / "annotations" / f"panoptic_{self.split_dirs[split]}"
        out = []
        for ann in content["annotations"]:
            image = images.get(ann["image_id"])
            if image is None:
                raise DataError(f"{path}: annotation for unknown image id {ann['image_id']}")
            segs = tuple((s["id"], index.get(s["category_id"], -1), int(s.get("iscrowd", 0)))
                         for s in ann["segments_info"])
            out.append(Item(split, Path(image["file_name"]).stem, imgdir / image["file_name"],
                            labeldir / ann["file_name"], segs, int(ann["image_id"])))
        return sorted(out, key=lambda it: it.name)

    def load(self, item: Item, num_classes: int) -> Sample:
        """Decode the RGB-encoded PNG; every id must be a listed segment of a known category."""
        ids = rgb_to_id(read_label(item.label, "RGB"))
        bad_class = [s for s in item.extra if not 0 <= s[1] < num_classes]
        if bad_class:
            raise DataError(f"{item.label}: segment {bad_class[0][0]} has a category outside the categories")
        check_values(item.label, ids, {0} | {s[0] for s in item.extra})
        h, w = ids.shape
        return Sample(item.image, item.label, h, w, ids.astype(np.int32), list(item.extra))
