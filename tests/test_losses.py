"""Focal, dice and cross-entropy losses against values computed by hand."""

import math

import pytest
import torch

from maskformer import MaskFormerConfig, dice_loss, sigmoid_focal_loss
from maskformer.matcher import batch_dice_cost, batch_sigmoid_focal_cost
from maskformer.model import build_criterion


def test_focal_loss_hand_computed():
    # logit 0 -> p = 0.5 for both pixels; target 1 then 0.
    # pixel 1: ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25 -> 0.25 * 0.25 * ln 2
    # pixel 2: ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.75 -> 0.75 * 0.25 * ln 2
    logits = torch.tensor([[0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0]])
    expected = (0.25 * 0.25 * math.log(2) + 0.75 * 0.25 * math.log(2)) / 2  # mean over pixels, 1 mask
    assert sigmoid_focal_loss(logits, targets, 1) == pytest.approx(expected, rel=1e-6)
    # logit ln 3 -> p = 0.75, target 1: ce = -ln 0.75, (0.25)^2, alpha 0.25; divided by num_masks = 2
    logits = torch.tensor([[math.log(3.0)]])
    expected = 0.25 * 0.0625 * -math.log(0.75) / 2
    assert sigmoid_focal_loss(logits, torch.ones(1, 1), 2) == pytest.approx(expected, rel=1e-6)


def test_dice_loss_hand_computed():
    # p = 0.5 everywhere on 4 pixels, target covers 2: num = 2 * 1 = 2, den = 2 + 2 = 4
    logits = torch.zeros(1, 4)
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert dice_loss(logits, targets, 1) == pytest.approx(1 - (2 + 1) / (4 + 1))
    # a confident perfect mask gives (almost) zero
    perfect = torch.tensor([[30.0, 30.0, -30.0, -30.0]])
    assert dice_loss(perfect, targets, 1) == pytest.approx(0.0, abs=1e-6)


def test_pairwise_costs_equal_per_pair_losses():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 5, 30, generator=gen)
    targets = (torch.rand(1, 3, 30, generator=gen) > 0.5).float()
    focal = batch_sigmoid_focal_cost(logits, targets)
    dice = batch_dice_cost(logits, targets)
    for q in range(5):
        for n in range(3):
            pair = logits[0, q : q + 1], targets[0, n : n + 1]
            assert focal[0, q, n] == pytest.approx(sigmoid_focal_loss(*pair, 1).item(), rel=1e-5)
            assert dice[0, q, n] == pytest.approx(dice_loss(*pair, 1).item(), rel=1e-5)


def test_cross_entropy_with_no_object_weight_hand_computed():
    cfg = MaskFormerConfig(num_classes=2, dec_layers=1, deep_supervision=False)
    criterion = build_criterion(cfg)
    # 2 queries, logits 0 -> uniform over 3 classes; one target of class 1 (matched to some query)
    outputs = {"pred_logits": torch.zeros(1, 2, 3), "pred_masks": torch.zeros(1, 2, 2, 2)}
    targets = [{"labels": torch.tensor([1]), "masks": torch.ones(1, 8, 8, dtype=torch.bool)}]
    losses = criterion(outputs, targets)
    # weighted mean: (1 * ln3 + 0.1 * ln3) / (1 + 0.1) = ln 3
    assert losses["loss_ce"].item() == pytest.approx(math.log(3), rel=1e-6)
    # with unequal logits the weighting matters: matched query predicts class 1 with p = e^2/(e^2+2)
    logits = torch.tensor([[[0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]])
    losses = criterion({"pred_logits": logits, "pred_masks": torch.zeros(1, 2, 2, 2)}, targets)
    p = math.exp(2) / (math.exp(2) + 2)
    expected = (1.0 * -math.log(p) + 0.1 * -math.log(p)) / 1.1
    assert losses["loss_ce"].item() == pytest.approx(expected, rel=1e-6)


def test_weight_dict_has_paper_weights_for_every_layer():
    criterion = build_criterion(MaskFormerConfig())
    assert criterion.weight_dict["loss_ce"] == 1.0
    assert criterion.weight_dict["loss_mask"] == 20.0
    assert criterion.weight_dict["loss_dice"] == 1.0
    assert criterion.empty_weight[-1].item() == pytest.approx(0.1)
    assert len(criterion.weight_dict) == 3 * 6
    assert criterion.weight_dict["loss_mask_4"] == 20.0


def test_point_sampled_losses_approach_the_dense_ones():
    import torch.nn.functional as F

    from maskformer.criterion import SetCriterion
    from maskformer.matcher import HungarianMatcher

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 4, 3, generator=gen)
    masks = F.interpolate(torch.randn(1, 4, 4, 4, generator=gen), size=(16, 16), mode="bilinear")
    blocks = torch.rand(1, 2, 8, 8, generator=gen) > 0.5  # blocky masks: few boundary pixels to interpolate
    targets = [
        {"labels": torch.tensor([0, 1]), "masks": F.interpolate(blocks.float(), size=(64, 64))[0] > 0.5}
    ]
    outputs = {"pred_logits": logits, "pred_masks": masks}
    weights = {"loss_ce": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}
    dense = SetCriterion(2, HungarianMatcher(), weights)(outputs, targets)
    torch.manual_seed(0)
    sampled = SetCriterion(2, HungarianMatcher(), weights, num_points=20000, importance_sample_ratio=0.0)(
        outputs, targets
    )
    # uniform points (no importance sampling) estimate the pixel means: close to the dense values
    assert sampled["loss_dice"].item() == pytest.approx(dense["loss_dice"].item(), rel=0.03)
    assert sampled["loss_mask"].item() == pytest.approx(dense["loss_mask"].item(), rel=0.03)
    assert sampled["loss_ce"].item() == pytest.approx(dense["loss_ce"].item())
