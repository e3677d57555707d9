"""A user's own COCO panoptic JSON + panoptic PNG folder + image folder (any category ids; isthing from
the JSON); decoded as the COCO panoptic layout is."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.sources import DataError, Item, Sample
from pipeline.data.sources._coco_layout import (
    field,
    load_panoptic,
    panoptic_categories,
    panoptic_items,
    read_json,
)
from pipeline.data.sources._custom import CustomSource

_KEYS = ("images", "annotations", "categories")
_WHAT = "a COCO panoptic JSON"
_MISSING = "missing"  # Item.extra of an image without an entry in 'annotations': (_MISSING, message)


class CustomPanoptic(CustomSource):
    """COCO panoptic files named in data.custom (annotations = the JSON, masks = the PNG folder)."""

    name = "custom_panoptic"
    optional = ("masks",)
    kinds = {"images": "dir", "annotations": "file", "masks": "dir"}

    def default(self, key: str, files: dict[str, str]) -> str | None:
        """masks: the JSON path without `.json`, as COCO names its PNG folders."""
        return str(Path(files["annotations"]).with_suffix("")) if key == "masks" else None

    def _category_list(self, files: dict[str, str]) -> list[dict]:
        """The categories of a JSON, in file order; each needs an id, a name and isthing."""
        path = Path(files["annotations"])
        content = read_json(path, _WHAT, _KEYS)
        for n, cat in enumerate(content["categories"]):
            for key in ("id", "name", "isthing"):
                field(cat, key, path, f"category #{n}")
        return panoptic_categories(content)

    def categories(self, root: Path) -> list[dict]:
        """The categories of the train JSON."""
        return self._category_list(self.config(root)["train"])

    def list_items(self, config: dict, files: dict[str, str], split: str) -> list[Item]:
        """The annotated images, and a failing item for each image the JSON leaves without annotation."""
        path = Path(files["annotations"])
        content = read_json(path, _WHAT, _KEYS)
        index = {c["id"]: i for i, c in enumerate(self._category_list(config["train"]))}
        imgdir, masks = Path(files["images"]), Path(files["masks"])
        out = panoptic_items(split, path, content, imgdir, masks, index)
        annotated = {it.image_id for it in out}
        for n, img in enumerate(content["images"]):
            image_id = field(img, "id", path, f"image #{n}")
            if image_id not in annotated:
                file_name = field(img, "file_name", path, f"image {image_id}")
                stem = Path(file_name).stem
                message = f"{path}: image {image_id} ({file_name}) has no entry in 'annotations'"
                out.append(Item(split, stem, imgdir / file_name, masks / f"{stem}.png", (_MISSING, message),
                                int(image_id)))
        names = [it.name for it in out]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise DataError(f"{path}: two images have the file name {twice} (names must be unique)")
        return sorted(out, key=lambda it: it.name)

    def load(self, item: Item, num_classes: int) -> Sample:
        """Decode the panoptic PNG (see load_panoptic); an image without annotation is a bad file."""
        if item.extra[:1] == (_MISSING,):
            raise DataError(item.extra[1])
        return load_panoptic(item, num_classes)


SOURCE = CustomPanoptic()
