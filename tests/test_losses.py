"""Focal, dice and cross-entropy losses against values computed by hand; the weighted total."""

import math

import pytest
import torch

from maskformer import (
    MaskFormerConfig,
    build_model,
    dice_loss,
    sigmoid_focal_loss,
    tiny_config,
    weighted_loss,
)
from maskformer.matcher import batch_dice_cost, batch_sigmoid_focal_cost
from maskformer.model import build_criterion


def test_focal_loss_hand_computed():
    # logit 0 -> p = 0.5 for both pixels; target 1 then 0.
    # pixel 1: ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25 -> 0.25 * 0.25 * ln 2
    # pixel 2: ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.75 -> 0.75 * 0.25 * ln 2
    logits = torch.tensor([[0.0, 0.0]])
    targets = torch.tensor([[1.0, 0.0]])
    expected = (0.25 * 0.25 * math.log(2) + 0.75 * 0.25 * math.log(2)) / 2  # mean over pixels, 1 mask
    assert sigmoid_focal_loss(logits, targets).sum() == pytest.approx(expected, rel=1e-6)
    # logit ln 3 -> p = 0.75, target 1: ce = -ln 0.75, (0.25)^2, alpha 0.25; divided by num_masks = 2
    logits = torch.tensor([[math.log(3.0)]])
    expected = 0.25 * 0.0625 * -math.log(0.75) / 2
    assert sigmoid_focal_loss(logits, torch.ones(1, 1)).sum() / 2 == pytest.approx(expected, rel=1e-6)


def test_dice_loss_hand_computed():
    # p = 0.5 everywhere on 4 pixels, target covers 2: num = 2 * 1 = 2, den = 2 + 2 = 4
    logits = torch.zeros(1, 4)
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert dice_loss(logits, targets).sum() == pytest.approx(1 - (2 + 1) / (4 + 1))
    # a confident perfect mask gives (almost) zero
    perfect = torch.tensor([[30.0, 30.0, -30.0, -30.0]])
    assert dice_loss(perfect, targets).sum() == pytest.approx(0.0, abs=1e-6)


def test_pairwise_costs_equal_per_pair_losses():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 5, 30, generator=gen)
    targets = (torch.rand(1, 3, 30, generator=gen) > 0.5).float()
    focal = batch_sigmoid_focal_cost(logits, targets)
    dice = batch_dice_cost(logits, targets)
    for q in range(5):
        for n in range(3):
            pair = logits[0, q : q + 1], targets[0, n : n + 1]
            assert focal[0, q, n] == pytest.approx(sigmoid_focal_loss(*pair).sum().item(), rel=1e-5)
            assert dice[0, q, n] == pytest.approx(dice_loss(*pair).sum().item(), rel=1e-5)


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


def naive_layer_losses(criterion, layer: dict, targets: list[dict], num_masks: float) -> dict[str, float]:
    """One decoder layer's losses written out per image and per matched pair (DETR's formulation)."""
    import torch.nn.functional as F

    indices = criterion.matcher(layer, targets)
    logits, masks = layer["pred_logits"], layer["pred_masks"]
    classes = torch.full(logits.shape[:2], criterion.num_classes, dtype=torch.int64)
    focal = dice = 0.0
    for b, (t, (rows, cols)) in enumerate(zip(targets, indices, strict=True)):
        classes[b, rows] = t["labels"][cols]
        for q, j in zip(rows.tolist(), cols.tolist(), strict=True):
            up = F.interpolate(masks[b, q][None, None], size=t["masks"].shape[-2:], mode="bilinear")
            pair = up.flatten()[None], t["masks"][j].flatten()[None].float()
            focal += sigmoid_focal_loss(*pair).item()
            dice += dice_loss(*pair).item()
    ce = F.cross_entropy(logits.transpose(1, 2), classes, criterion.empty_weight).item()
    return {"loss_ce": ce, "loss_mask": focal / num_masks, "loss_dice": dice / num_masks}


def test_all_layers_batched_equal_the_per_image_per_pair_losses():
    gen = torch.Generator().manual_seed(5)
    criterion = build_criterion(MaskFormerConfig(num_classes=4, dec_layers=3, num_queries=6))
    layers = [
        {
            "pred_logits": torch.randn(3, 6, 5, generator=gen),
            "pred_masks": torch.randn(3, 6, 5, 5, generator=gen),
        }
        for _ in range(3)
    ]
    targets = [
        {"labels": torch.tensor([0, 3, 2]), "masks": torch.rand(3, 20, 20, generator=gen) > 0.5},
        {"labels": torch.tensor([], dtype=torch.int64), "masks": torch.zeros(0, 20, 20, dtype=torch.bool)},
        {"labels": torch.tensor([1]), "masks": torch.rand(1, 20, 20, generator=gen) > 0.5},
    ]
    losses = criterion({**layers[-1], "aux_outputs": layers[:-1]}, targets)
    assert len(losses) == 9
    for i, layer in enumerate(layers):
        suffix = "" if i == 2 else f"_{i}"
        for name, value in naive_layer_losses(criterion, layer, targets, num_masks=4.0).items():
            assert losses[name + suffix].item() == pytest.approx(value, rel=1e-5), name + suffix


def test_no_targets_in_the_batch_trains_every_query_towards_no_object():
    criterion = build_criterion(MaskFormerConfig(num_classes=2, dec_layers=2, num_queries=3))
    layer = {"pred_logits": torch.zeros(1, 3, 3, requires_grad=True), "pred_masks": torch.zeros(1, 3, 2, 2)}
    empty = {"labels": torch.tensor([], dtype=torch.int64), "masks": torch.zeros(0, 8, 8, dtype=torch.bool)}
    losses = criterion({**layer, "aux_outputs": [layer]}, [empty])
    assert losses["loss_ce"].item() == pytest.approx(math.log(3), rel=1e-6)
    assert losses["loss_mask_0"].item() == losses["loss_dice"].item() == 0.0
    sum(losses.values()).backward()
    assert layer["pred_logits"].grad[0, :, 2].lt(0).all()  # every query pushed towards no object


def test_bf16_outputs_give_the_float32_losses_of_the_same_values():
    gen = torch.Generator().manual_seed(9)
    criterion = build_criterion(MaskFormerConfig(num_classes=3, dec_layers=2, num_queries=5))
    layers = [
        {
            "pred_logits": torch.randn(2, 5, 4, generator=gen).bfloat16(),
            "pred_masks": torch.randn(2, 5, 4, 4, generator=gen).bfloat16(),
        }
        for _ in range(2)
    ]
    targets = [
        {"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 16, 16, generator=gen) > 0.5},
        {"labels": torch.tensor([1]), "masks": torch.rand(1, 16, 16, generator=gen) > 0.5},
    ]
    low = criterion({**layers[1], "aux_outputs": layers[:1]}, targets)
    full = [{k: v.float() for k, v in layer.items()} for layer in layers]
    high = criterion({**full[1], "aux_outputs": full[:1]}, targets)
    assert low.keys() == high.keys()
    for name in high:
        assert low[name].dtype == torch.float32, name
        assert low[name].item() == pytest.approx(high[name].item(), rel=1e-6), name


def test_the_predictors_stacked_layers_give_the_losses_and_gradients_of_the_per_layer_dicts():
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=3))
    images = torch.randn(2, 3, 64, 64)
    targets = [{"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 64, 64) > 0.5},
               {"labels": torch.tensor([1]), "masks": torch.rand(1, 64, 64) > 0.5}]
    out = model(images)
    assert out["layer_logits"].shape == (2, 3, 10, 4) and out["layer_masks"].shape == (2, 3, 10, 16, 16)
    runs = []
    for outputs in (out, {k: out[k] for k in ("pred_logits", "pred_masks", "aux_outputs")}):
        losses = model.criterion(outputs, targets)
        model.zero_grad()
        weighted_loss(losses, model.criterion.weight_dict).backward(retain_graph=True)
        runs.append((losses, [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (stacked, stacked_grads), (dicts, dict_grads) = runs
    assert stacked.keys() == dicts.keys()
    assert all(torch.equal(stacked[k], dicts[k]) for k in dicts)
    assert len(stacked_grads) == len(dict_grads)
    assert all(torch.equal(a, b) for a, b in zip(stacked_grads, dict_grads, strict=True))


def test_weighted_loss_sums_the_weighted_terms_and_names_them_when_none_is_weighted():
    losses = {"loss_ce": torch.tensor(2.0), "loss_dice": torch.tensor(3.0), "extra": torch.tensor(100.0)}
    assert weighted_loss(losses, {"loss_ce": 1.0, "loss_dice": 20.0}).item() == 62.0
    with pytest.raises(KeyError, match="extra.*loss_ce"):
        weighted_loss({"extra": torch.tensor(1.0)}, {"loss_ce": 1.0})
