"""Shared benchmark helpers: device, synthetic batches, timing and JSON-lines records."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"


def device_name(device: torch.device) -> str:
    """The name torch reports for the device, or `cpu`."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (timings of different machines do not compare)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def random_batch(
    batch: int,
    size: int,
    num_classes: int,
    segments: int = 8,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, list[dict]]:
    """Random images and targets with `segments` random rectangles per image (equal work for all impls)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=gen)
    targets = []
    for _ in range(batch):
        masks = torch.zeros(segments, size, size, dtype=torch.bool)
        for k in range(segments):
            y0, x0 = torch.randint(0, size // 2, (2,), generator=gen).tolist()
            h, w = torch.randint(size // 8, size // 2, (2,), generator=gen).tolist()
            masks[k, y0 : y0 + h, x0 : x0 + w] = True
        labels = torch.randint(0, num_classes, (segments,), generator=gen)
        targets.append({"labels": labels.to(device), "masks": masks.to(device)})
    return images.to(device), targets


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated GPU memory, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def timed(step: Callable[[], None], device: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call of `step` after `warmup` calls (one timed block, the device synchronised)."""
    return interleaved({"step": step}, device, warmup, iters, rounds=1)[0]["step"]


def interleaved(
    steps: dict[Any, Callable[[], None]], device: torch.device, warmup: int, iters: int, rounds: int
) -> tuple[dict[Any, float], dict[Any, float | None]]:
    """Median seconds per call of each step, timed in alternating rounds so machine noise hits all alike.

    Returns (seconds per call, peak device memory in GiB while each step ran: None on CPU, where the
    allocator's peak is not tracked; on a GPU it includes everything resident, e.g. other models).
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[Any, list[float]] = {name: [] for name in steps}
    peaks: dict[Any, float | None] = dict.fromkeys(steps)
    for _ in range(rounds):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            start = time.perf_counter()
            for _ in range(iters):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                peaks[name] = max(peaks[name] or 0.0, torch.cuda.max_memory_allocated(device) / 2**30)
            samples[name].append((time.perf_counter() - start) / iters)
    return {name: statistics.median(values) for name, values in samples.items()}, peaks


def record(path: Path, **fields) -> dict:
    """Append one measurement (with versions and date) to a JSON-lines file and return it."""
    import torchvision

    transformers = sys.modules.get("transformers")
    entry = {
        **fields,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "transformers": getattr(transformers, "__version__", None),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "load_avg_1m": os.getloadavg()[0],  # > cores: other processes shared the machine (noisy timings)
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(entry) + "\n")
    print(json.dumps(entry))
    return entry
