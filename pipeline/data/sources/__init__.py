"""Registry of data sources: every module here that defines `SOURCE` is one (helpers start with `_`)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from pipeline.params import DataParams

SPLITS = ("train", "val")


class DataError(ValueError):
    """A bad input file (unreadable image, label outside the categories, size mismatch); names the file."""


# what PIL raises for a file it cannot decode: truncated or corrupt (OSError, ValueError, SyntaxError) and
# images over its pixel limit (DecompressionBombError, not an OSError); each makes the file a bad file
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class Archive:
    """One file a source downloads: official URL (None when behind a login) and 'algo:hex' checksum."""

    name: str
    url: str | None
    checksum: str | None = None


@dataclass(frozen=True)
class Item:
    """One image to convert, picklable for worker processes; `extra` holds source-specific values."""

    split: str
    name: str
    image: Path
    label: Path
    extra: tuple = ()
    image_id: int | None = None  # the source's own id (COCO's), kept when the source keeps_image_ids


@dataclass
class Sample:
    """A decoded image label: `segment_map` int32 [H,W] of segment ids (0 = void) and their classes.

    `segments` is a list of (segment_id, class_index, iscrowd); class_index is 0..K-1 (categories order).
    """

    image: Path
    label: Path
    height: int
    width: int
    segment_map: np.ndarray
    segments: list[tuple[int, int, int]] = field(default_factory=list)


class Source:
    """Base of a source: archives to download, categories, items per split and a decoder per item."""

    name: str = ""
    archives: tuple[Archive, ...] = ()
    expected_images: dict[str, int] = {}  # split -> images of the full official set (checked when known)
    keeps_image_ids = False  # True: the layout keeps the source's image ids (COCO's), else numbers 1..N

    def prepare(self, root: Path, data_params: DataParams) -> None:
        """Work after download/extraction (nested archives, generation); nothing by default."""

    def check_tree(self, root: Path) -> None:
        """A user's own folder (local_path) is read as it is, never written: DataError naming what is
        missing for the source's layout; nothing to check by default."""

    def find_root(self, base: Path) -> Path:
        """The folder holding the source's own layout, given the extraction folder or a local folder."""
        return base

    def categories(self, root: Path) -> list[dict]:
        """The class list, in contiguous order: dicts with id, name, isthing (and color)."""
        raise NotImplementedError

    def official_instances(self, root: Path, split: str) -> Path | None:
        """The source's own instance annotations of a split (a COCO instances JSON, overlapping masks and
        crowds as the reference evaluates mask AP against), used instead of the ones derived from the
        panoptic segments; None by default."""
        return None

    def items(self, root: Path, split: str) -> list[Item]:
        """The images of one split, sorted by name."""
        raise NotImplementedError

    def load(self, item: Item, num_classes: int) -> Sample:
        """Decode one item's label into a segment map; raise DataError naming the file if it is bad."""
        raise NotImplementedError


def _discover() -> dict[str, Source]:
    """Import every public module of this package and collect its SOURCE."""
    found: dict[str, Source] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{mod.name}")
        source = getattr(module, "SOURCE", None)
        if isinstance(source, Source):
            found[source.name] = source
    return found


def get_source(name: str) -> Source:
    """The registered source called `name`; a clear error listing the known ones otherwise."""
    if name not in SOURCES:
        raise KeyError(f"unknown data source {name!r} (known: {', '.join(sorted(SOURCES))})")
    return SOURCES[name]


SOURCES: dict[str, Source] = _discover()
