"""Does the point-sampled mask loss train as well as the dense one? A short run of the demo's tiny model.

Run: `python -m benchmarks point_sampling_accuracy [--steps 200]`; appends JSON lines to
benchmarks/results/point_sampling.jsonl. Both runs share data, seed and schedule; the point loss keeps
the paper-scale ratio of points to pixels (12544 of 512x512, about 4.8%) and the dense 1/4-res matcher.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import RESULTS, record
from maskformer import build_model, tiny_config
from maskformer.engine import train_step
from pipeline.commands.demo import make_shapes, pixel_accuracy


def train(num_points: int, steps: int, size: int, seed: int) -> dict[str, float]:
    """Train on 8 generated images, evaluate on 8 others; num_points=0 is the dense loss."""
    torch.manual_seed(seed)
    images, targets = make_shapes(8, size, seed)
    test_images, test_targets = make_shapes(8, size, seed + 1000)
    model = build_model(tiny_config(num_classes=3, num_points=num_points))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, model.criterion, optimizer, images, targets)
    return {"train_pixel_acc": pixel_accuracy(model, images, targets),
            "test_pixel_acc": pixel_accuracy(model, test_images, test_targets),
            "train_seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    """Train dense and point-sampled runs for each seed and record their accuracy."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks point_sampling_accuracy", description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1])
    args = parser.parse_args(argv)
    points = round(12544 / 512**2 * args.size**2)
    for seed in args.seeds:
        for num_points in (0, points):
            result = train(num_points, args.steps, args.size, seed)
            record(RESULTS / "point_sampling.jsonl", benchmark="accuracy", impl="ours", device="cpu",
                   batch=8, size=args.size, dtype="fp32", img_per_s=8 * args.steps / result["train_seconds"],
                   peak_mem_gib=None, mask_loss=f"points-{num_points}" if num_points else "dense",
                   seed=seed, steps=args.steps, **result)
