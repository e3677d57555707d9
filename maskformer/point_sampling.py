"""Point-sampled mask losses (Mask2Former): compare masks at a few sampled points instead of every pixel."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def point_sample(masks: Tensor, coords: Tensor, mode: str = "bilinear") -> Tensor:
    """Values of masks [B, C, H, W] at points [B, P, 2] given as (x, y) in [0, 1]. Returns [B, C, P].

    Coordinates are relative to the whole map (align_corners=False): pixel (i, j) has its centre at
    ((j + 0.5) / W, (i + 0.5) / H), and sampling there returns that pixel's value exactly. Edges are
    replicated (padding "border"), so sampling low-resolution logits equals bilinear upsampling
    (F.interpolate, align_corners=False) followed by indexing.
    """
    grid = (2.0 * coords - 1.0)[:, :, None, :].to(masks.dtype)  # [B, P, 1, 2] in [-1, 1]
    return F.grid_sample(masks, grid, mode=mode, padding_mode="border", align_corners=False)[..., 0]


def uncertain_points(
    logits: Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_ratio: float = 0.75,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Points [M, P, 2] for logits [M, 1, h, w]: the most uncertain (|logit| smallest) of oversampled
    random points, `importance_ratio` of them, and uniform random points for the rest (PointRend)."""
    m, device = logits.shape[0], logits.device
    num_sampled = int(num_points * oversample_ratio)
    candidates = torch.rand(m, num_sampled, 2, device=device, generator=generator)
    uncertainty = -point_sample(logits, candidates)[:, 0].abs()  # [M, num_sampled]
    num_uncertain = int(importance_ratio * num_points)
    top = uncertainty.topk(num_uncertain, dim=1, sorted=False).indices  # order is irrelevant; 2x faster
    chosen = torch.gather(candidates, 1, top[..., None].expand(-1, -1, 2))
    rest = torch.rand(m, num_points - num_uncertain, 2, device=device, generator=generator)
    return torch.cat([chosen, rest], dim=1)


@torch.no_grad()
def sample_for_loss(
    pred_masks: Tensor,
    tgt_masks: Tensor,
    num_points: int,
    oversample_ratio: float = 3.0,
    importance_ratio: float = 0.75,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Points for the criterion and the targets there. Args: matched pred_masks [M, h, w] (logits) and
    tgt_masks [M, H, W]. Returns coords [M, P, 2] and target values [M, P] (float, bilinear)."""
    coords = uncertain_points(
        pred_masks[:, None].detach().float(), num_points, oversample_ratio, importance_ratio, generator
    )
    targets = point_sample(tgt_masks[:, None].float(), coords)[:, 0]
    return coords, targets


def sampled_logits(pred_masks: Tensor, coords: Tensor) -> Tensor:
    """Differentiable mask logits [M, P] of pred_masks [M, h, w] at coords [M, P, 2] (bilinear)."""
    return point_sample(pred_masks[:, None].float(), coords)[:, 0]

