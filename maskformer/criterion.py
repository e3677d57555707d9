"""SetCriterion: cross-entropy over matched classes plus focal and dice mask losses, per decoder layer."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from maskformer.matcher import HungarianMatcher, Matching, TargetBatch
from maskformer.point_sampling import sample_for_loss, sampled_logits


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Focal loss (RetinaNet) of each mask [M], averaged over its pixels. Args: logits [M, P], targets
    [M, P] in [0, 1]; the criterion sums masks and divides by the number of target masks."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1)


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """1 - soft dice (+1 smoothing) of each mask [M]. Args: logits [M, P], targets [M, P]."""
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def check_targets(targets: list[dict], batch_size: int, mask_size: tuple[int, int]) -> None:
    """Reject malformed targets with a message naming the image and the problem (class ids: check_labels)."""
    if len(targets) != batch_size:
        raise ValueError(f"got {len(targets)} targets for a batch of {batch_size} images")
    sizes = set()
    for i, t in enumerate(targets):
        labels, masks = t["labels"], t["masks"]
        if labels.dim() != 1 or masks.dim() != 3 or len(labels) != len(masks):
            raise ValueError(
                f"target {i}: expected labels [N] and masks [N, H, W], got labels "
                f"{tuple(labels.shape)} and masks {tuple(masks.shape)}"
            )
        if labels.dtype != torch.int64:
            raise ValueError(f"target {i}: labels must be int64, got {labels.dtype}")
        sizes.add(tuple(masks.shape[-2:]))
    if len(sizes) > 1:
        raise ValueError(f"target masks in one batch must share the (padded) image size, got {sorted(sizes)}")
    for h, w in sizes:
        # the model's masks are at stride 4: a target of the image's size maps to ceil or floor of H/4
        if mask_size[0] not in (h // 4, math.ceil(h / 4)) or mask_size[1] not in (w // 4, math.ceil(w / 4)):
            raise ValueError(
                f"target masks are {h}x{w} but the predicted masks are {mask_size[0]}x"
                f"{mask_size[1]} (stride 4): target masks must have the input image's size"
            )


def check_labels(targets: list[dict], labels: Tensor, num_classes: int) -> None:
    """Class ids of all images (`labels`, concatenated) must lie in [0, num_classes): one check per batch,
    naming the first bad image on the host, and without a host sync (asynchronous assert) on a device."""
    if not labels.numel():
        return
    if labels.device.type != "cpu":
        torch._assert_async(((labels >= 0) & (labels < num_classes)).all(), "class id out of range")
        return
    low, high = labels.aminmax()
    if low >= 0 and high < num_classes:
        return
    for i, t in enumerate(targets):
        bad = t["labels"][(t["labels"] < 0) | (t["labels"] >= num_classes)]
        if bad.numel():
            raise ValueError(f"target {i}: class id {int(bad[0])} out of range [0, {num_classes - 1}]")


def num_masks_across_processes(targets: list[dict], device: torch.device) -> float | Tensor:
    """Number of target masks, averaged over processes under torch.distributed, at least 1."""
    count = sum(len(t["labels"]) for t in targets)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return float(max(count, 1))
    total = torch.tensor([float(count)], device=device)
    dist.all_reduce(total)
    return torch.clamp(total / dist.get_world_size(), min=1)[0]  # stays on device: no host sync


class SetCriterion(nn.Module):
    """Loss of MaskFormer: match, then CE (no-object weighted) + focal + dice on every decoder layer.

    All decoder layers are handled together: their stacked outputs are matched in one call, and each
    loss is one batched computation over every layer's matched pairs, so the number of device ops does
    not grow with the batch or the number of layers. Outputs may be bf16 (autocast): matching and losses
    run in float32, converting only what they use (all logits, the matched masks).
    """

    def __init__(
        self,
        num_classes: int,
        matcher: HungarianMatcher,
        weight_dict: dict[str, float],
        eos_coef: float = 0.1,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        num_points: int = 0,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = weight_dict
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        # num_points > 0: mask losses at uncertainty-sampled points (Mask2Former) instead of every pixel
        self.num_points, self.oversample_ratio = num_points, oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight)

    def loss_labels(self, logits: Tensor, targets: TargetBatch, match: Matching) -> Tensor:
        """Cross-entropy over K+1 classes per layer [L]; unmatched queries are trained towards "no object".

        Args: logits [B, L, Q, K+1]. Each layer's loss is the weighted mean of F.cross_entropy.
        """
        logits = logits.float()
        classes = torch.full(logits.shape[:3], self.num_classes, dtype=torch.int64, device=logits.device)
        classes[match.batch, match.layer, match.query] = targets.labels[match.target]
        weighted = F.cross_entropy(
            logits.flatten(0, 2), classes.flatten(), self.empty_weight, reduction="none"
        ).view(classes.shape)  # weight[class] * nll of each query
        return weighted.sum((0, 2)) / self.empty_weight[classes].sum((0, 2))

    def loss_masks(
        self, masks: Tensor, targets: TargetBatch, match: Matching, num_masks: float | Tensor
    ) -> tuple[Tensor, Tensor]:
        """Focal and dice losses [L] of matched masks: predictions upsampled (bilinear) to the target size,
        or both taken at `num_points` sampled points. Args: masks [B, L, Q, h, w] logits."""
        num_layers = masks.shape[1]
        if match.per_layer == 0:  # no target masks anywhere in the batch: nothing to supervise
            zero = masks.sum().float() * 0.0
            return zero.expand(num_layers), zero.expand(num_layers)
        src = masks[match.batch, match.layer, match.query]
        tgt = targets.masks[match.target]
        if self.num_points:
            coords, tgt = sample_for_loss(
                src, tgt, self.num_points, self.oversample_ratio, self.importance_sample_ratio
            )
            src = sampled_logits(src, coords)
        else:
            src = F.interpolate(
                src[:, None].float(), size=tgt.shape[-2:], mode="bilinear", align_corners=False
            )
            src = src[:, 0].flatten(1)
            tgt = tgt.flatten(1)
        tgt = tgt.to(dtype=src.dtype)
        focal = sigmoid_focal_loss(src, tgt, self.focal_alpha, self.focal_gamma)
        dice = dice_loss(src, tgt)
        return (
            focal.view(num_layers, -1).sum(1) / num_masks,
            dice.view(num_layers, -1).sum(1) / num_masks,
        )

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        """Args: outputs (pred_logits [B, Q, K+1], pred_masks [B, Q, h, w], aux_outputs, or the stacked
        layer_logits/layer_masks), targets (labels [N] int64, masks [N, H, W]). Returns the unweighted
        losses; aux layer i gets the suffix `_i`."""
        logits = outputs["pred_logits"]
        check_targets(targets, logits.shape[0], tuple(outputs["pred_masks"].shape[-2:]))
        batch = TargetBatch.build(targets, logits.device)
        check_labels(targets, batch.labels, self.num_classes)
        num_masks = num_masks_across_processes(targets, logits.device)
        all_logits, all_masks = stacked_layers(outputs)
        match = self.matcher.assign(all_logits.detach(), all_masks.detach(), batch)
        ce = self.loss_labels(all_logits, batch, match)
        focal, dice = self.loss_masks(all_masks, batch, match, num_masks)
        num_layers = all_logits.shape[1]
        losses: dict[str, Tensor] = {}
        for i in [num_layers - 1, *range(num_layers - 1)]:  # the final layer's losses first
            suffix = "" if i == num_layers - 1 else f"_{i}"
            losses[f"loss_ce{suffix}"] = ce[i]
            losses[f"loss_mask{suffix}"] = focal[i]
            losses[f"loss_dice{suffix}"] = dice[i]
        return losses


def stacked_layers(outputs: dict) -> tuple[Tensor, Tensor]:
    """Every decoder layer's class logits [B, L, Q, K+1] and mask logits [B, L, Q, h, w], in decoder order
    (the last is the final layer): the predictor's layer_logits/layer_masks, else stacked from the dicts."""
    if "layer_logits" in outputs:
        return outputs["layer_logits"], outputs["layer_masks"]
    layers = [*outputs.get("aux_outputs", []), outputs]
    logits = torch.stack([layer["pred_logits"] for layer in layers], 1)
    return logits, torch.stack([layer["pred_masks"] for layer in layers], 1)


def weighted_loss(losses: dict[str, Tensor], weight_dict: dict[str, float]) -> Tensor:
    """The loss to optimise: the sum of the terms weighted by weight_dict (unweighted terms are only
    reported). A KeyError names the terms when none of them is weighted."""
    weighted = [losses[k] * weight_dict[k] for k in losses if k in weight_dict]
    if not weighted:
        raise KeyError(f"no loss term {sorted(losses)} is in weight_dict {sorted(weight_dict)}")
    return torch.stack(weighted).sum()


class PerPixelCriterion(nn.Module):
    """Per-pixel cross-entropy of the baseline (ignore label 255), logits upsampled to the target size."""

    def __init__(self, num_classes: int, ignore_label: int = 255, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.weight_dict = {"loss_sem_seg": loss_weight}

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        """Args: outputs with pred_sem_seg [B, K, h, w]; targets as for SetCriterion (segments -> one map)."""
        logits = outputs["pred_sem_seg"]
        check_targets(targets, logits.shape[0], tuple(logits.shape[-2:]))
        check_labels(targets, torch.cat([t["labels"] for t in targets]), self.num_classes)
        h, w = targets[0]["masks"].shape[-2:]
        sem = torch.stack([segments_to_semantic(t, self.ignore_label).to(logits.device) for t in targets])
        up = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False)
        return {"loss_sem_seg": F.cross_entropy(up, sem, ignore_index=self.ignore_label)}


def segments_to_semantic(target: dict, ignore_label: int = 255) -> Tensor:
    """One class map [H, W] from segments (labels [N], masks [N, H, W]); uncovered pixels = ignore_label."""
    masks, labels = target["masks"], target["labels"]
    h, w = masks.shape[-2:]
    if len(labels) == 0:
        return torch.full((h, w), ignore_label, dtype=torch.int64, device=masks.device)
    order = torch.arange(1, len(labels) + 1, device=masks.device)[:, None, None]
    idx = (masks.bool() * order).amax(0)  # where segments overlap, the later one wins
    cls = labels.to(masks.device)[(idx - 1).clamp(min=0)]
    return torch.where(idx > 0, cls, torch.full_like(cls, ignore_label))
