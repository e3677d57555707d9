"""Matcher + loss with Mask2Former's point sampling vs our dense loss vs transformers', interleaved.

Run: `python -m benchmarks.point_sampling_loss [--size 512] [--batch 2]`; appends JSON lines to
benchmarks/results/point_sampling.jsonl. The criterion/matcher subclasses here show how the
`maskformer.point_sampling` functions wire into SetCriterion.loss_masks and HungarianMatcher.cost_matrix.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable

import torch
from torch import Tensor

from benchmarks.common import RESULTS, device_name, interleaved, random_batch, record
from benchmarks.variants import NUM_CLASSES, loss_step, random_predictions
from maskformer import HungarianMatcher, MaskFormerConfig, SetCriterion
from maskformer.criterion import _src_permutation, dice_loss, sigmoid_focal_loss
from maskformer.matcher import batch_dice_cost, batch_sigmoid_focal_cost
from maskformer.model import build_criterion
from maskformer.point_sampling import sample_for_loss, sample_for_matching, sampled_logits


class PointMatcher(HungarianMatcher):
    """HungarianMatcher whose mask costs compare masks at `num_points` shared uniform random points."""

    def __init__(self, *args: float, num_points: int = 12544, **kwargs: float) -> None:
        super().__init__(*args, **kwargs)
        self.num_points = num_points

    @torch.no_grad()
    def cost_matrix(self, outputs: dict, targets: list[dict]) -> Tensor:
        """The batched cost matrices [B, Q, Nmax]; targets sampled at full resolution (no resize)."""
        logits, pred_masks = outputs["pred_logits"].float(), outputs["pred_masks"]
        b, q = logits.shape[:2]
        nmax = max(len(t["labels"]) for t in targets)
        labels = torch.zeros(b, nmax, dtype=torch.long, device=logits.device)
        tgt_masks = torch.zeros(b, nmax, *targets[0]["masks"].shape[-2:], device=logits.device)
        for i, t in enumerate(targets):
            labels[i, : len(t["labels"])] = t["labels"]
            tgt_masks[i, : len(t["labels"])] = t["masks"]
        pred_pts, tgt_pts = sample_for_matching(pred_masks, tgt_masks, self.num_points)
        prob = logits.softmax(-1)
        cost = -self.cost_class * torch.gather(prob, 2, labels[:, None, :].expand(b, q, -1))
        cost = cost + self.cost_mask * batch_sigmoid_focal_cost(
            pred_pts, tgt_pts, self.focal_alpha, self.focal_gamma
        )
        return cost + self.cost_dice * batch_dice_cost(pred_pts, tgt_pts)


class PointCriterion(SetCriterion):
    """SetCriterion whose focal and dice losses are taken at uncertainty-sampled points (Mask2Former)."""

    def __init__(self, *args, num_points: int = 12544, oversample_ratio: float = 3.0,
                 importance_ratio: float = 0.75, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_points, self.oversample_ratio, self.importance_ratio = (
            num_points, oversample_ratio, importance_ratio)

    def loss_masks(
        self, outputs: dict, targets: list[dict], indices: list, num_masks: float | Tensor
    ) -> tuple[Tensor, Tensor]:
        """Focal and dice losses of matched masks at sampled points instead of every upsampled pixel."""
        pred = outputs["pred_masks"]
        batch_idx, src_idx = _src_permutation(indices)
        src = pred[batch_idx.to(pred.device), src_idx.to(pred.device)]
        pairs = zip(targets, indices, strict=True)
        tgt = torch.cat([t["masks"][j.to(t["masks"].device)] for t, (_, j) in pairs])
        coords, tgt_pts = sample_for_loss(src, tgt, self.num_points, self.oversample_ratio,
                                          self.importance_ratio)
        src_pts = sampled_logits(src, coords)
        return (
            sigmoid_focal_loss(src_pts, tgt_pts, num_masks, self.focal_alpha, self.focal_gamma),
            dice_loss(src_pts, tgt_pts, num_masks),
        )


def point_criterion(num_points: int = 12544, sampled_matcher: bool = True) -> PointCriterion:
    """Our criterion (paper weights, no aux) with point-sampled losses and, optionally, matching costs."""
    dense = build_criterion(MaskFormerConfig(num_classes=NUM_CLASSES, deep_supervision=False))
    matcher = PointMatcher(1.0, 20.0, 1.0, num_points=num_points) if sampled_matcher else dense.matcher
    return PointCriterion(NUM_CLASSES, matcher, dense.weight_dict, 0.1, num_points=num_points)


def points_step(
    device: torch.device, size: int, targets: list[dict], num_points: int, sampled_matcher: bool
) -> Callable[[], None]:
    """Matching + losses + backward with point sampling, on the same fixed predictions as `loss_step`."""
    logits, masks = random_predictions(len(targets), size, device)
    criterion = point_criterion(num_points, sampled_matcher).to(device)

    def step() -> None:
        logits.grad = masks.grad = None
        losses = criterion({"pred_logits": logits, "pred_masks": masks}, targets)
        torch.stack([losses[k] * criterion.weight_dict[k] for k in losses]).sum().backward()

    return step


def loss_values(device: torch.device, size: int, targets: list[dict], num_points: int, draws: int) -> dict:
    """Dense losses and the mean/std of point-sampled ones over `draws` draws, with the dense matching."""
    logits, masks = random_predictions(len(targets), size, device)
    outputs = {"pred_logits": logits.detach(), "pred_masks": masks.detach()}
    dense = build_criterion(MaskFormerConfig(num_classes=NUM_CLASSES, deep_supervision=False)).to(device)
    points = point_criterion(num_points).to(device)
    indices = dense.matcher(outputs, targets)
    n = float(sum(len(t["labels"]) for t in targets))
    ref = [v.item() for v in dense.loss_masks(outputs, targets, indices, n)]
    sampled = torch.tensor([[v.item() for v in points.loss_masks(outputs, targets, indices, n)]
                            for _ in range(draws)])
    return {"dense_focal_dice": ref, "points_focal_dice_mean": sampled.mean(0).tolist(),
            "points_focal_dice_std": sampled.std(0).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=None, help="default: 8 on a GPU, 2 on a CPU")
    parser.add_argument("--points", type=int, default=12544)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    batch = args.batch or (8 if device.type == "cuda" else 2)
    _, targets = random_batch(batch, args.size, NUM_CLASSES, device=device)
    points = f"points-{args.points}"
    steps = {
        ("ours", "dense"): loss_step("ours", device, args.size, targets),
        ("ours", points): points_step(device, args.size, targets, args.points, sampled_matcher=True),
        ("ours", points + "-loss-only"): points_step(device, args.size, targets, args.points, False),
        ("transformers", "dense"): loss_step("transformers", device, args.size, targets),
    }
    seconds, peaks = interleaved(steps, device, warmup=2, iters=args.iters, rounds=args.rounds)
    values = loss_values(device, args.size, targets, args.points, draws=20)
    run = uuid.uuid4().hex[:12]
    for (impl, mask_loss), sec in seconds.items():
        record(
            RESULTS / "point_sampling.jsonl",
            benchmark="loss", impl=impl, mask_loss=mask_loss, run=run,
            device=device_name(device), batch=batch, size=args.size, dtype="fp32", queries=100,
            classes=NUM_CLASSES, targets_per_image=8, img_per_s=batch / sec, ms_per_batch=1e3 * sec,
            speedup_vs_transformers=seconds["transformers", "dense"] / sec,
            speedup_vs_dense=seconds["ours", "dense"] / sec,
            peak_mem_gib=peaks[impl, mask_loss], iters=args.iters, rounds=args.rounds,
            matcher="dense 1/4 resolution" if mask_loss != points else f"{args.points} random points",
            **(values if mask_loss == points else {}),
        )


if __name__ == "__main__":
    main()
