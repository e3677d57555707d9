"""A COCO instances JSON (CVAT / Label Studio / Roboflow export) with optional stuff regions from a second
COCO JSON; things are painted in annotation order (an earlier segment keeps its pixels), then crowd
regions, then stuff (one segment per class, on pixels no thing claimed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from pipeline.data.sources import DataError, Item, Sample
from pipeline.data.sources._coco_layout import field, read_json
from pipeline.data.sources._custom import CustomSource

TOLERANCE = 1.0  # px a polygon point may lie outside the image (exporters round coordinates)
_KEYS = ("images", "annotations", "categories")
_WHAT = "a COCO instances JSON"


def _categories(path: Path, content: dict, isthing: int) -> list[dict]:
    """The categories of a COCO JSON in file order, all things or all stuff."""
    out = []
    for n, cat in enumerate(content["categories"]):
        record = {"id": int(field(cat, "id", path, f"category #{n}")),
                  "name": str(field(cat, "name", path, f"category #{n}")), "isthing": isthing}
        out.append({**record, **{k: cat[k] for k in ("color", "supercategory") if k in cat}})
    return out


def _polygons(seg: list, height: int, width: int) -> list[list[float]]:
    """Polygons checked: flat [x, y, ...] lists of >= 3 points inside the image (+ TOLERANCE)."""
    for poly in seg:
        if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or \
                not all(isinstance(v, (int, float)) for v in poly):
            raise ValueError(f"a polygon is not a list of >= 3 x, y points: {str(poly)[:60]}")
        for x, y in zip(poly[::2], poly[1::2], strict=True):
            if not (-TOLERANCE <= x <= width + TOLERANCE and -TOLERANCE <= y <= height + TOLERANCE):
                raise ValueError(f"polygon point ({x}, {y}) outside the {width}x{height} image "
                                 f"(tolerance {TOLERANCE:g} px)")
    return seg


def rle_counts(text: str) -> list[int]:
    """The run lengths of a compressed RLE string (pycocotools' format: 5 bits a character, deltas from
    the third run on), so a bad one is caught before pycocotools decodes it without bounds checks."""
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise ValueError("RLE counts string ends inside a number")
            c = ord(text[pos]) - 48
            value |= (c & 0x1F) << shift
            more, pos, shift = bool(c & 0x20), pos + 1, shift + 5
            if not more and c & 0x10:
                value |= -1 << shift
        counts.append(value + (counts[-2] if len(counts) > 2 else 0))
    return counts


def _rle(seg: dict, height: int, width: int) -> dict:
    """A compressed RLE of an RLE segmentation (string counts, or list counts as CVAT writes them)."""
    if list(seg.get("size", ())) != [height, width]:
        raise ValueError(f"RLE size {seg.get('size')} differs from the image's [{height}, {width}]")
    counts = seg.get("counts")
    if not isinstance(counts, list | str):
        raise ValueError("RLE counts are neither a string nor a list")
    runs = counts if isinstance(counts, list) else rle_counts(counts)
    if sum(runs) != height * width or min(runs, default=0) < 0:
        raise ValueError(f"RLE counts sum to {sum(runs)}, the image has {height * width} pixels")
    if isinstance(counts, list):
        return mask_utils.frPyObjects(seg, height, width)
    return {"size": [height, width], "counts": counts.encode()}


def rasterise(seg: object, height: int, width: int) -> np.ndarray:
    """The bool [H,W] mask of a COCO segmentation (polygons or RLE); ValueError saying what is wrong."""
    if isinstance(seg, list) and seg:
        rles = mask_utils.frPyObjects(_polygons(seg, height, width), height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(seg, dict):
        rle = _rle(seg, height, width)
    else:
        raise ValueError("no segmentation (polygons or RLE)")
    return mask_utils.decode(rle).astype(bool)


def _annotations(path: Path, content: dict, index: dict[int, int], key_of: dict) -> dict[object, list[tuple]]:
    """The annotations per image (`key_of`: this JSON's image id -> the instances JSON's): (json, id,
    class index or -1, category id, iscrowd, segmentation as JSON)."""
    out: dict[object, list[tuple]] = {}
    for n, ann in enumerate(content["annotations"]):
        ann_id = ann.get("id", f"#{n}") if isinstance(ann, dict) else f"#{n}"
        image_id = field(ann, "image_id", path, f"annotation {ann_id}")
        if image_id not in key_of:
            raise DataError(f"{path}: annotation {ann_id}: image id {image_id} is not in its 'images'")
        cat = ann.get("category_id")
        out.setdefault(key_of[image_id], []).append(
            (str(path), ann_id, index.get(cat, -1), cat, int(ann.get("iscrowd", 0)),
             json.dumps(ann.get("segmentation"))))
    return out


def _images(path: Path, content: dict) -> dict[object, dict]:
    """The image records by id, with the keys every one needs."""
    images = {}
    for n, img in enumerate(content["images"]):
        images[field(img, "id", path, f"image #{n}")] = {
            k: field(img, k, path, f"image #{n}") for k in ("id", "file_name", "width", "height")}
    return images


class CocoInstances(CustomSource):
    """Things from a COCO instances JSON, plus stuff from `stuff_annotations` when given."""

    name = "coco_instances"
    optional = ("stuff_annotations",)
    kinds = {"images": "dir", "annotations": "file", "stuff_annotations": "file"}

    def _category_list(self, files: dict[str, str]) -> list[dict]:
        """Things of the instances JSON, then stuff of the stuff JSON; ids must not repeat."""
        things = _categories(Path(files["annotations"]), read_json(files["annotations"], _WHAT, _KEYS), 1)
        stuff = []
        if "stuff_annotations" in files:
            stuff = _categories(Path(files["stuff_annotations"]),
                                read_json(files["stuff_annotations"], _WHAT, _KEYS), 0)
        ids = [c["id"] for c in things + stuff]
        if len(set(ids)) != len(ids):
            twice = next(i for i in ids if ids.count(i) > 1)
            raise DataError(f"{files.get('stuff_annotations', files['annotations'])}: category id {twice} "
                            "is listed twice (the thing and stuff categories share one id space)")
        return things + stuff

    def categories(self, root: Path) -> list[dict]:
        """The categories of the train files, things first (names and ids from the files)."""
        return self._category_list(self.config(root)["train"])

    def _stuff(self, files: dict[str, str], images: dict[object, dict], index: dict[int, int]) -> dict:
        """Stuff annotations per image id of the instances JSON (images matched by file_name)."""
        path = Path(files["stuff_annotations"])
        content = read_json(path, _WHAT, _KEYS)
        by_name = {img["file_name"]: image_id for image_id, img in images.items()}
        key_of = {}
        for image_id, img in _images(path, content).items():
            if img["file_name"] not in by_name:
                raise DataError(f"{path}: image {image_id} ({img['file_name']}) is not in "
                                f"{files['annotations']}")
            key_of[image_id] = by_name[img["file_name"]]
        return _annotations(path, content, index, key_of)

    def list_items(self, config: dict, files: dict[str, str], split: str) -> list[Item]:
        """One item per image of the instances JSON, carrying its thing and stuff annotations."""
        path = Path(files["annotations"])
        content = read_json(path, _WHAT, _KEYS)
        categories = self._category_list(config["train"])
        images = _images(path, content)
        kinds = [{c["id"]: i for i, c in enumerate(categories) if c["isthing"] == t} for t in (1, 0)]
        things = _annotations(path, content, kinds[0], {i: i for i in images})
        stuff = self._stuff(files, images, kinds[1]) if "stuff_annotations" in files else {}
        imgdir, out, seen = Path(files["images"]), [], {}
        for image_id, img in images.items():
            name = Path(img["file_name"]).with_suffix("").as_posix().replace("/", "__")
            if name in seen:
                raise DataError(f"{path}: images {seen[name]} and {image_id} have the same file name {name}")
            seen[name] = image_id
            image = imgdir / img["file_name"]
            if not image.is_file() and (imgdir / Path(img["file_name"]).name).is_file():
                image = imgdir / Path(img["file_name"]).name  # an exporter's folder prefix
            extra = (int(img["height"]), int(img["width"]), tuple(things.get(image_id, ())),
                     tuple(stuff.get(image_id, ())))
            out.append(Item(split, name, image, Path(f"{path}#image_id={image_id}"), extra))
        return sorted(out, key=lambda it: it.name)

    def load(self, item: Item, num_classes: int) -> Sample:
        """Paint the non-crowd things, the crowd regions, then stuff; each annotation checked first."""
        height, width, things, stuff = item.extra
        order = [(False, a) for a in sorted(things, key=lambda a: a[4])] + [(True, a) for a in stuff]
        seg = np.zeros((height, width), np.int32)
        segments: list[tuple[int, int, int]] = []
        stuff_ids: dict[int, int] = {}
        for is_stuff, (path, ann_id, cls, cat, crowd, raw) in order:
            where = f"{path}: annotation {ann_id} (image {item.image.name})"
            if cls < 0:
                raise DataError(f"{where}: category id {cat} is not in the categories")
            try:
                mask = rasterise(json.loads(raw), height, width)
            except (ValueError, TypeError) as exc:  # pycocotools rejects malformed input with these
                raise DataError(f"{where}: {exc}") from exc
            seg_id = stuff_ids.get(cls) if is_stuff else None
            if seg_id is None:
                seg_id = len(segments) + 1
                segments.append((seg_id, cls, 0 if is_stuff else crowd))
                if is_stuff:
                    stuff_ids[cls] = seg_id
            seg[mask & (seg == 0)] = seg_id
        return Sample(item.image, item.label, height, width, seg, segments)


SOURCE = CocoInstances()
