"""Hungarian matching of predicted segments to ground-truth segments (class + focal + dice costs)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torch.nn import functional as F


def pad_targets(targets: list[dict], size: tuple[int, int], device: torch.device) -> tuple[Tensor, Tensor]:
    """Stack every image's labels [N] and masks [N, H, W] (resized nearest to `size`) padded to max N.

    Returns labels [B, Nmax] (0 where padded) and masks [B, Nmax, h*w] float.
    """
    nmax = max((len(t["labels"]) for t in targets), default=0)
    labels = torch.zeros(len(targets), nmax, dtype=torch.long, device=device)
    masks = torch.zeros(len(targets), nmax, size[0] * size[1], device=device)
    for b, t in enumerate(targets):
        n = len(t["labels"])
        if n == 0:
            continue
        labels[b, :n] = t["labels"].to(device)
        m = t["masks"].to(device=device, dtype=torch.float32)
        if m.shape[-2:] != size:
            m = F.interpolate(m[:, None], size=size, mode="nearest")[:, 0]
        masks[b, :n] = m.flatten(1)
    return labels, masks


def batch_sigmoid_focal_cost(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Pairwise focal loss (pixel mean). Args: logits [B, Q, P], targets [B, N, P]. Returns [B, Q, N]."""
    prob = logits.sigmoid()
    pos = (1 - prob) ** gamma * F.softplus(-logits)  # BCE against 1
    neg = prob**gamma * F.softplus(logits)  # BCE against 0
    if alpha >= 0:
        pos, neg = pos * alpha, neg * (1 - alpha)
    tt = targets.transpose(1, 2)
    # sum_p neg*(1-t) = sum_p neg - sum_p neg*t: one matmul fewer
    cost = torch.bmm(pos - neg, tt) + neg.sum(-1, keepdim=True)
    return cost / logits.shape[-1]


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
    def cost_matrix(self, outputs: dict, targets: list[dict]) -> Tensor:
        """The batched cost matrices [B, Q, Nmax] on the model's device (columns past N_b are padding)."""
        logits = outputs["pred_logits"].float()
        pred_masks = outputs["pred_masks"].float()
        b, q = logits.shape[:2]
        labels, tgt_masks = pad_targets(targets, tuple(pred_masks.shape[-2:]), logits.device)
        prob = logits.softmax(-1)
        cost_class = -torch.gather(prob, 2, labels[:, None, :].expand(b, q, -1))
        flat = pred_masks.flatten(2)
        cost = self.cost_class * cost_class
        if self.cost_mask:
            cost = cost + self.cost_mask * batch_sigmoid_focal_cost(
                flat, tgt_masks, self.focal_alpha, self.focal_gamma
            )
        if self.cost_dice:
            cost = cost + self.cost_dice * batch_dice_cost(flat, tgt_masks)
        return cost

    @torch.no_grad()
    def match_layers(self, layers: list[dict], targets: list[dict]) -> list[list[tuple[Tensor, Tensor]]]:
        """Match several decoder layers' outputs with one host sync: every cost matrix is computed on the
        device, all are copied to the host at once for scipy, and all indices go back in one copy."""
        cost = torch.stack([self.cost_matrix(o, targets) for o in layers]).cpu()  # [L, B, Q, Nmax]
        sizes = [len(t["labels"]) for t in targets]
        pairs = [
            linear_sum_assignment(cost[l, b, :, :n].numpy())
            for l in range(len(layers))
            for b, n in enumerate(sizes)
        ]
        # pinned + non-blocking, so the criterion never waits on index copies
        flat = torch.from_numpy(np.concatenate([np.concatenate(p) for p in pairs]).astype(np.int64))
        device = layers[0]["pred_logits"].device
        if device.type == "cuda":
            flat = flat.pin_memory()
        flat = flat.to(device, non_blocking=True)
        indices, start = [], 0
        for rows, _ in pairs:
            n = len(rows)
            indices.append((flat[start : start + n], flat[start + n : start + 2 * n]))
            start += 2 * n
        return [indices[i : i + len(targets)] for i in range(0, len(indices), len(targets))]

    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[Tensor, Tensor]]:
        """Args: outputs with pred_logits [B, Q, K+1] and pred_masks [B, Q, h, w]; targets with labels [N]
        and masks [N, H, W]. Returns per image (query indices, target indices), int64 on the model's device,
        sorted by query."""
        return self.match_layers([outputs], targets)[0]
