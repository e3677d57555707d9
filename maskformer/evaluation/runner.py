"""Evaluation loops over a dataset: semantic metrics, and panoptic + instance metrics from one model."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from maskformer.engine.runtime import progress_bar
from maskformer.evaluation.components import per_pixel_panoptic
from maskformer.evaluation.instance import coco_mask_ap, encode_masks
from maskformer.evaluation.panoptic import PanopticEvaluator
from maskformer.evaluation.predict import Predictor
from maskformer.evaluation.semantic import SemSegEvaluator
from maskformer.inference import instance_inference, panoptic_inference

OnImage = Callable[[dict, dict], None]


def _progress(n: int, desc: str, enabled: bool):
    return progress_bar(range(n), desc=desc, disable=not enabled)


def evaluate_semantic(
    predictor: Predictor, dataset, on_image: OnImage | None = None, progress: bool = True
) -> tuple[dict[str, float], Tensor]:
    """mIoU, fwIoU, mACC, pACC and per-class IoU/ACC over a dataset (task "semantic" or any, via sem_seg).

    on_image(target, {"sem_seg": [H, W] class map}) receives every prediction (e.g. to write PNGs).
    Returns the metrics and the confusion matrix [K+1, K+1] (last row/column = ignore/void).
    """
    names = [c["name"] for c in dataset.categories]
    evaluator = SemSegEvaluator(dataset.num_classes, device=predictor.device, class_names=names)
    for i in _progress(len(dataset), "evaluate semantic", progress):
        image, target = dataset[i]
        pred = predictor.semantic(image).argmax(0)
        evaluator.update(pred, target["sem_seg"])
        if on_image is not None:
            on_image(target, {"sem_seg": pred})
    evaluator.synchronize()
    return evaluator.compute(), evaluator.conf_matrix.cpu()


def ground_truth_segments(target: dict) -> tuple[Tensor, list[dict]]:
    """A panoptic id map [H, W] (0 = void) and segment list from a target's masks and labels."""
    masks, labels = target["masks"], target["labels"]
    ids = torch.zeros(masks.shape[-2:], dtype=torch.int64)
    for k, mask in enumerate(masks):
        ids[mask] = k + 1
    return ids, [{"id": k + 1, "category_id": int(c)} for k, c in enumerate(labels)]


def segment(
    predictor: Predictor,
    image: Tensor,
    thing_ids: set[int],
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    topk: int = 100,
    component_min_area: int | None = None,
) -> tuple[Tensor, list[dict], dict[str, Tensor]]:
    """One image's panoptic id map, segments_info and instances (masks, scores, labels): MaskFormer's
    mask classification, or with `component_min_area` a per-pixel model's connected regions."""
    if component_min_area is not None:
        return per_pixel_panoptic(predictor.semantic(image), thing_ids, component_min_area)
    logits, masks = predictor.masks(image)
    pan_ids, segments = panoptic_inference(logits, masks, thing_ids, object_mask_threshold, overlap_threshold)
    return pan_ids, segments, instance_inference(logits, masks, topk, thing_ids)


def evaluate_masks(
    predictor: Predictor,
    dataset,
    coco_gt: Mapping[str, Any] | None,
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
    topk: int = 100,
    on_image: OnImage | None = None,
    progress: bool = True,
    component_min_area: int | None = None,
) -> dict[str, Any]:
    """Panoptic PQ/SQ/RQ and COCO mask AP of one MaskFormer over a panoptic-task dataset; with
    `component_min_area`, of a per-pixel model instead, its instances the connected regions of each thing
    class in its class map (at least that many pixels; the paper's comparison).

    Class ids are contiguous (0..K-1); COCO results use the dataset's category ids. on_image receives
    (target, {"panoptic": id map [H, W], "segments": [...], "instances": {masks, scores, labels}}).
    Returns {"panoptic_seg": ..., "panoptic_per_class": [...], "segm": ... or None, "results": [...]}.
    """
    categories = dataset.categories
    thing_ids = {k for k, c in enumerate(categories) if c["isthing"]}
    panoptic = PanopticEvaluator(
        [{"id": k, "isthing": c["isthing"], "name": c["name"]} for k, c in enumerate(categories)]
    )
    results: list[dict] = []
    for i in _progress(len(dataset), "evaluate panoptic+instance", progress):
        image, target = dataset[i]
        pan_ids, segments, instances = segment(
            predictor, image, thing_ids, object_mask_threshold, overlap_threshold, topk, component_min_area
        )
        gt_ids, gt_segments = ground_truth_segments(target)
        panoptic.update(pan_ids.cpu().numpy(), segments, gt_ids.numpy(), gt_segments)
        instances = {k: v.cpu() for k, v in instances.items()}
        for rle, score, label in zip(
            encode_masks(instances["masks"]),
            instances["scores"].tolist(),
            instances["labels"].tolist(),
            strict=True,
        ):
            results.append(
                {
                    "image_id": target["image_id"],
                    "category_id": categories[label]["id"],
                    "segmentation": rle,
                    "score": score,
                }
            )
        if on_image is not None:
            on_image(target, {"panoptic": pan_ids.cpu(), "segments": segments, "instances": instances})
    segm = coco_mask_ap(coco_gt, results) if coco_gt is not None and thing_ids else None
    return {
        "panoptic_seg": panoptic.compute(),
        "panoptic_per_class": panoptic.per_class(),
        "segm": segm,
        "results": results,
    }
