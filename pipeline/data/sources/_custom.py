"""A user's own data set: the `data.custom` params and the base of the sources that read those files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.data.sources import DataError, Item, Source
from pipeline.project import project_root

if TYPE_CHECKING:  # for annotations only: params.py imports this module, never the reverse at run time
    from pipeline.params import DataParams

CONFIG = "custom.json"  # in the source's root (data/raw/<dataset>/extracted): what `prepare` resolved


class CustomParams(BaseModel):
    """`data.custom`: where your own files are (a relative path is taken from the project root)."""

    model_config = ConfigDict(extra="forbid")

    images: str | None = Field(None, description="image folder of the train split (or of all data)")
    annotations: str | None = Field(None, description="its COCO JSON file, or its label PNG folder")
    masks: str | None = Field(None, description="custom_panoptic: panoptic PNG folder (default: JSON path "
                                                "without .json)")
    stuff_annotations: str | None = Field(None, description="coco_instances: optional stuff-region JSON")
    classes: str | None = Field(None, description="semantic_masks: the class list file")
    val_images: str | None = Field(None, description="a separate validation split (null: split the train "
                                                     "files by val_fraction)")
    val_annotations: str | None = None
    val_masks: str | None = None
    val_stuff_annotations: str | None = None
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of images drawn for val (data.seed)")
    ignore_value: int = Field(255, ge=0, description="semantic_masks: the void value of the label PNGs")


def _resolve(key: str, value: str, kind: str) -> str:
    """The absolute path of a data.custom key; DataError naming the key and the path if it is not there."""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else project_root() / path
    if not path.exists():
        raise DataError(f"data.custom.{key}: {path} does not exist")
    if (kind == "dir") != path.is_dir():
        raise DataError(f"data.custom.{key}: {path} is not a {'folder' if kind == 'dir' else 'file'}")
    return str(path)


def val_names(names: list[str], seed: int, fraction: float) -> set[str]:
    """The names drawn for val: round(fraction x N), at least 1 and at most N - 1, a permutation of the
    sorted names seeded with `seed` (so the same names and params always give the same split)."""
    if len(names) < 2:
        raise DataError(f"data.custom.val_fraction: {len(names)} image(s) cannot be split into train and "
                        "val; add images or give data.custom.val_images")
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    order = sorted(names)
    return {order[i] for i in np.random.default_rng(seed).permutation(len(order))[:count]}


class CustomSource(Source):
    """Base of the sources of a user's files: `prepare` checks data.custom and records it in custom.json,
    `items` reads the given val split or draws one from the train files."""

    required: tuple[str, ...] = ("images", "annotations")  # per-split keys (train, then val_<key>)
    optional: tuple[str, ...] = ()
    kinds: dict[str, str] = {}  # key -> "dir" or "file"
    uses_classes = False

    def default(self, key: str, files: dict[str, str]) -> str | None:
        """The value of an optional key left null (none by default)."""
        return None

    def _files(self, params: CustomParams, prefix: str) -> dict[str, str]:
        """The resolved paths of one split's keys (prefix '' = train, 'val_' = val)."""
        files: dict[str, str] = {}
        for key in (*self.required, *self.optional):
            value = getattr(params, prefix + key)
            if value is None and key in self.required:
                raise DataError(f"data.custom.{prefix}{key}: required for data.dataset: {self.name}")
            value = value if value is not None else self.default(key, files)
            if value is not None:
                files[key] = _resolve(prefix + key, value, self.kinds[key])
        return files

    def prepare(self, root: Path, data_params: DataParams) -> None:
        """Check data.custom for this source and write the resolved paths and split rule to custom.json."""
        params = data_params.custom
        keys = (*self.required, *self.optional)
        used = {*keys, *(f"val_{k}" for k in keys), "val_fraction", "ignore_value"}
        used |= {"classes"} if self.uses_classes else set()
        for key, value in params.model_dump().items():
            if key not in used and value is not None:
                raise DataError(f"data.custom.{key}: not used by data.dataset: {self.name} (it reads "
                                f"{', '.join(k for k in CustomParams.model_fields if k in used)})")
        has_val = any(getattr(params, f"val_{k}") is not None for k in keys)
        config = {
            "source": self.name, "seed": data_params.seed, "val_fraction": params.val_fraction,
            "ignore_value": params.ignore_value, "train": self._files(params, ""),
            "val": self._files(params, "val_") if has_val else None, "classes": None,
        }
        if self.uses_classes:
            if params.classes is None:
                raise DataError(f"data.custom.classes: required for data.dataset: {self.name}")
            config["classes"] = _resolve("classes", params.classes, "file")
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f"{CONFIG}.tmp"
        tmp.write_text(json.dumps(config, indent=1, sort_keys=True))
        tmp.replace(root / CONFIG)

    def check_tree(self, root: Path) -> None:
        """Own files are named in data.custom, never in data.sources.<name>.local_path."""
        raise DataError(f"data.sources.{self.name}.local_path: not used by {self.name}; name your files in "
                        "data.custom (images, annotations, ...)")

    def config(self, root: Path) -> dict:
        """What `prepare` recorded; DataError when the download stage has not run."""
        path = root / CONFIG
        if not path.is_file():
            raise DataError(f"{path}: missing; run `python -m pipeline download` first")
        return json.loads(path.read_text())

    def list_items(self, config: dict, files: dict[str, str], split: str) -> list[Item]:
        """The items of one set of files (a split's), sorted by name."""
        raise NotImplementedError

    def items(self, root: Path, split: str) -> list[Item]:
        """The split's own files, or its share of the train files (val_names) when no val split is given."""
        config = self.config(root)
        if config["val"] is not None:
            return self.list_items(config, config[split], split)
        every = self.list_items(config, config["train"], split)
        val = val_names([it.name for it in every], config["seed"], config["val_fraction"])
        return [it for it in every if (it.name in val) == (split == "val")]
