"""What bounds our training step against transformers' at the same precision: the convolutions both run.

Run: `python -m benchmarks step_bound [--steps 3] [--rounds 3]`; appends one JSON line per implementation
to benchmarks/results/step_bound.jsonl (one `run` id). Both steps are compare_transformers' (R50, 256²,
batch 2, no aux, fp32, on the CPU). Each is timed without the profiler in alternating rounds, then run
under torch.profiler to sum the self time of its convolution ops (forward and backward: the same oneDNN
kernels on the same 153 GFLOP in both implementations). Amdahl's law then bounds any speed-up that keeps
those convolutions: ours can be at most theirs / our convolution time faster, even if all of its other
work took no time. The issue-12 target (1.5x at the same losses) needs that bound above 1.5.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import RESULTS, device_name, interleaved, random_batch, record
from benchmarks.variants import NUM_CLASSES, Variant, train_step

PAIR = ("ours:noaux:fp32", "transformers:noaux:fp32")
SIZE, BATCH = 256, 2


def is_convolution(op: str) -> bool:
    """An aten convolution op, forward or backward (mkldnn_convolution, convolution_backward, ...)."""
    return op.startswith("aten::") and "conv" in op


def profiled_seconds(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """(self CPU seconds of all ops, of the convolution ops) per call of `step`, under torch.profiler."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    totals = prof.key_averages()
    every = sum(e.self_cpu_time_total for e in totals) / 1e6 / steps
    conv = sum(e.self_cpu_time_total for e in totals if is_convolution(e.key)) / 1e6 / steps
    return every, conv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks step_bound", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps per implementation")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (one step each)")
    parser.add_argument("--out", type=Path, default=RESULTS / "step_bound.jsonl")
    args = parser.parse_args(argv)
    device, run = torch.device("cpu"), uuid.uuid4().hex[:12]
    images, targets = random_batch(BATCH, SIZE, NUM_CLASSES)
    steps = {key: train_step(Variant.parse(key), device, images, targets) for key in PAIR}
    seconds, _ = interleaved(steps, device, warmup=1, iters=1, rounds=args.rounds)
    profiled = {key: profiled_seconds(step, args.steps) for key, step in steps.items()}
    ours, theirs = PAIR
    bound = seconds[theirs] / profiled[ours][1]
    for key in PAIR:
        every, conv = profiled[key]
        extra = {"speedup_vs_transformers": seconds[theirs] / seconds[ours],
                 "amdahl_bound_vs_transformers": bound} if key == ours else {}
        row = record(args.out, benchmark="step_bound", impl=Variant.parse(key).impl, run=run,
                     device=device_name(device), threads=torch.get_num_threads(), size=SIZE, batch=BATCH,
                     dtype="fp32", seconds_per_step=seconds[key], profiled_seconds_per_step=every,
                     conv_seconds_per_step=conv, conv_share=conv / every, rounds=args.rounds,
                     profiled_steps=args.steps, **extra)
        print(f"{key}: {seconds[key]:.3f} s/step, convolutions {conv:.3f} s ({row['conv_share']:.0%} of the "
              f"profiled step)")
    print(f"ours / transformers now {seconds[theirs] / seconds[ours]:.2f}x; at most {bound:.2f}x with our "
          f"convolutions as they are")
