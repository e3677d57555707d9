"""A folder of images + a folder of label PNGs (same stem) + a class list; every class is stuff (semantic
only, one panoptic segment per class present), as ade20k is.

Class list: a text file, one class per line, `<value> <name>` or `<value> <name> <r> <g> <b>` (value = the
pixel value in the label PNGs, sparse values allowed; a name may hold spaces, a name ending in three
numbers 0-255 is read as name + colour); `#` starts a comment, blank lines are ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.sources import IMAGE_ERRORS, DataError, Item, Sample
from pipeline.data.sources._common import read_label
from pipeline.data.sources._custom import CustomSource

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_FORMAT = "expected '<value> <name>' or '<value> <name> <r> <g> <b>'"


def parse_classes(path: Path, ignore_value: int) -> list[dict]:
    """The categories of a class list file (id = pixel value, isthing 0, colour when given); DataError
    naming the file and line of a bad line, a repeated value or name, or the void value."""
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the class list: {exc}") from exc
    out: list[dict] = []
    for number, line in enumerate(lines, 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        where = f"{path}:{number}"
        if len(tokens) < 2 or not tokens[0].isdigit():
            raise DataError(f"{where}: {_FORMAT}, got {line.strip()!r}")
        value, rest, color = int(tokens[0]), tokens[1:], None
        if len(rest) >= 4 and all(t.isdigit() for t in rest[-3:]):
            color = [int(t) for t in rest[-3:]]
            rest = rest[:-3]
            if max(color) > 255:
                raise DataError(f"{where}: colour {color} outside 0-255")
        name = " ".join(rest)
        if value == ignore_value:
            raise DataError(f"{where}: value {value} is data.custom.ignore_value (the void value)")
        for key, new in (("id", value), ("name", name)):
            if any(c[key] == new for c in out):
                raise DataError(f"{where}: class {key} {new!r} listed twice")
        out.append({"id": value, "name": name, "isthing": 0, **({"color": color} if color else {})})
    if not out:
        raise DataError(f"{path}: no classes ({_FORMAT})")
    return out


def _mode(path: Path) -> str:
    """The PIL mode of a label PNG; DataError naming the file if it is missing or unreadable."""
    if not path.is_file():
        raise DataError(f"{path}: missing: no label PNG for the image of that name")
    try:
        with Image.open(path) as im:
            return im.mode
    except IMAGE_ERRORS as exc:
        raise DataError(f"{path}: unreadable label: {exc}") from exc


class SemanticMasks(CustomSource):
    """images/<stem>.<ext> with annotations/<stem>.png; the classes from data.custom.classes."""

    name = "semantic_masks"
    kinds = {"images": "dir", "annotations": "dir"}
    uses_classes = True

    def categories(self, root: Path) -> list[dict]:
        """The class list, in file order (the contiguous class index)."""
        config = self.config(root)
        return parse_classes(Path(config["classes"]), config["ignore_value"])

    def list_items(self, config: dict, files: dict[str, str], split: str) -> list[Item]:
        """Every image of the folder (not its subfolders) with the label PNG of the same stem."""
        values = tuple(c["id"] for c in parse_classes(Path(config["classes"]), config["ignore_value"]))
        images = sorted(p for p in Path(files["images"]).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        stems = [p.stem for p in images]
        if len(set(stems)) != len(stems):
            twice = next(s for s in stems if stems.count(s) > 1)
            raise DataError(f"{files['images']}: two images named {twice}.* (one label PNG each is needed)")
        labels = Path(files["annotations"])
        return [Item(split, p.stem, p, labels / f"{p.stem}.png", (config["ignore_value"], values))
                for p in images]

    def load(self, item: Item, num_classes: int) -> Sample:
        """Value v becomes the class of v in the list (segment id = index + 1); ignore_value is void."""
        ignore, values = item.extra
        if _mode(item.label) not in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise DataError(f"{item.label}: a {_mode(item.label)} label PNG; label PNGs hold one value per "
                            "pixel (greyscale, 16-bit or palette), not colours")
        label = read_label(item.label, "I").astype(np.int64)
        present = [int(v) for v in np.unique(label) if v != ignore]
        bad = [v for v in present if v not in values]
        if bad:
            raise DataError(f"{item.label}: label value {bad[0]} is not in the class list ({len(bad)} "
                            f"unknown values; void is {ignore})")
        seg = np.zeros(label.shape, np.int32)
        segments = []
        for value in present:
            index = values.index(value)
            seg[label == value] = index + 1
            segments.append((index + 1, index, 0))
        h, w = label.shape
        return Sample(item.image, item.label, h, w, seg, segments)


SOURCE = SemanticMasks()
