"""Matcher + loss with Mask2Former's point sampling vs our dense loss vs transformers', interleaved.

Run: `python -m benchmarks point_sampling_loss [--size 512] [--batch 2]`; appends JSON lines to
benchmarks/results/point_sampling.jsonl. The point-sampled loss is the library's
(`MaskFormerConfig.num_points`), with Mask2Former's importance sampling (0.75) and with uniform points;
matching stays dense at 1/4 resolution in all.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable

import torch

from benchmarks.common import RESULTS, device_name, interleaved, random_batch, record
from benchmarks.variants import NUM_CLASSES, loss_step, random_predictions
from maskformer import MaskFormerConfig, SetCriterion, weighted_loss
from maskformer.matcher import TargetBatch
from maskformer.model import build_criterion


def point_criterion(num_points: int = 12544, importance: float = 0.75) -> SetCriterion:
    """Our criterion (paper weights, no aux) with the mask losses at `num_points` sampled points, a share
    `importance` of them the most uncertain of 3x as many candidates (0: uniform points)."""
    cfg = MaskFormerConfig(num_classes=NUM_CLASSES, deep_supervision=False, num_points=num_points,
                           importance_sample_ratio=importance)
    return build_criterion(cfg)


def points_step(
    device: torch.device, size: int, targets: list[dict], num_points: int, importance: float
) -> Callable[[], None]:
    """Matching + losses + backward with point sampling, on the same fixed predictions as `loss_step`."""
    logits, masks = random_predictions(len(targets), size, device)
    criterion = point_criterion(num_points, importance).to(device)

    def step() -> None:
        logits.grad = masks.grad = None
        losses = criterion({"pred_logits": logits, "pred_masks": masks}, targets)
        weighted_loss(losses, criterion.weight_dict).backward()

    return step


def loss_values(device: torch.device, size: int, targets: list[dict], num_points: int, draws: int) -> dict:
    """Dense losses and the mean/std of point-sampled ones over `draws` draws, with the same matching."""
    logits, masks = random_predictions(len(targets), size, device)
    logits, masks = logits.detach()[:, None], masks.detach()[:, None]
    dense = build_criterion(MaskFormerConfig(num_classes=NUM_CLASSES, deep_supervision=False)).to(device)
    points = point_criterion(num_points).to(device)
    batch = TargetBatch.build(targets, device)
    match = dense.matcher.assign(logits, masks, batch)
    n = float(sum(len(t["labels"]) for t in targets))
    ref = [v.item() for v in dense.loss_masks(masks, batch, match, n)]
    sampled = torch.tensor([[v.item() for v in points.loss_masks(masks, batch, match, n)]
                            for _ in range(draws)])
    return {"dense_focal_dice": ref, "points_focal_dice_mean": sampled.mean(0).tolist(),
            "points_focal_dice_std": sampled.std(0).tolist()}


def main(argv: list[str] | None = None) -> None:
    """Time the four losses in alternating rounds and record them with the loss values."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks point_sampling_loss", description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=None, help="default: 8 on a GPU, 2 on a CPU")
    parser.add_argument("--points", type=int, default=12544)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    batch = args.batch or (8 if device.type == "cuda" else 2)
    _, targets = random_batch(batch, args.size, NUM_CLASSES, device=device)
    points, uniform = f"points-{args.points}", f"uniform-points-{args.points}"
    steps = {
        ("ours", "dense"): loss_step("ours", device, args.size, targets),
        ("ours", points): points_step(device, args.size, targets, args.points, 0.75),
        ("ours", uniform): points_step(device, args.size, targets, args.points, 0.0),
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
            matcher="dense 1/4 resolution",
            **(values if mask_loss == points else {}),
        )
