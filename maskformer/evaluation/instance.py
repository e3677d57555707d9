"""COCO mask AP via pycocotools, imported lazily so the library imports without it."""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

# order of COCOeval.stats[:6]
_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def encode_masks(masks: np.ndarray | torch.Tensor) -> list[dict[str, Any]]:
    """Encode bool masks [N, H, W] as COCO RLE dicts whose `counts` is a str, so they serialise to JSON."""
    from pycocotools import mask as mask_util

    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks, dtype=np.uint8)
    if masks.ndim != 3:
        raise ValueError(f"expected masks [N, H, W], got shape {masks.shape}")
    if len(masks) == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    return [{"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in rles]


def _ground_truth(gt: Mapping[str, Any]) -> Any:
    """Build a pycocotools COCO object from a dict, filling `iscrowd`, `area` and `id` when missing."""
    from pycocotools import mask as mask_util
    from pycocotools.coco import COCO

    dataset = copy.deepcopy(dict(gt))
    for i, ann in enumerate(dataset["annotations"]):
        ann.setdefault("iscrowd", 0)
        ann.setdefault("id", i + 1)
        if "area" not in ann:
            ann["area"] = float(mask_util.area(ann["segmentation"]))
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def coco_mask_ap(gt: Mapping[str, Any], predictions: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Return AP, AP50, AP75, APs, APm, APl and per-class AP-<name> in percent (NaN where no ground truth).

    Args:
        gt: COCO dict with `images`, `categories` (`id`, `name`) and `annotations` (`image_id`,
            `category_id`, RLE `segmentation`, optional `iscrowd`/`area`/`id`).
        predictions: COCO results: `image_id`, `category_id`, RLE `segmentation`, `score`.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    # pycocotools prints progress; keep library output quiet
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _ground_truth(gt)
        # a bbox would make COCOeval use box areas for the small/medium/large split, as detectron2 notes
        results = [{k: v for k, v in p.items() if k != "bbox"} for p in copy.deepcopy(list(predictions))]
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes fails on an empty list; no detections simply score 0 wherever there is ground truth
            coco_dt = COCO()
            coco_dt.dataset = {"images": coco_gt.dataset["images"], "categories": [], "annotations": []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()

    # COCOeval writes -1 where there is no ground truth to score
    stats = zip(_METRICS, evaluator.stats[:6], strict=True)
    out = {name: 100.0 * float(s) if s >= 0 else math.nan for name, s in stats}
    # precision: [IoU thresholds, recall thresholds, classes, area ranges, max dets]; area "all", 100 dets
    precision = evaluator.eval["precision"]
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        name = coco_gt.cats[cat_id].get("name", str(cat_id))
        out[f"AP-{name}"] = 100.0 * float(p.mean()) if p.size else math.nan
    return out
