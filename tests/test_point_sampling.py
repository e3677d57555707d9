"""Point sampling: exact at pixel centres, dense losses recovered when every pixel centre is a point."""

import pytest
import torch
from torch.nn import functional as F

from maskformer import dice_loss, sigmoid_focal_loss
from maskformer.matcher import batch_dice_cost, batch_sigmoid_focal_cost
from maskformer.point_sampling import (
    point_sample,
    sample_for_loss,
    sampled_logits,
    uncertain_points,
)


def pixel_centres(h: int, w: int) -> torch.Tensor:
    """All pixel centres [h*w, 2] as (x, y) in [0, 1], in row-major order."""
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=-1)


def test_point_sample_at_pixel_centres_equals_indexing():
    gen = torch.Generator().manual_seed(0)
    masks = torch.randn(2, 3, 5, 7, generator=gen)
    ii = torch.tensor([0, 4, 2, 3])
    jj = torch.tensor([0, 6, 3, 1])
    coords = torch.stack([(jj + 0.5) / 7, (ii + 0.5) / 5], dim=-1).expand(2, -1, -1)
    assert torch.allclose(point_sample(masks, coords), masks[:, :, ii, jj], atol=1e-6)


def test_point_sample_interpolates_between_centres():
    masks = torch.tensor([[[[0.0, 1.0]]]])  # 1x2 map: centres at x = 0.25 and 0.75
    coords = torch.tensor([[[0.5, 0.5]]])
    assert point_sample(masks, coords).item() == pytest.approx(0.5)


def test_dense_losses_recovered_with_all_pixel_centres():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(4, 8, 8, generator=gen)  # low-resolution logits
    tgt = torch.rand(4, 32, 32, generator=gen) > 0.6
    up = F.interpolate(pred[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0].flatten(1)
    coords = pixel_centres(32, 32).expand(4, -1, -1)
    points = sampled_logits(pred, coords)
    targets = point_sample(tgt[:, None].float(), coords)[:, 0]
    assert torch.allclose(points, up, atol=1e-5)
    dense_t = tgt.flatten(1).float()
    assert torch.equal(targets, dense_t)
    dense_focal = sigmoid_focal_loss(up, dense_t).sum().item()
    assert sigmoid_focal_loss(points, targets).sum().item() == pytest.approx(dense_focal, rel=1e-5)
    dense_dice = dice_loss(up, dense_t).sum().item()
    assert dice_loss(points, targets).sum().item() == pytest.approx(dense_dice, rel=1e-5)


def test_matching_costs_recovered_with_all_pixel_centres():
    gen = torch.Generator().manual_seed(2)
    pred = torch.randn(2, 5, 6, 6, generator=gen)
    tgt = (torch.rand(2, 3, 6, 6, generator=gen) > 0.5).float()
    coords = pixel_centres(6, 6).expand(2, -1, -1)
    p, t = point_sample(pred, coords), point_sample(tgt, coords)
    dense_p, dense_t = pred.flatten(2), tgt.flatten(2)
    assert torch.allclose(batch_dice_cost(p, t), batch_dice_cost(dense_p, dense_t), atol=1e-6)
    focal = batch_sigmoid_focal_cost(dense_p, dense_t)
    assert torch.allclose(batch_sigmoid_focal_cost(p, t), focal, atol=1e-6)


def test_uncertain_points_prefer_the_decision_boundary():
    logits = torch.full((1, 1, 16, 16), 10.0)
    logits[..., :, 8:] = -10.0
    logits[..., :, 7:9] = 0.0  # the uncertain band: x in [7/16, 9/16]
    gen = torch.Generator().manual_seed(0)
    # 1000 candidates, ~190 of them where |logit| < 10: the 75 most uncertain all lie in the band
    coords = uncertain_points(logits, 100, oversample_ratio=10.0, importance_ratio=0.75, generator=gen)
    assert coords.shape == (1, 100, 2)
    assert ((coords >= 0) & (coords <= 1)).all()
    importance = coords[0, :75, 0]
    assert ((importance > 6.5 / 16) & (importance < 9.5 / 16)).all()
    assert coords[0, 75:, 0].min() < 0.3 or coords[0, 75:, 0].max() > 0.7  # the rest is uniform


def test_sample_for_loss_shapes_and_gradient():
    gen = torch.Generator().manual_seed(3)
    pred = torch.randn(3, 8, 8, generator=gen, requires_grad=True)
    tgt = torch.rand(3, 32, 32, generator=gen) > 0.5
    coords, targets = sample_for_loss(pred, tgt, 50, generator=gen)
    assert coords.shape == (3, 50, 2) and targets.shape == (3, 50) and not targets.requires_grad
    sampled_logits(pred, coords).sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0

