"""SetCriterion: cross-entropy over matched classes plus focal and dice mask losses, per decoder layer."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from maskformer.matcher import HungarianMatcher
from maskformer.point_sampling import sample_for_loss, sampled_logits


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, num_masks: float | Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Focal loss (RetinaNet) per mask, averaged over pixels, summed over masks / num_masks.

    Args: logits [M, P], targets [M, P] in {0, 1}.
    """
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(1).sum() / num_masks


def dice_loss(logits: Tensor, targets: Tensor, num_masks: float | Tensor) -> Tensor:
    """1 - soft dice (+1 smoothing) per mask, summed / num_masks. Args: logits [M, P], targets [M, P]."""
    prob = logits.sigmoid()
    numerator = 2 * (prob * targets).sum(-1)
    denominator = prob.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def check_targets(targets: list[dict], num_classes: int, batch_size: int, mask_size: tuple[int, int]) -> None:
    """Reject malformed targets with a message naming the image and the problem."""
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
        if labels.numel() and labels.device.type == "cpu":
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= num_classes:
                raise ValueError(
                    f"target {i}: class id {low if low < 0 else high} out of range [0, {num_classes - 1}]"
                )
        elif labels.numel():  # on an accelerator: checked without a host sync
            torch._assert_async(((labels >= 0) & (labels < num_classes)).all(), "class id out of range")
    if len(sizes) > 1:
        raise ValueError(f"target masks in one batch must share the (padded) image size, got {sorted(sizes)}")
    for h, w in sizes:
        # the model's masks are at stride 4: a target of the image's size maps to ceil or floor of H/4
        if mask_size[0] not in (h // 4, math.ceil(h / 4)) or mask_size[1] not in (w // 4, math.ceil(w / 4)):
            raise ValueError(
                f"target masks are {h}x{w} but the predicted masks are {mask_size[0]}x"
                f"{mask_size[1]} (stride 4): target masks must have the input image's size"
            )


def num_masks_across_processes(targets: list[dict], device: torch.device) -> float | Tensor:
    """Number of target masks, averaged over processes under torch.distributed, at least 1."""
    count = sum(len(t["labels"]) for t in targets)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return float(max(count, 1))
    total = torch.tensor([float(count)], device=device)
    dist.all_reduce(total)
    return torch.clamp(total / dist.get_world_size(), min=1)[0]  # stays on device: no host sync


class SetCriterion(nn.Module):
    """Loss of MaskFormer: match, then CE (no-object weighted) + focal + dice on every decoder layer."""

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

    def loss_labels(self, outputs: dict, targets: list[dict], indices: list) -> Tensor:
        """Cross-entropy over K+1 classes; unmatched queries are trained towards "no object"."""
        logits = outputs["pred_logits"].float()
        target_classes = torch.full(
            logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device
        )
        batch_idx, src_idx = _src_permutation(indices)  # on the logits' device: the matcher put them there
        pairs = zip(targets, indices, strict=True)
        matched = torch.cat([t["labels"][j.to(t["labels"].device)] for t, (_, j) in pairs])
        target_classes[batch_idx, src_idx] = matched.to(logits.device)
        return F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)

    def loss_masks(
        self, outputs: dict, targets: list[dict], indices: list, num_masks: float | Tensor
    ) -> tuple[Tensor, Tensor]:
        """Focal and dice losses of matched masks: predictions upsampled (bilinear) to the target size, or
        both taken at `num_points` sampled points."""
        pred = outputs["pred_masks"]
        batch_idx, src_idx = _src_permutation(indices)
        src = pred[batch_idx, src_idx]
        tgt = torch.cat(
            [t["masks"][j.to(t["masks"].device)] for t, (_, j) in zip(targets, indices, strict=True)]
        )
        if src.shape[0] == 0:  # no target masks anywhere in the batch: nothing to supervise
            zero = pred.sum() * 0.0
            return zero, zero
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
        tgt = tgt.to(device=src.device, dtype=src.dtype)
        return (
            sigmoid_focal_loss(src, tgt, num_masks, self.focal_alpha, self.focal_gamma),
            dice_loss(src, tgt, num_masks),
        )

    def layer_losses(
        self, outputs: dict, targets: list[dict], indices: list, num_masks: float | Tensor, suffix: str = ""
    ) -> dict[str, Tensor]:
        """One layer's three losses, given its matching."""
        loss_mask, loss_dice = self.loss_masks(outputs, targets, indices, num_masks)
        return {
            f"loss_ce{suffix}": self.loss_labels(outputs, targets, indices),
            f"loss_mask{suffix}": loss_mask,
            f"loss_dice{suffix}": loss_dice,
        }

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, Tensor]:
        """Args: outputs (pred_logits [B, Q, K+1], pred_masks [B, Q, h, w], aux_outputs), targets (labels
        [N] int64, masks [N, H, W]). Returns the unweighted losses; aux layer i gets the suffix `_i`."""
        logits = outputs["pred_logits"]
        check_targets(targets, self.num_classes, logits.shape[0], tuple(outputs["pred_masks"].shape[-2:]))
        num_masks = num_masks_across_processes(targets, logits.device)
        layers = [outputs, *outputs.get("aux_outputs", [])]
        matchings = self.matcher.match_layers(layers, targets)  # every layer matched, one host sync
        losses: dict[str, Tensor] = {}
        for i, (layer, indices) in enumerate(zip(layers, matchings, strict=True)):
            losses.update(
                self.layer_losses(layer, targets, indices, num_masks, "" if i == 0 else f"_{i - 1}")
            )
        return losses


def _src_permutation(indices: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """(batch index, query index) of every matched prediction."""
    batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    return batch_idx, torch.cat([src for src, _ in indices])


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
        check_targets(targets, self.num_classes, logits.shape[0], tuple(logits.shape[-2:]))
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
