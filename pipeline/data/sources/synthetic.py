"""The default source: generated shape scenes written in the COCO panoptic layout (no network needed).

Deterministic: image i of a split depends only on (seed, split, i), never on worker order, and the
PNG/JSON writers are byte-stable, so the same params give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pydantic
from PIL import Image
from pydantic import ConfigDict, Field

from maskformer.data.layout import id_to_rgb
from pipeline.data.pool import parallel_map
from pipeline.data.sources import SPLITS
from pipeline.data.sources._coco_layout import CocoPanopticLayout
from pipeline.data.sources._shapes import CLASS_NAMES, THINGS, SceneSpec, draw_scene

if TYPE_CHECKING:  # for annotations only: params.py imports this module, never the reverse at run time
    from pipeline.params import DataParams

@pydantic.dataclasses.dataclass(config=ConfigDict(extra="forbid"), frozen=True)
class SyntheticParams(SceneSpec):
    """`data.synthetic`: the scene spec (defaults keep the whole pipeline short on 2 CPUs) and split sizes."""

    num_train: int = Field(1000, gt=0)
    num_val: int = Field(50, gt=0)


_PALETTE = ((220, 20, 60), (0, 0, 142), (250, 170, 30), (119, 11, 32), (70, 130, 180), (152, 251, 152))
_MARKER = ".synthetic.json"


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to draw and write one image."""

    root: Path
    split: str
    index: int
    seed: int
    spec: SceneSpec


def _draw(job: _Job) -> dict:
    """Draw image `index` of `split`, write its image and panoptic PNG; return its JSON records."""
    rng = np.random.default_rng([job.seed, SPLITS.index(job.split), job.index])
    image, seg, segments = draw_scene(rng, job.spec)
    name = f"{job.split}_{job.index:06d}"
    Image.fromarray(image).save(job.root / job.split / f"{name}.png")
    Image.fromarray(id_to_rgb(seg)).save(job.root / "annotations" / f"panoptic_{job.split}" / f"{name}.png")
    infos = []
    for seg_id, cls, crowd in segments:
        ys, xs = np.nonzero(seg == seg_id)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        infos.append({"id": seg_id, "category_id": cls + 1, "iscrowd": crowd, "area": len(xs), "bbox": bbox})
    size = job.spec.image_size
    return {
        "image": {"id": job.index, "file_name": f"{name}.png", "height": size, "width": size},
        "annotation": {"image_id": job.index, "file_name": f"{name}.png", "segments_info": infos},
    }


def categories() -> list[dict]:
    """The synthetic classes: 4 thing shapes, then 2 stuff textures (ids 1..6)."""
    return [{"id": i + 1, "name": n, "isthing": int(n in THINGS), "color": list(_PALETTE[i]),
             "supercategory": "shape" if n in THINGS else "background"} for i, n in enumerate(CLASS_NAMES)]


class Synthetic(CocoPanopticLayout):
    """Generated scenes; `prepare` (run by the download stage) writes them unless already there."""

    name = "synthetic"
    split_dirs = {"train": "train", "val": "val"}

    def prepare(self, root: Path, data_params: DataParams) -> None:
        """Generate the set into `root` (atomically) unless the same params already made it."""
        recipe = {"seed": data_params.seed, **dataclasses.asdict(data_params.synthetic)}
        marker = root / _MARKER
        if marker.is_file() and json.loads(marker.read_text()) == recipe:
            return
        scratch = root.with_name(root.name + ".tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            self._generate(scratch, data_params)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        (scratch / _MARKER).write_text(json.dumps(recipe, sort_keys=True))
        shutil.rmtree(root, ignore_errors=True)
        scratch.rename(root)

    def _generate(self, scratch: Path, data_params: DataParams) -> None:
        """Draw both splits into `scratch` and write their panoptic JSON files."""
        p = data_params.synthetic
        counts = {"train": p.num_train, "val": p.num_val}
        for split in SPLITS:
            (scratch / split).mkdir(parents=True)
            (scratch / "annotations" / f"panoptic_{split}").mkdir(parents=True)
            jobs = [_Job(scratch, split, i, data_params.seed, p) for i in range(counts[split])]
            records = parallel_map(_draw, jobs, data_params.num_workers, f"synthetic {split}")
            content = {
                "info": {"description": "MaskFormer pipeline synthetic shapes", "seed": data_params.seed},
                "images": [r["image"] for r in records],
                "annotations": [r["annotation"] for r in records],
                "categories": categories(),
            }
            (scratch / "annotations" / f"panoptic_{split}.json").write_text(json.dumps(content, indent=1))


SOURCE = Synthetic()
