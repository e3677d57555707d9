"""Ours vs transformers' MaskFormer (R50, 150 classes, 100 queries) side by side in one run on one device.

Run: `python -m benchmarks compare_transformers [--device auto] [--only train loss inference evaluation
max_batch]`; appends JSON lines to benchmarks/results/compare_transformers.jsonl, all records of one run
sharing `run`.
Steps of all implementations are timed in alternating rounds (median reported), so machine noise hits all
alike; peak memory comes from a fresh subprocess per variant (`--probe`), so models do not share a peak.
On a CPU the train step runs a small config (256x256, batch 2, fp32); on a GPU the paper's 512x512, batch 8,
transformers in fp32 and bf16 autocast, ours in fp32 and our default GPU mode.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from pathlib import Path

import torch

from benchmarks.common import RESULTS, device_name, interleaved, random_batch, record
from benchmarks.evaluation_time import measure_evaluation
from benchmarks.flops import count_flops, flops_fields
from benchmarks.hf_maskformer import build_hf_model, hf_aux_loss_crashes
from benchmarks.variants import NUM_CLASSES, NUM_QUERIES, Variant, inference_step, loss_step, train_step
from maskformer.engine import resolve_device
from maskformer.engine.trainer import native_cpu_bf16

ROOT = Path(__file__).resolve().parents[1]


def settings(device: torch.device) -> dict:
    """Sizes and variants per device type: the paper's setting on a GPU, a small one on a CPU."""
    if device.type == "cuda":
        return {"train": (512, 8), "infer": (512, 8), "loss": (512, 8), "eval_images": 50, "max_batch": 256,
                "max_batch_variants": ["ours:noaux:bf16-autocast", "transformers:noaux:fp32",
                                       "transformers:noaux:bf16-autocast"],
                "train_variants": ["ours:noaux:bf16-autocast", "ours:noaux:fp32", "transformers:noaux:fp32",
                                   "transformers:noaux:bf16-autocast", "ours:aux:bf16-autocast"],
                "infer_variants": ["ours:aux:bf16-autocast", "ours:aux:fp32", "transformers:noaux:fp32",
                                   "transformers:noaux:bf16-autocast"]}
    return {"train": (256, 2), "infer": (512, 2), "loss": (512, 2), "eval_images": 8, "max_batch": 4,
            "max_batch_variants": ["ours:noaux:fp32", "transformers:noaux:fp32"],
            "train_variants": ["ours:noaux:fp32", "transformers:noaux:fp32", "ours:aux:fp32"]
            + (["ours:noaux:bf16-autocast", "transformers:noaux:bf16-autocast"] if native_cpu_bf16() else []),
            "infer_variants": ["ours:aux:fp32", "transformers:noaux:fp32"]}


def probe(kind: str, key: str, size: int, batch: int, device: torch.device) -> None:
    """In this fresh process: build one variant, run 3 calls, print its peak memory as one JSON line."""
    images, targets = random_batch(batch, size, NUM_CLASSES, device=device)
    baseline = _rss_gib("VmRSS")
    variant = Variant.parse(key)
    step = train_step(variant, device, images, targets) if kind == "train" else inference_step(
        variant, device, images)
    for _ in range(3):
        step()
    if device.type == "cuda":
        peak, note = torch.cuda.max_memory_allocated(device) / 2**30, "max_memory_allocated"
    else:
        peak, note = _rss_gib("VmHWM") - baseline, "peak RSS minus RSS before the model was built"
    print(json.dumps({"peak_mem_gib": peak, "peak_mem_note": note}))


def _rss_gib(field: str) -> float:
    """A /proc/self/status memory field (VmRSS: now, VmHWM: peak) in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    raise KeyError(field)


def peak_memory(kind: str, key: str, size: int, batch: int, device: torch.device) -> dict:
    """Run `probe` in a subprocess (same device and threads) and return its fields."""
    cmd = [sys.executable, "-m", "benchmarks", "compare_transformers", "--probe", kind, key,
           "--size", str(size), "--batch", str(batch), "--device", device.type]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def headline(seconds: dict[str, float], key: str) -> dict:
    """Speed-up of an `ours` variant over transformers' best no-aux run (min time over its precisions)."""
    theirs = {k: s for k, s in seconds.items() if k.startswith("transformers:")}
    best = min(theirs, key=theirs.get)
    return {"vs": best, "speedup_vs_transformers": theirs[best] / seconds[key]}


def bench_train(device: torch.device, cfg: dict, run: str, args: argparse.Namespace) -> None:
    """Training steps of every variant, interleaved; FLOPs counted once per variant."""
    size, batch = args.size or cfg["train"][0], args.batch or cfg["train"][1]
    images, targets = random_batch(batch, size, NUM_CLASSES, device=device)
    aux_model = build_hf_model(NUM_CLASSES, NUM_QUERIES, aux=True).to(device)
    error = hf_aux_loss_crashes(aux_model, images, targets)
    del aux_model
    record(args.out, benchmark="train_step", impl="transformers", aux=True, run=run,
           device=device_name(device), batch=batch, size=size, dtype="fp32", img_per_s=None,
           peak_mem_gib=None, error=error)
    steps = {key: train_step(Variant.parse(key), device, images, targets) for key in cfg["train_variants"]}
    flops = {key: count_flops(step) for key, step in steps.items()}
    seconds, _ = interleaved(steps, device, args.warmup, args.iters, args.rounds)
    del steps
    for key, sec in seconds.items():
        variant = Variant.parse(key)
        extra = headline(seconds, key) if variant.impl == "ours" else {}
        record(args.out, benchmark="train_step", impl=variant.impl, aux=variant.aux, run=run,
               device=device_name(device), batch=batch, size=size, dtype=variant.dtype,
               mode=variant.mode(device), img_per_s=batch / sec, seconds_per_step=sec,
               **peak_memory("train", key, size, batch, device),
               **flops_fields(flops[key], sec, device_name(device)), **extra,
               iters=args.iters, rounds=args.rounds)


def bench_max_batch(device: torch.device, cfg: dict, run: str, args: argparse.Namespace) -> None:
    """Images/s at the largest batch that fits: the batch doubles from the headline one until the device
    runs out of memory or reaches cfg["max_batch"]; ours in the default GPU mode, theirs in fp32 and bf16."""
    size, batch = args.size or cfg["train"][0], args.batch or cfg["train"][1]
    for key in cfg["max_batch_variants"]:
        variant, found, tried = Variant.parse(key), None, batch
        while tried <= cfg["max_batch"]:
            try:
                images, targets = random_batch(tried, size, NUM_CLASSES, device=device)
                step = train_step(variant, device, images, targets)
                seconds, peaks = interleaved({key: step}, device, 1, args.iters, rounds=1)
                found = (tried, seconds[key], peaks[key])
            except torch.OutOfMemoryError:
                break
            finally:
                images = targets = step = None  # free the model and batch before the next size
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            tried *= 2
        record(args.out, benchmark="train_step", impl=variant.impl, aux=False, run=run,
               device=device_name(device), batch=found and found[0], size=size, dtype=variant.dtype,
               mode=variant.mode(device), setting="largest batch that fits (doubling)",
               out_of_memory_at=tried if tried <= cfg["max_batch"] else None,
               img_per_s=found and found[0] / found[1], peak_mem_gib=found and found[2], iters=args.iters)


def bench_inference(device: torch.device, cfg: dict, run: str, args: argparse.Namespace) -> None:
    """Forward-only images/s of every inference variant, interleaved."""
    size, batch = cfg["infer"]
    images, _ = random_batch(batch, size, NUM_CLASSES, segments=0, device=device)
    steps = {key: inference_step(Variant.parse(key), device, images) for key in cfg["infer_variants"]}
    seconds, _ = interleaved(steps, device, args.warmup, args.iters, args.rounds)
    del steps
    for key, sec in seconds.items():
        variant = Variant.parse(key)
        extra = headline(seconds, key) if variant.impl == "ours" else {}
        record(args.out, benchmark="inference", impl=variant.impl, aux=variant.aux, run=run,
               device=device_name(device), batch=batch, size=size, dtype=variant.dtype,
               mode=variant.mode(device, training=False), img_per_s=batch / sec, seconds_per_batch=sec,
               **peak_memory("inference", key, size, batch, device), **extra,
               iters=args.iters, rounds=args.rounds)


def bench_loss(device: torch.device, cfg: dict, run: str, args: argparse.Namespace) -> None:
    """Matcher + criterion (+ backward) per batch on fixed random predictions, ours vs transformers'."""
    size, batch = cfg["loss"]
    _, targets = random_batch(batch, size, NUM_CLASSES, device=device)
    steps = {impl: loss_step(impl, device, size, targets) for impl in ("ours", "transformers")}
    seconds, peaks = interleaved(steps, device, args.warmup, 3 * args.iters, args.rounds)
    for impl, sec in seconds.items():
        record(args.out, benchmark="loss", impl=impl, aux=False, run=run, device=device_name(device),
               batch=batch, size=size, dtype="fp32", mask_loss="dense", queries=NUM_QUERIES,
               classes=NUM_CLASSES, targets_per_image=8, img_per_s=batch / sec, ms_per_batch=1e3 * sec,
               peak_mem_gib=peaks[impl], speedup_vs_transformers=seconds["transformers"] / sec,
               iters=3 * args.iters, rounds=args.rounds)


def bench_evaluation(device: torch.device, cfg: dict, run: str, args: argparse.Namespace) -> None:
    """Our three evaluations on one fixed set of predictions (transformers ships no metrics to compare)."""
    size, images = cfg["infer"][0], cfg["eval_images"]
    for row in measure_evaluation(images, size, device):
        record(args.out, benchmark="evaluation", impl="ours", run=run, device=device_name(device),
               batch=images, size=size, dtype="fp32", peak_mem_gib=None, **row)


BENCHMARKS = {"train": bench_train, "loss": bench_loss, "inference": bench_inference,
              "evaluation": bench_evaluation, "max_batch": bench_max_batch}


def main(argv: list[str] | None = None) -> None:
    """Run the chosen comparisons (or, with --probe, one peak-memory probe)."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m benchmarks compare_transformers", description=__doc__,
                                     formatter_class=fmt)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--size", type=int, help="train step image size (default: per device)")
    parser.add_argument("--batch", type=int, help="train step batch (default: per device)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=1, help="calls per timed block (loss: 3x)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed blocks per variant")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare_transformers.jsonl")
    parser.add_argument("--probe", nargs=2, metavar=("KIND", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # for every implementation alike
    if args.probe:
        probe(*args.probe, args.size, args.batch, device)
        return
    run = uuid.uuid4().hex[:12]
    cfg = settings(device)
    for name in args.only:
        BENCHMARKS[name](device, cfg, run, args)
