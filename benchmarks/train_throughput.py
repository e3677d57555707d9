"""Training images/s and peak memory of our MaskFormer for the default and the R50 512x512 configs.

Run: `python -m benchmarks train_throughput [--device auto] [--iters N]`; appends JSON lines to
benchmarks/results/train_throughput.jsonl. On a GPU the step uses our default GPU mode (bf16 autocast,
channels_last, fused AdamW).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from benchmarks.common import RESULTS, device_name, peak_memory_gib, random_batch, record, timed
from maskformer import MaskFormerConfig, build_model
from maskformer.engine import build_optimizer, resolve_device, train_step

ROOT = Path(__file__).resolve().parents[1]


def configs() -> dict[str, tuple[MaskFormerConfig, int, int]]:
    """name -> (model config, image size, batch): params.yaml's default and the paper's R50 at 512."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    default = MaskFormerConfig.from_dict({**params["model"], "num_classes": 6})
    return {
        "default": (default, params["input"]["crop_size"], params["train"]["batch_size"]),
        "r50_512": (MaskFormerConfig(backbone="resnet50", num_classes=150), 512, 8),
    }


def measure(
    name: str, cfg: MaskFormerConfig, size: int, batch: int, device: torch.device, iters: int
) -> dict:
    """Time full training steps (forward, matching, losses, backward, clip, AdamW)."""
    model = build_model(cfg).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model)
    images, targets = random_batch(batch, size, cfg.num_classes, device=device)
    amp_dtype = torch.bfloat16 if cuda else None

    def step() -> None:
        train_step(model, model.criterion, optimizer, images, targets, amp_dtype, max_norm=0.01)

    seconds = timed(step, device, warmup=2, iters=iters)
    return record(
        RESULTS / "train_throughput.jsonl",
        benchmark="train_step",
        impl="ours",
        config=name,
        device=device_name(device),
        batch=batch,
        size=size,
        dtype="bf16-autocast" if cuda else "fp32",
        img_per_s=batch / seconds,
        peak_mem_gib=peak_memory_gib(device),
        iters=iters,
    )


def main(argv: list[str] | None = None) -> None:
    """Measure the chosen configs on the chosen device."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks train_throughput", description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--configs", nargs="*", default=["default", "r50_512"])
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    for name in args.configs:
        cfg, size, batch = configs()[name]
        if device.type == "cpu" and name == "r50_512":
            batch = 2  # keeps the CPU run to minutes; the record says which batch was measured
        measure(name, cfg, size, batch, device, args.iters)
