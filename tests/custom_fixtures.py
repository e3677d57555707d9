"""Tiny user data sets built on the fly: COCO instances JSON, COCO panoptic files, semantic label PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from data_fixtures import data_params
from PIL import Image

from maskformer.data.layout import id_to_rgb
from pipeline.params import DataParams

H, W = 24, 32
THING_CATEGORIES = [{"id": 7, "name": "cat"}, {"id": 42, "name": "dog", "supercategory": "animal"}]
STUFF_CATEGORIES = [{"id": 100, "name": "grass"}, {"id": 3, "name": "sky"}]


def write_images(folder: Path, names: list[str], seed: int = 0) -> None:
    """Random RGB images (H x W) called `names` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / name)


def _box(x: int, y: int, w: int, h: int) -> list[list[float]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """An uncompressed RLE (list counts, column-major) as CVAT writes it for crowd regions."""
    counts, current, run = [], 0, 0
    for value in mask.flatten(order="F").tolist():
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    return {"size": [H, W], "counts": [*counts, run]}


def coco_instances(folder: Path, n: int = 6, with_stuff: bool = False) -> dict[str, Path]:
    """images/, instances.json (polygons, one crowd RLE, categories 7 and 42) and stuff.json."""
    names = [f"img_{i}.jpg" for i in range(n)]
    write_images(folder / "images", names)
    images = [{"id": 10 + i, "file_name": name, "width": W, "height": H} for i, name in enumerate(names)]
    anns = []
    for i in range(n - 1):  # the last image has no annotations
        anns.append({"id": 100 + 2 * i, "image_id": 10 + i, "category_id": 7, "iscrowd": 0,
                     "segmentation": _box(2 + i, 3, 8, 6)})
        anns.append({"id": 101 + 2 * i, "image_id": 10 + i, "category_id": 42, "iscrowd": 0,
                     "segmentation": [[20, 2, 30, 4, 25, 12]]})
    crowd = np.zeros((H, W), bool)
    crowd[16:22, 4:14] = True
    anns.append({"id": 999, "image_id": 10, "category_id": 42, "iscrowd": 1,
                 "segmentation": _uncompressed_rle(crowd)})
    content = {"images": images, "annotations": anns, "categories": THING_CATEGORIES}
    (folder / "instances.json").write_text(json.dumps(content))
    files = {"images": folder / "images", "annotations": folder / "instances.json"}
    if with_stuff:
        stuff = [{"id": 500 + i, "image_id": 10 + i, "category_id": 100 if i % 2 else 3, "iscrowd": 0,
                  "segmentation": _box(0, 0, W, H // 2)} for i in range(n)]
        stuff.append({"id": 600, "image_id": 11, "category_id": 100, "segmentation": _box(0, 12, W, 12)})
        content = {"images": images, "annotations": stuff, "categories": STUFF_CATEGORIES}
        (folder / "stuff.json").write_text(json.dumps(content))
        files["stuff_annotations"] = folder / "stuff.json"
    return files


def coco_panoptic(folder: Path, n: int = 5) -> dict[str, Path]:
    """images/, panoptic.json and panoptic/ PNGs with categories 5 (thing) and 77 (stuff)."""
    names = [f"p{i}.png" for i in range(n)]
    write_images(folder / "images", names)
    (folder / "panoptic").mkdir()
    images, anns = [], []
    for i, name in enumerate(names):
        ids = np.zeros((H, W), np.int64)
        ids[H // 2:] = 1000 + i
        ids[2:8, 2 + i:10 + i] = 70000 + i
        Image.fromarray(id_to_rgb(ids)).save(folder / "panoptic" / name)
        images.append({"id": i + 1, "file_name": name, "width": W, "height": H})
        segments = [{"id": 1000 + i, "category_id": 77, "iscrowd": 0},
                    {"id": 70000 + i, "category_id": 5, "iscrowd": 0}]
        anns.append({"image_id": i + 1, "file_name": name, "segments_info": segments})
    cats = [{"id": 5, "name": "robot", "isthing": 1}, {"id": 77, "name": "floor", "isthing": 0}]
    content = {"images": images, "annotations": anns, "categories": cats}
    (folder / "panoptic.json").write_text(json.dumps(content))
    return {"images": folder / "images", "annotations": folder / "panoptic.json"}


CLASS_LIST = "# value name [r g b]\n\n0 background\n3 road 128 64 128\n9 traffic sign 220 220 0  # sparse\n"


def semantic_masks(folder: Path, n: int = 6, seed: int = 1) -> dict[str, Path]:
    """images/, labels/ (values 0, 3, 9 and 255 void; one as a palette PNG) and classes.txt."""
    names = [f"s{i}.jpg" for i in range(n)]
    write_images(folder / "images", names)
    (folder / "labels").mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        label = rng.choice(np.array([0, 3, 9, 255], np.uint8), (H, W))
        image = Image.fromarray(label, mode="P") if i == 0 else Image.fromarray(label)
        if i == 0:
            image.putpalette([200, 10, 10] * 256)
        image.save(folder / "labels" / f"s{i}.png")
    (folder / "classes.txt").write_text(CLASS_LIST)
    return {"images": folder / "images", "annotations": folder / "labels", "classes": folder / "classes.txt"}


def custom_params(tmp_path: Path, dataset: str, files: dict, **overrides: object) -> DataParams:
    """data_params with `files` (and any `custom` override) as data.custom, paths as strings."""
    custom = {k: v if v is None or isinstance(v, float | int) else str(v)
              for k, v in {**files, **overrides.pop("custom", {})}.items()}
    return data_params(tmp_path, dataset, custom=custom, **overrides)


def edit_json(path: Path, change: object) -> None:
    """Apply `change` to the parsed JSON file and write it back."""
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def annotation(content: dict, ann_id: int) -> dict:
    """The annotation of that id."""
    return next(a for a in content["annotations"] if a["id"] == ann_id)
