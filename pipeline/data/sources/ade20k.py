"""ADE20K scene parsing (ADEChallengeData2016): 150 classes, semantic labels only.

Label PNGs hold 0 (= "other", ignored) and 1..150. Semantic-only, so every class is written as stuff
(one panoptic segment per class present; the instance annotations are empty).
Checksum: md5 of ADEChallengeData2016.zip as used by torchvision-style ADE20K loaders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data.sources import Archive, Item, Sample, Source
from pipeline.data.sources._common import check_values, read_label

CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
    "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole", "land",
    "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
_SPLIT_DIRS = {"train": "training", "val": "validation"}


class ADE20k(Source):
    """ADEChallengeData2016 from MIT scene parsing."""

    name = "ade20k"
    expected_images = {"train": 20210, "val": 2000}
    archives = (
        Archive("ADEChallengeData2016.zip", "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip",
                "md5:7328b3957e407ddae1d3cbf487f149ef"),
    )

    def find_root(self, base: Path) -> Path:
        """The archive holds one ADEChallengeData2016 folder; a local path may be either level."""
        inner = base / "ADEChallengeData2016"
        return inner if inner.is_dir() else base

    def categories(self, root: Path) -> list[dict]:
        """The 150 classes; ids 1..150 as in the label PNGs."""
        return [{"id": i + 1, "name": n, "isthing": 0} for i, n in enumerate(CLASSES)]

    def items(self, root: Path, split: str) -> list[Item]:
        """images/<training|validation>/*.jpg paired with annotations/<...>/*.png by name."""
        imgdir = root / "images" / _SPLIT_DIRS[split]
        labeldir = root / "annotations" / _SPLIT_DIRS[split]
        return [Item(split, p.stem, p, labeldir / f"{p.stem}.png") for p in sorted(imgdir.glob("*.jpg"))]

    def load(self, item: Item, num_classes: int) -> Sample:
        """Label value v becomes class v-1 with segment id v; 0 is void."""
        label = read_label(item.label, "L").astype(np.int32)
        check_values(item.label, label, range(num_classes + 1))
        present = [int(v) for v in np.unique(label) if v > 0]
        h, w = label.shape
        return Sample(item.image, item.label, h, w, label, [(v, v - 1, 0) for v in present])


SOURCE = ADE20k()
