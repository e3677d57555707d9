"""Training images/s and peak memory of our MaskFormer for the default and the R50 512x512 configs.

Run: `python benchmarks/train_throughput.py [--device auto] [--iters N]`; appends JSON lines to
benchmarks/results/train_throughput.jsonl. On a GPU the step uses our default GPU mode (bf16 autocast,
channels_last, fused AdamW).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run by path (python benchmarks/train_throughput.py): find benchmarks/

from benchmarks.common import (  # noqa: E402
    RESULTS,
    device_name,
    peak_memory_gib,
    random_batch,
    record,
    timed,
)
from maskformer import MaskFormerConfig, build_model  # noqa: E402
from maskformer.engine import build_optimizer, clip_grad_norm, resolve_device  # noqa: E402


def configs() -> dict[str, tuple[MaskFormerConfig, int, int]]:
    """name -> (model config, image size, batch): params.yaml's default and the paper's R50 at 512."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    default = MaskFormerConfig.from_dict({**params["model"], "num_classes": 6})
    return {
        "default": (default, params["train"]["crop_size"], params["train"]["batch_size"]),
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
    params = [p for p in model.parameters() if p.requires_grad]
    images, targets = random_batch(batch, size, cfg.num_classes, device=device)
    weights = model.criterion.weight_dict

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            outputs = model(images)
        losses = model.criterion(outputs, targets)
        loss = sum(losses[k] * weights[k] for k in losses)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(params, 0.01)
        optimizer.step()

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--configs", nargs="*", default=["default", "r50_512"])
    args = parser.parse_args()
    device = resolve_device(args.device)
    for name in args.configs:
        cfg, size, batch = configs()[name]
        if device.type == "cpu" and name == "r50_512":
            batch = 2  # keeps the CPU run to minutes; the record says which batch was measured
        measure(name, cfg, size, batch, device, args.iters)


if __name__ == "__main__":
    main()
