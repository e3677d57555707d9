"""Time our semantic (mIoU), panoptic (PQ) and instance (mask AP) evaluation on a fixed set of predictions.

Each timing covers post-processing of the model outputs plus the metric: semantic_inference + argmax +
SemSegEvaluator; panoptic_inference + PanopticEvaluator; instance_inference + RLE + COCO mask AP.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from benchmarks.common import random_batch
from maskformer.evaluation import PanopticEvaluator, SemSegEvaluator, coco_mask_ap, encode_masks
from maskformer.evaluation.runner import ground_truth_segments
from maskformer.inference import instance_inference, panoptic_inference, semantic_inference

NUM_CLASSES, NUM_QUERIES, NUM_THINGS = 150, 100, 100  # ADE20K panoptic: 100 thing, 50 stuff classes


def fixed_predictions(images: int, size: int, device: torch.device) -> list[tuple[dict, Tensor, Tensor]]:
    """Per image: target (labels, masks), class logits [Q, K+1] and mask logits [Q, H, W] that find most
    ground-truth segments with shifted masks and some wrong classes (deterministic)."""
    _, targets = random_batch(images, size, NUM_CLASSES, seed=1)
    gen = torch.Generator().manual_seed(2)
    out = []
    for target in targets:
        n = len(target["labels"])
        logits = torch.randn(NUM_QUERIES, NUM_CLASSES + 1, generator=gen)
        logits[:, -1] += 6.0  # unused queries predict "no object"
        labels = torch.where(torch.rand(n, generator=gen) < 0.8, target["labels"],
                             torch.randint(0, NUM_CLASSES, (n,), generator=gen))
        logits[torch.arange(n), -1] -= 6.0
        logits[torch.arange(n), labels] += 8.0
        masks = torch.randn(NUM_QUERIES, size, size, generator=gen) - 8.0
        shift = torch.randint(-size // 32, size // 32 + 1, (n, 2), generator=gen).tolist()
        masks[:n] += 16.0 * torch.stack([m.roll(s, dims=(0, 1)) for m, s in zip(target["masks"], shift,
                                                                               strict=True)]).float()
        out.append((target, logits.to(device), masks.to(device)))
    return out


def _semantic(preds: list[tuple[dict, Tensor, Tensor]]) -> dict[str, float]:
    evaluator = SemSegEvaluator(NUM_CLASSES)
    for target, logits, masks in preds:
        gt = ground_truth_segments(target)[0]
        sem_gt = torch.where(gt > 0, target["labels"][(gt - 1).clamp(min=0)], torch.full_like(gt, 255))
        evaluator.update(semantic_inference(logits, masks).argmax(0), sem_gt.to(logits.device))
    return {"sem_seg/mIoU": evaluator.compute()["mIoU"]}


def _panoptic(preds: list[tuple[dict, Tensor, Tensor]]) -> dict[str, float]:
    evaluator = PanopticEvaluator([{"id": k, "isthing": k < NUM_THINGS} for k in range(NUM_CLASSES)])
    for target, logits, masks in preds:
        ids, segments = panoptic_inference(logits, masks, range(NUM_THINGS))
        gt_ids, gt_segments = ground_truth_segments(target)
        evaluator.update(ids.cpu().numpy(), segments, gt_ids.numpy(), gt_segments)
    return {"panoptic_seg/PQ": evaluator.compute()["PQ"]}


def _instance(preds: list[tuple[dict, Tensor, Tensor]]) -> dict[str, float]:
    images, annotations, results = [], [], []
    for i, (target, logits, masks) in enumerate(preds):
        images.append({"id": i, "height": masks.shape[-2], "width": masks.shape[-1]})
        things = target["labels"] < NUM_THINGS
        for rle, label in zip(encode_masks(target["masks"][things]), target["labels"][things].tolist(),
                              strict=True):
            annotations.append({"image_id": i, "category_id": label, "segmentation": rle})
        inst = {k: v.cpu() for k, v in instance_inference(logits, masks, 100, range(NUM_THINGS)).items()}
        for rle, score, label in zip(encode_masks(inst["masks"]), inst["scores"].tolist(),
                                     inst["labels"].tolist(), strict=True):
            results.append({"image_id": i, "category_id": label, "segmentation": rle, "score": score})
    gt = {"images": images, "categories": [{"id": k} for k in range(NUM_THINGS)], "annotations": annotations}
    return {"segm/AP": coco_mask_ap(gt, results)["AP"]}


def measure_evaluation(images: int, size: int, device: torch.device) -> list[dict]:
    """Seconds and metric value of each evaluation over the same fixed predictions."""
    preds = fixed_predictions(images, size, device)
    rows = []
    for name, fn in (("semantic", _semantic), ("panoptic", _panoptic), ("instance", _instance)):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        try:
            metrics = fn(preds)
        except ImportError as error:  # pycocotools is optional (a bare GPU box may lack it)
            rows.append({"metric": name, "seconds": None, "img_per_s": None, "error": str(error)})
            continue
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        rows.append({"metric": name, "seconds": seconds, "img_per_s": images / seconds, **metrics})
    return rows
