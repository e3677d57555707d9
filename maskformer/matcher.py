"""Hungarian matching of predicted segments to ground-truth segments (class + focal + dice costs).

Every decoder layer of every image is matched at once: the targets are concatenated once per step, the
cost matrices of all layers come from one batched computation on the device, and the host waits for the
device once (for scipy's assignment). The matches go back to the device in one non-blocking copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.nn import functional as F


def _to_device(array: np.ndarray, device: torch.device) -> Tensor:
    """A host int64 array on the device without waiting: pinned memory and a non-blocking copy on CUDA."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


@dataclass
class TargetBatch:
    """A batch's targets concatenated: image b's targets are rows offsets[b]:offsets[b] + sizes[b].

    labels [T] int64 and masks [T, H, W] live on the model's device; `slots` [B, Nmax] indexes image b's
    j-th target (padding points at row 0 and is never read), so padded per-image views cost one gather.
    """

    labels: Tensor
    masks: Tensor
    sizes: list[int]
    offsets: list[int]  # row of each image's first target
    slots: Tensor

    @classmethod
    def build(cls, targets: list[dict], device: torch.device) -> TargetBatch:
        """Concatenate targets (labels [N], masks [N, H, W] per image) on `device`."""
        sizes = [len(t["labels"]) for t in targets]
        offsets = np.cumsum([0, *sizes[:-1]]).tolist()
        slots = np.zeros((len(sizes), max(sizes, default=0)), dtype=np.int64)
        for b, (start, n) in enumerate(zip(offsets, sizes, strict=True)):
            slots[b, :n] = np.arange(start, start + n)
        labels = torch.cat([t["labels"] for t in targets]).to(device)
        masks = torch.cat([t["masks"] for t in targets]).to(device)
        return cls(labels, masks, sizes, offsets, _to_device(slots, device))

    def masks_at(self, size: tuple[int, int]) -> Tensor:
        """Masks resized (nearest) to `size` and flattened, padded per image: [B, Nmax, h*w] float."""
        masks = self.masks
        if masks.dtype == torch.bool:
            masks = masks.view(torch.uint8)  # nearest resize of bytes, converted after shrinking
        if tuple(masks.shape[-2:]) != size:
            masks = F.interpolate(masks[:, None], size=size, mode="nearest")[:, 0]
        return masks.flatten(1).float()[self.slots]


@dataclass
class Matching:
    """Matched pairs of all decoder layers, flat, on the device, grouped by layer (`per_layer` pairs each).

    Pair i: query `query[i]` of image `batch[i]` in layer `layer[i]`, matched to row `target[i]` of the
    TargetBatch. Within a layer, pairs are ordered by image, then query.
    """

    layer: Tensor
    batch: Tensor
    query: Tensor
    target: Tensor
    num_layers: int
    per_layer: int


@torch.no_grad()
def batch_sigmoid_focal_cost(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Pairwise focal loss (pixel mean). Args: logits [B, Q, P], targets [B, N, P]. Returns [B, Q, N].

    In place where it can: all decoder layers' queries go through at once, so each buffer is large.
    """
    prob = logits.sigmoid()
    pos = F.softplus(-logits)  # BCE against 1
    neg = (pos + logits).mul_(prob.pow(gamma))  # BCE against 0 (softplus(x) = softplus(-x) + x), * p^gamma
    pos.mul_(prob.neg_().add_(1).pow_(gamma))  # * (1 - p)^gamma
    if alpha >= 0:
        pos.mul_(alpha)
        neg.mul_(1 - alpha)
    tt = targets.transpose(1, 2)
    # sum_p neg*(1-t) = sum_p neg - sum_p neg*t: one matmul fewer
    cost = torch.bmm(pos.sub_(neg), tt).add_(neg.sum(-1, keepdim=True))
    return cost.div_(logits.shape[-1])


def batch_dice_cost(logits: Tensor, targets: Tensor) -> Tensor:
    """Pairwise dice loss (+1 smoothing). Args: logits [B, Q, P], targets [B, N, P]. Returns [B, Q, N]."""
    prob = logits.sigmoid()
    numerator = 2 * torch.bmm(prob, targets.transpose(1, 2))
    denominator = prob.sum(-1)[:, :, None] + targets.sum(-1)[:, None, :]
    return 1 - (numerator + 1) / (denominator + 1)


class HungarianMatcher(nn.Module):
    """One-to-one assignment minimising cost_class * (-p[class]) + cost_mask * focal + cost_dice * dice."""

    def __init__(
        self,
        cost_class: float = 1.0,
        cost_mask: float = 20.0,
        cost_dice: float = 1.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        if cost_class == 0 and cost_mask == 0 and cost_dice == 0:
            raise ValueError("HungarianMatcher: all costs are 0")
        self.cost_class, self.cost_mask, self.cost_dice = cost_class, cost_mask, cost_dice
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma

    @torch.no_grad()
    def cost_matrix(self, logits: Tensor, masks: Tensor, targets: TargetBatch) -> Tensor:
        """Cost matrices [B, L, Q, Nmax] of L layers' logits [B, L, Q, K+1] and mask logits [B, L, Q, h, w]
        (columns past image b's target count are padding). An image's layers are matched against its
        targets as one set of L*Q queries, so each cost term is one batched op whatever the layer count."""
        b, num_layers, q = logits.shape[:3]
        if not targets.labels.numel():  # no targets in the batch: nothing to match
            return logits.new_zeros(b, num_layers, q, 0)
        logits = logits.float().reshape(b, num_layers * q, -1)
        flat = masks.float().reshape(b, num_layers * q, -1)
        labels = targets.labels[targets.slots]  # [B, Nmax]
        prob = logits.softmax(-1)
        cost = -self.cost_class * torch.gather(prob, 2, labels[:, None, :].expand(-1, num_layers * q, -1))
        if self.cost_mask or self.cost_dice:
            tgt = targets.masks_at(tuple(masks.shape[-2:]))
            if self.cost_mask:
                focal = batch_sigmoid_focal_cost(flat, tgt, self.focal_alpha, self.focal_gamma)
                cost = cost + self.cost_mask * focal
            if self.cost_dice:
                cost = cost + self.cost_dice * batch_dice_cost(flat, tgt)
        return cost.view(b, num_layers, q, -1)

    @torch.no_grad()
    def assign(self, logits: Tensor, masks: Tensor, targets: TargetBatch) -> Matching:
        """Match every layer of logits [B, L, Q, K+1] and masks [B, L, Q, h, w] with one host sync."""
        cost = self.cost_matrix(logits, masks, targets).cpu().numpy()
        columns = [[], [], [], []]  # layer, image, query, target row
        for layer in range(cost.shape[1]):
            for b, (start, n) in enumerate(zip(targets.offsets, targets.sizes, strict=True)):
                rows, cols = linear_sum_assignment(cost[b, layer, :, :n])
                for column, values in zip(columns, (layer, b, rows, cols + start), strict=True):
                    column.append(np.broadcast_to(values, rows.shape))
        flat = np.stack([np.concatenate(c) if c else np.zeros(0, np.int64) for c in columns])
        layer, batch, query, target = _to_device(flat, logits.device)
        num_layers = logits.shape[1]
        return Matching(layer, batch, query, target, num_layers, flat.shape[1] // num_layers)

    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[Tensor, Tensor]]:
        """Args: outputs with pred_logits [B, Q, K+1] and pred_masks [B, Q, h, w]; targets with labels [N]
        and masks [N, H, W]. Returns per image (query indices, target indices), int64 on the model's device,
        sorted by query."""
        batch = TargetBatch.build(targets, outputs["pred_logits"].device)
        match = self.assign(outputs["pred_logits"][:, None], outputs["pred_masks"][:, None], batch)
        queries = outputs["pred_logits"].shape[1]
        counts = [min(queries, n) for n in batch.sizes]  # pairs of each image, in image order
        pairs = zip(match.query.split(counts), match.target.split(counts), batch.offsets, strict=True)
        return [(rows, cols - start) for rows, cols, start in pairs]
