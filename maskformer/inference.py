"""Post-processing as the official code: semantic maps, panoptic segments and instance masks."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def semantic_inference(pred_logits: Tensor, pred_masks: Tensor) -> Tensor:
    """Class scores per pixel. Args: pred_logits [Q, K+1], pred_masks [Q, H, W] logits. Returns [K, H, W]."""
    cls = pred_logits.float().softmax(-1)[..., :-1]
    return torch.einsum("qc,qhw->chw", cls, pred_masks.float().sigmoid())


def panoptic_inference(
    pred_logits: Tensor,
    pred_masks: Tensor,
    thing_ids: set[int] | list[int],
    object_mask_threshold: float = 0.8,
    overlap_threshold: float = 0.8,
) -> tuple[Tensor, list[dict]]:
    """Keep confident queries, give each pixel to the query with the highest score x mask probability,
    drop segments mostly covered by others, and merge stuff segments of one class.

    Args: pred_logits [Q, K+1], pred_masks [Q, H, W] (logits), thing_ids: contiguous ids of thing classes.
    Returns the id map [H, W] int32 (0 = void) and segments_info (id, category_id, isthing, area).
    """
    num_classes = pred_logits.shape[-1] - 1
    scores, labels = pred_logits.float().softmax(-1).max(-1)
    masks = pred_masks.float().sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], masks[keep]
    panoptic = torch.zeros(masks.shape[-2:], dtype=torch.int32, device=masks.device)
    segments: list[dict] = []
    if cur_masks.shape[0] == 0:
        return panoptic, segments
    mask_ids = (cur_scores[:, None, None] * cur_masks).argmax(0)
    stuff_ids: dict[int, int] = {}
    thing_ids = set(thing_ids)
    for k, cls in enumerate(cur_classes.tolist()):
        isthing = cls in thing_ids
        region = mask_ids == k
        area = int(region.sum())
        original_area = int((cur_masks[k] >= 0.5).sum())
        if area == 0 or original_area == 0 or area / original_area < overlap_threshold:
            continue
        if not isthing and cls in stuff_ids:  # one segment per stuff class
            panoptic[region] = stuff_ids[cls]
            next(s for s in segments if s["id"] == stuff_ids[cls])["area"] += area
            continue
        segment_id = len(segments) + 1
        if not isthing:
            stuff_ids[cls] = segment_id
        panoptic[region] = segment_id
        segments.append({"id": segment_id, "category_id": cls, "isthing": isthing, "area": area})
    return panoptic, segments


def instance_inference(
    pred_logits: Tensor, pred_masks: Tensor, topk: int = 100, thing_ids: set[int] | list[int] | None = None
) -> dict[str, Tensor]:
    """Top-k (query, class) pairs; score = class probability x mean mask probability inside the mask.

    Args: pred_logits [Q, K+1], pred_masks [Q, H, W] (logits); thing_ids restricts to thing classes.
    Returns masks [k, H, W] bool, scores [k], labels [k].
    """
    q, k1 = pred_logits.shape
    num_classes = k1 - 1
    scores = pred_logits.float().softmax(-1)[:, :-1].flatten()
    labels = torch.arange(num_classes, device=pred_logits.device).repeat(q)
    top_scores, top_idx = scores.topk(min(topk, scores.numel()), sorted=True)
    if thing_ids is not None:  # as the official code: top-k first, then keep thing classes only
        is_thing = torch.zeros(num_classes, dtype=torch.bool, device=pred_logits.device)
        is_thing[list(thing_ids)] = True
        kept = is_thing[labels[top_idx]]
        top_scores, top_idx = top_scores[kept], top_idx[kept]
    masks = pred_masks.float()[top_idx // num_classes]
    binary = masks > 0
    mask_scores = (masks.sigmoid() * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return {"masks": binary, "scores": top_scores * mask_scores, "labels": labels[top_idx]}


def resize_to_image(
    masks: Tensor, padded_size: tuple[int, int], image_size: tuple[int, int], output_size: tuple[int, int]
) -> Tensor:
    """Mask logits [..., h, w] -> upsampled to the padded input, padding cropped, resized to output_size."""
    lead = masks.shape[:-2]
    x = masks.reshape(-1, 1, *masks.shape[-2:]).float()
    x = F.interpolate(x, size=padded_size, mode="bilinear", align_corners=False)
    x = x[..., : image_size[0], : image_size[1]]
    if tuple(image_size) != tuple(output_size):
        x = F.interpolate(x, size=output_size, mode="bilinear", align_corners=False)
    return x.reshape(*lead, *output_size)


def semantic_scores(
    pred_logits: Tensor, pred_masks: Tensor, padded_size: tuple[int, int], image_size: tuple[int, int],
    output_size: tuple[int, int],
) -> Tensor:
    """MaskFormer's class scores [K, H, W] at output_size in the official order: mask logits upsampled to
    the padded input, the einsum there, then the scores cropped and resized (sem_seg_postprocess)."""
    masks = resize_to_image(pred_masks, padded_size, padded_size, padded_size)
    scores = semantic_inference(pred_logits, masks)
    return resize_to_image(scores, padded_size, image_size, output_size)


def semantic_maps(
    outputs: dict,
    padded_size: tuple[int, int],
    image_sizes: list[tuple[int, int]],
    output_sizes: list[tuple[int, int]] | None = None,
) -> list[Tensor]:
    """Per-image class scores [K, H, W] at the output size, for MaskFormer and the per-pixel baseline."""
    output_sizes = output_sizes or image_sizes
    results = []
    for b, (image_size, output_size) in enumerate(zip(image_sizes, output_sizes, strict=True)):
        if "pred_sem_seg" in outputs:  # per-pixel baseline: class logits per pixel
            logits = resize_to_image(outputs["pred_sem_seg"][b], padded_size, image_size, output_size)
            results.append(logits.softmax(0))
        else:
            results.append(semantic_scores(outputs["pred_logits"][b], outputs["pred_masks"][b], padded_size,
                                           image_size, output_size))
    return results
