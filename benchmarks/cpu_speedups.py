"""What each CPU speed-up buys our training step (project issue 12), with transformers' step as the peer.

Run: `python -m benchmarks cpu_speedups [--skip-compile]`; appends one JSON line per variant and model to
benchmarks/results/cpu_speedups.jsonl (all of one run share `run`). Two models: the R50 of
compare_transformers (256², batch 2, no aux, transformers' fp32 step alongside) and the default run's model
from params.yaml (128², batch 8). Variants: plain fp32, channels_last, torch.compile of the model, bf16
autocast, bf16 autocast + channels_last (`train.amp_cpu`). Steps alternate in timed rounds.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from benchmarks.common import RESULTS, device_name, interleaved, random_batch, record
from benchmarks.variants import NUM_CLASSES, Variant, ours_model, train_step
from maskformer import MaskFormerConfig, build_model, engine
from maskformer.engine import build_optimizer
from maskformer.engine.trainer import native_cpu_bf16

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # name -> (memory format, compile, autocast dtype)
    "fp32": (torch.contiguous_format, False, None),
    "channels_last": (torch.channels_last, False, None),
    "compile": (torch.contiguous_format, True, None),
    "bf16": (torch.contiguous_format, False, torch.bfloat16),
    "bf16+channels_last": (torch.channels_last, False, torch.bfloat16),
}


def default_model() -> torch.nn.Module:
    """The default run's model (params.yaml `model:`) for the 6 synthetic classes."""
    fields = yaml.safe_load((ROOT / "params.yaml").read_text())["model"]
    return build_model(MaskFormerConfig.from_dict({**fields, "num_classes": 6}))


def our_step(build: Callable[[], torch.nn.Module], variant: str, images: torch.Tensor,
             targets: list[dict]) -> Callable[[], None]:
    """The engine's train_step of a fresh model under one variant."""
    fmt, compiled, amp = VARIANTS[variant]
    torch.manual_seed(0)
    model = build().to(memory_format=fmt).train()
    optimizer = build_optimizer(model)
    forward = torch.compile(model) if compiled else model
    images = images.contiguous(memory_format=fmt)
    return lambda: engine.train_step(forward, model.criterion, optimizer, images, targets, amp, max_norm=0.01)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-compile", action="store_true", help="leave torch.compile out (slow to build)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_speedups.jsonl")
    args = parser.parse_args(argv)
    device, run = torch.device("cpu"), uuid.uuid4().hex[:12]
    variants = [v for v in VARIANTS if not (args.skip_compile and v == "compile")]
    if not native_cpu_bf16():
        variants = [v for v in variants if not v.startswith("bf16")]
    models = {"r50": (lambda: ours_model(False), 256, 2, NUM_CLASSES), "default": (default_model, 128, 8, 6)}
    for name, (build, size, batch, classes) in models.items():
        images, targets = random_batch(batch, size, classes, device=device)
        steps: dict[str, Callable[[], None]] = {}
        build_s = {}
        for variant in variants:
            start = time.perf_counter()
            steps[variant] = our_step(build, variant, images, targets)
            steps[variant]()  # compiles here, outside the timed rounds
            build_s[variant] = time.perf_counter() - start
        if name == "r50":
            steps["transformers fp32"] = train_step(Variant.parse("transformers:noaux:fp32"), device, images,
                                                    targets)
        seconds, _ = interleaved(steps, device, 1, 2, args.rounds)
        for variant, sec in seconds.items():
            record(args.out, benchmark="cpu_speedups", model=name, variant=variant, run=run,
                   device=device_name(device), batch=batch, size=size, img_per_s=batch / sec,
                   vs_fp32=seconds["fp32"] / sec, first_step_s=build_s.get(variant),
                   **({"vs_transformers_fp32": seconds["transformers fp32"] / sec} if name == "r50" else {}))
            print(f"{name:8s} {variant:20s} {batch / sec:7.2f} img/s  {seconds['fp32'] / sec:.2f}x fp32")


if __name__ == "__main__":
    main()
