"""Cityscapes fine annotations (19 train classes; 8 thing classes), from a copy the user already has.

Behind a login: set data.sources.cityscapes.local_path to the folder holding leftImg8bit/ and gtFine/,
or data.sources.cityscapes.urls to the two archives (gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip).
Labels come from *_gtFine_instanceIds.png: v < 1000 is a label id, v >= 1000 an instance of label v // 1000.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.sources import Archive, Item, Sample, Source
from pipeline.data.sources._common import check_values, read_label

# (label id, name, isthing) of the 19 evaluated classes, in train-id order
CLASSES = (
    (7, "road", 0), (8, "sidewalk", 0), (11, "building", 0), (12, "wall", 0), (13, "fence", 0),
    (17, "pole", 0), (19, "traffic light", 0), (20, "traffic sign", 0), (21, "vegetation", 0),
    (22, "terrain", 0), (23, "sky", 0), (24, "person", 1), (25, "rider", 1), (26, "car", 1),
    (27, "truck", 1), (28, "bus", 1), (31, "train", 1), (32, "motorcycle", 1), (33, "bicycle", 1),
)
_MAX_LABEL_ID = 33
_SUFFIX = "_leftImg8bit.png"


class Cityscapes(Source):
    """Cityscapes gtFine; nothing to download without the user's own archives."""

    name = "cityscapes"
    expected_images = {"train": 2975, "val": 500}
    archives = (Archive("gtFine_trainvaltest.zip", None), Archive("leftImg8bit_trainvaltest.zip", None))

    def categories(self, root: Path) -> list[dict]:
        """The 19 classes with their Cityscapes label ids."""
        return [{"id": i, "name": n, "isthing": t} for i, n, t in CLASSES]

    def items(self, root: Path, split: str) -> list[Item]:
        """leftImg8bit/<split>/<city>/*_leftImg8bit.png paired with gtFine/.../*_gtFine_instanceIds.png."""
        out = []
        for img in sorted((root / "leftImg8bit" / split).glob(f"*/*{_SUFFIX}")):
            stem = img.name.removesuffix(_SUFFIX)
            label = root / "gtFine" / split / img.parent.name / f"{stem}_gtFine_instanceIds.png"
            out.append(Item(split, stem, img, label))
        return out

    def load(self, item: Item, num_classes: int) -> Sample:
        """Stuff becomes one segment per class (id = index + 1), instances keep their ids, the rest void."""
        raw = read_label(item.label, "I").astype(np.int64)
        label_id = np.where(raw >= 1000, raw // 1000, raw)
        check_values(item.label, label_id, range(-1, _MAX_LABEL_ID + 1))
        to_index = np.full(_MAX_LABEL_ID + 2, -1, np.int64)  # slot -1 holds the license plate (-1)
        for index, (lid, _, _) in enumerate(CLASSES):
            to_index[lid] = index
        cls = to_index[label_id]
        seg = np.zeros(raw.shape, np.int32)
        segments = []
        for value in np.unique(raw[cls >= 0]):
            c = int(cls[raw == value][0])
            is_instance = value >= 1000
            seg_id = int(value) if is_instance else c + 1
            seg[raw == value] = seg_id
            # thing pixels without an instance id are a group of objects: a crowd region
            segments.append((seg_id, c, int(CLASSES[c][2] == 1 and not is_instance)))
        h, w = raw.shape
        return Sample(item.image, item.label, h, w, seg, segments)


SOURCE = Cityscapes()
