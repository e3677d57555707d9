"""Reader of the COCO panoptic raw layout, shared by `coco_panoptic`, the generated `synthetic` set and
a user's own panoptic files (`custom_panoptic`).

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


def read_json(path: Path, what: str, keys: tuple[str, ...] = ()) -> dict:
    """Parse a JSON file that must hold the list `keys`; DataError naming the file otherwise."""
    try:
        content = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read {what}: {exc}") from exc
    for key in keys:
        if not isinstance(content, dict) or not isinstance(content.get(key), list):
            raise DataError(f"{path}: no '{key}' list: not {what}")
    return content


def field(record: dict, key: str, path: Path, what: str) -> object:
    """`record[key]`, or a DataError naming the file and the record (`what`) that lacks it."""
    if not isinstance(record, dict) or key not in record:
        raise DataError(f"{path}: {what} lacks '{key}'")
    return record[key]


def panoptic_categories(content: dict) -> list[dict]:
    """The categories of a panoptic JSON with the keys the layout keeps."""
    keys = ("id", "name", "isthing", "color", "supercategory")
    return [{k: c[k] for k in keys if k in c} for c in content["categories"]]


def panoptic_items(split: str, path: Path, content: dict, imgdir: Path, labeldir: Path,
                   index: dict[int, int]) -> list[Item]:
    """One item per annotated image; the segments (id, class index or -1, iscrowd) ride along."""
    images = {field(img, "id", path, f"image #{n}"): img for n, img in enumerate(content["images"])}
    out = []
    for n, ann in enumerate(content["annotations"]):
        what = f"annotation #{n}"
        image = images.get(field(ann, "image_id", path, what))
        if image is None:
            raise DataError(f"{path}: annotation for unknown image id {ann['image_id']}")
        file_name = field(image, "file_name", path, f"image {ann['image_id']}")
        segs = tuple((field(s, "id", path, what), index.get(field(s, "category_id", path, what), -1),
                      int(s.get("iscrowd", 0))) for s in field(ann, "segments_info", path, what))
        out.append(Item(split, Path(file_name).stem, imgdir / file_name,
                        labeldir / field(ann, "file_name", path, what), segs, int(ann["image_id"])))
    return sorted(out, key=lambda it: it.name)


def load_panoptic(item: Item, num_classes: int) -> Sample:
    """Decode the RGB-encoded PNG; every id must be a listed segment of a known category."""
    ids = rgb_to_id(read_label(item.label, "RGB"))
    bad_class = [s for s in item.extra if not 0 <= s[1] < num_classes]
    if bad_class:
        raise DataError(f"{item.label}: segment {bad_class[0][0]} has a category outside the categories")
    check_values(item.label, ids, {0} | {s[0] for s in item.extra})
    h, w = ids.shape
    return Sample(item.image, item.label, h, w, ids.astype(np.int32), list(item.extra))


class CocoPanopticLayout(Source):
    """A source stored in the COCO panoptic layout; `split_dirs` maps train/val to the image folders."""

    split_dirs: dict[str, str] = {}

    def _json(self, root: Path, split: str) -> tuple[Path, dict]:
        """The panoptic JSON of a split and its parsed content."""
        path = root / "annotations" / f"panoptic_{self.split_dirs[split]}.json"
        return path, read_json(path, "panoptic annotations")

    def categories(self, root: Path) -> list[dict]:
        """Categories as listed in the train JSON (the order defines the contiguous class index)."""
        return panoptic_categories(self._json(root, "train")[1])

    def items(self, root: Path, split: str) -> list[Item]:
        """The annotated images of the split's JSON."""
        path, content = self._json(root, split)
        index = {c["id"]: i for i, c in enumerate(self.categories(root))}
        labeldir = root / "annotations" / f"panoptic_{self.split_dirs[split]}"
        return panoptic_items(split, path, content, root / self.split_dirs[split], labeldir, index)

    def load(self, item: Item, num_classes: int) -> Sample:
        """See load_panoptic."""
        return load_panoptic(item, num_classes)
