"""The Hungarian matcher finds the minimum-cost assignment (checked by brute force)."""

import itertools

import pytest
import torch
from torch.nn import functional as F

from maskformer import HungarianMatcher, dice_loss, sigmoid_focal_loss
from maskformer.matcher import TargetBatch


def brute_force(cost: torch.Tensor) -> float:
    """Minimum total cost over every injective map of targets to queries."""
    q, n = cost.shape
    return min(sum(cost[rows[j], j].item() for j in range(n)) for rows in itertools.permutations(range(q), n))


def naive_cost(logits, masks, labels, tgt_masks, matcher):
    """Per-pair cost written out with the single-mask loss functions."""
    prob = logits.softmax(-1)
    cost = torch.zeros(len(logits), len(labels))
    for i in range(len(logits)):
        for j in range(len(labels)):
            pair = masks[i].flatten()[None], tgt_masks[j].flatten()[None].float()
            cost[i, j] = (
                -matcher.cost_class * prob[i, labels[j]]
                + matcher.cost_mask * sigmoid_focal_loss(*pair).sum()
                + matcher.cost_dice * dice_loss(*pair).sum()
            )
    return cost


@pytest.mark.parametrize("seed", range(6))
def test_assignment_is_minimum_cost(seed):
    gen = torch.Generator().manual_seed(seed)
    matcher = HungarianMatcher()
    sizes = [int(torch.randint(0, 5, (1,), generator=gen)) for _ in range(3)]
    outputs = {
        "pred_logits": torch.randn(3, 5, 4, generator=gen) * 3,
        "pred_masks": torch.randn(3, 5, 6, 6, generator=gen) * 3,
    }
    targets = [
        {
            "labels": torch.randint(0, 3, (n,), generator=gen),
            "masks": torch.rand(n, 12, 12, generator=gen) > 0.5,
        }
        for n in sizes
    ]
    indices = matcher(outputs, targets)
    for b, (t, (rows, cols)) in enumerate(zip(targets, indices, strict=True)):
        small = torch.nn.functional.interpolate(t["masks"][:, None].float(), size=(6, 6), mode="nearest")[
            :, 0
        ]
        cost = naive_cost(outputs["pred_logits"][b], outputs["pred_masks"][b], t["labels"], small, matcher)
        assert len(rows) == len(cols) == len(t["labels"])
        assert sorted(cols.tolist()) == list(range(len(t["labels"])))
        assert len(set(rows.tolist())) == len(rows)
        if len(t["labels"]):
            found = cost[rows, cols].sum().item()
            assert found == pytest.approx(brute_force(cost), abs=1e-4)


def test_batched_cost_matrix_equals_naive_formula():
    gen = torch.Generator().manual_seed(7)
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=3.0)
    outputs = {
        "pred_logits": torch.randn(2, 4, 3, generator=gen),
        "pred_masks": torch.randn(2, 4, 5, 5, generator=gen),
    }
    targets = [
        {"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 5, 5, generator=gen) > 0.5},
        {"labels": torch.tensor([1]), "masks": torch.rand(1, 5, 5, generator=gen) > 0.5},
    ]
    batch = TargetBatch.build(targets, torch.device("cpu"))
    cost = matcher.cost_matrix(outputs["pred_logits"][:, None], outputs["pred_masks"][:, None], batch)[:, 0]
    for b, t in enumerate(targets):
        expected = naive_cost(
            outputs["pred_logits"][b], outputs["pred_masks"][b], t["labels"], t["masks"], matcher
        )
        torch.testing.assert_close(cost[b, :, : len(t["labels"])], expected, rtol=1e-5, atol=1e-5)


def test_obvious_match():
    # query 2 predicts class 1 with target 0's exact mask; query 0 predicts class 0 with target 1's mask
    mask_a = torch.zeros(8, 8, dtype=torch.bool)
    mask_a[:4] = True
    logits = torch.full((1, 3, 3), -10.0)
    logits[0, 2, 1] = 10.0
    logits[0, 0, 0] = 10.0
    masks = torch.full((1, 3, 8, 8), -10.0)
    masks[0, 2][mask_a] = 10.0
    masks[0, 0][~mask_a] = 10.0
    targets = [{"labels": torch.tensor([1, 0]), "masks": torch.stack([mask_a, ~mask_a])}]
    rows, cols = HungarianMatcher()({"pred_logits": logits, "pred_masks": masks}, targets)[0]
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 1, 2: 0}


def test_matching_all_layers_at_once_gives_each_layer_its_minimum_cost():
    gen = torch.Generator().manual_seed(3)
    matcher = HungarianMatcher()
    logits = torch.randn(3, 3, 5, 4, generator=gen)  # 3 images, 3 layers, 5 queries, 3 classes + 1
    masks = torch.randn(3, 3, 5, 6, 6, generator=gen)
    targets = [
        {"labels": torch.tensor([0, 2]), "masks": torch.rand(2, 24, 24, generator=gen) > 0.5},
        {"labels": torch.tensor([], dtype=torch.int64), "masks": torch.zeros(0, 24, 24, dtype=torch.bool)},
        {"labels": torch.tensor([1, 1, 0]), "masks": torch.rand(3, 24, 24, generator=gen) > 0.5},
    ]
    match = matcher.assign(logits, masks, TargetBatch.build(targets, torch.device("cpu")))
    assert (match.num_layers, match.per_layer) == (3, 5)
    offsets = [0, 2, 2]  # target rows of each image in the concatenated batch
    for layer in range(3):
        for b, t in enumerate(targets):
            mine = (match.layer == layer) & (match.batch == b)
            rows, cols = match.query[mine], match.target[mine] - offsets[b]
            assert sorted(cols.tolist()) == list(range(len(t["labels"])))
            if len(t["labels"]):
                small = F.interpolate(t["masks"][:, None].float(), size=(6, 6), mode="nearest")[:, 0] > 0.5
                cost = naive_cost(logits[b, layer], masks[b, layer], t["labels"], small, matcher)
                assert cost[rows, cols].sum().item() == pytest.approx(brute_force(cost), abs=1e-4)
