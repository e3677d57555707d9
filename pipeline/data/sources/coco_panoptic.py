"""COCO 2017 panoptic (133 classes: 80 things, 53 stuff): official images, panoptic annotations and, for
evaluating mask AP as published, the official instance annotations of val2017.

Checksums: md5 sums published with the COCO 2017 archives (as used by several public download
scripts, e.g. intel/neural-compressor and torchvision-style COCO loaders).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.data.extract import safe_extract
from pipeline.data.sources import Archive, DataError
from pipeline.data.sources._coco_layout import CocoPanopticLayout

if TYPE_CHECKING:
    from pipeline.params import DataParams


class CocoPanoptic(CocoPanopticLayout):
    """COCO panoptic 2017; the annotation archive holds nested zips of PNGs, extracted in `prepare`."""

    name = "coco_panoptic"
    expected_images = {"train": 118287, "val": 5000}
    keeps_image_ids = True  # predictions then score against the official JSON files as they are
    split_dirs = {"train": "train2017", "val": "val2017"}
    archives = (
        Archive("train2017.zip", "http://images.cocodataset.org/zips/train2017.zip",
                "md5:cced6f7f71b7629ddf16f17bbcfab6b2"),
        Archive("val2017.zip", "http://images.cocodataset.org/zips/val2017.zip",
                "md5:442b8da7639aecaf257c1dceb8ba8c80"),
        Archive("panoptic_annotations_trainval2017.zip",
                "http://images.cocodataset.org/annotations/panoptic_annotations_trainval2017.zip",
                "md5:4170db65fc022c9c296af880dbca6055"),
        Archive("annotations_trainval2017.zip",  # instances_*2017.json: what mask AP is published against
                "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
                "md5:f4bbac642086de4f52a3fdda2de5fa2c"),
    )

    def prepare(self, root: Path, data_params: DataParams) -> None:
        """Extract annotations/panoptic_<split>2017.zip (PNG folders) next to the JSON files."""
        for imgdir in self.split_dirs.values():
            nested = root / "annotations" / f"panoptic_{imgdir}.zip"
            if nested.is_file():
                st = nested.stat()  # its parent archive was verified; size and mtime identify it
                safe_extract(nested, root / "annotations", f"stat:{st.st_size}:{st.st_mtime_ns}")

    def check_tree(self, root: Path) -> None:
        """A detectron2-style coco/ folder needs its panoptic PNG folders extracted already."""
        for imgdir in self.split_dirs.values():
            pngs = root / "annotations" / f"panoptic_{imgdir}"
            if not pngs.is_dir():
                raise DataError(f"{pngs}: missing; extract annotations/panoptic_{imgdir}.zip there (a "
                                "local_path folder is read as it is, never written)")

    def official_instances(self, root: Path, split: str) -> Path | None:
        """instances_val2017.json when present (the validation split: evaluation's ground truth; training
        keeps the panoptic masks)."""
        path = root / "annotations" / f"instances_{self.split_dirs[split]}.json"
        return path if split == "val" and path.is_file() else None

    def find_root(self, base: Path) -> Path:
        """A local folder may be the COCO root itself or hold a `coco` folder."""
        return base / "coco" if (base / "coco" / "annotations").is_dir() else base


SOURCE = CocoPanoptic()
