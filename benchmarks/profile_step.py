"""Where our training step waits for the device: every host-device synchronisation point, by file:line.

Run: `python -m benchmarks profile_step [--device auto]`; writes benchmarks/results/profile_step.txt.
It runs the engine's loop body (`train_step`: forward under autocast on a GPU, losses, backward,
clipping, AdamW; then the LR schedule and the loss sums) on the R50 model with deep supervision and logs,
per step, every call that synchronises on an accelerator: scalar reads (`.item()`, `int()`, `bool()` ->
aten::_local_scalar_dense), ops with data-dependent shapes (nonzero, masked_select, unique),
device-to-host reads (`.cpu()`, `.numpy()`, `.tolist()`), and blocking host-to-device copies of host
tensors (`.to(device)` without pinned memory and non_blocking, which on CUDA also waits for the stream).
On a CPU every tensor is on the host, so host-side calls are logged as candidates (a call on a tensor
that lives on the device in a GPU run); on a GPU, `torch.cuda.set_sync_debug_mode` confirms the real
ones, and the torch.profiler table lists the cudaStreamSynchronize / cudaMemcpy events.
"""

from __future__ import annotations

import argparse
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.common import RESULTS, device_name, random_batch
from benchmarks.variants import NUM_CLASSES, ours_model
from maskformer.engine import build_lr_scheduler, build_optimizer, resolve_device, train_step
from maskformer.engine.metrics import LossWindow
from maskformer.engine.runtime import move_to_device

ROOT = Path(__file__).resolve().parents[1]
SYNC_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "unique_consecutive",
            "repeat_interleave"}
HOST_READS = ("cpu", "numpy", "tolist")


def call_site(immediate: bool = False) -> str | None:
    """file:line of the innermost maskformer/ frame on the stack, else of the innermost torch frame.

    With `immediate`, only the direct caller counts, and None is returned unless it is maskformer/ code.
    """
    frames = [f for f in traceback.extract_stack()[:-2]  # skip this file and torch's private wrappers
              if Path(f.filename) != Path(__file__) and "/torch/_" not in f.filename]
    if immediate:
        frames = frames[-1:]
    for frame in reversed(frames):
        path = Path(frame.filename)
        if ROOT / "maskformer" in path.parents:
            return f"{path.relative_to(ROOT)}:{frame.lineno}"
    if immediate:
        return None
    for frame in reversed(frames):
        if "site-packages/torch/" in frame.filename:
            return f"torch/{frame.filename.split('site-packages/torch/')[1]}:{frame.lineno}"
    return "benchmarks/profile_step.py"


class SyncLog(TorchDispatchMode):
    """Counts aten ops that need the host to see device data (scalar reads, data-dependent shapes)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: Counter[tuple[str, str]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = func.overloadpacket.__name__
        if name in SYNC_OPS:
            self.events[f"aten::{name}", call_site()] += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def host_calls(events: Counter) -> Iterator[None]:
    """Log `.cpu()/.numpy()/.tolist()` and blocking `.to(<device>)` of host tensors while active."""
    originals = {name: getattr(torch.Tensor, name) for name in (*HOST_READS, "to")}

    def reader(name: str) -> Callable:
        def wrapped(self: torch.Tensor, *args, **kwargs):  # noqa: ANN202
            site = call_site(immediate=True)
            if site:
                events[f"Tensor.{name}() of a {self.device.type} tensor", site] += 1
            return originals[name](self, *args, **kwargs)
        return wrapped

    def to(self: torch.Tensor, *args, **kwargs):  # noqa: ANN202
        moves = any(isinstance(a, torch.device | str) for a in args) or "device" in kwargs
        site = call_site(immediate=True)  # torch internals move device tensors, not host ones
        if moves and site and self.device.type == "cpu" and not kwargs.get("non_blocking", False):
            events["Tensor.to(device) of a host tensor, blocking", site] += 1
        return originals["to"](self, *args, **kwargs)

    for name in HOST_READS:
        setattr(torch.Tensor, name, reader(name))
    torch.Tensor.to = to
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)


def engine_step(device: torch.device, size: int, batch: int) -> Callable[[], None]:
    """The body of maskformer.engine.train's loop for one batch (GradScaler off: bf16 needs none)."""
    cuda = device.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = ours_model(aux=True).to(device=device, memory_format=fmt).train()
    optimizer = build_optimizer(model)
    scheduler = build_lr_scheduler(optimizer, 1000)
    amp_dtype = torch.bfloat16 if cuda else None
    host_images, host_targets = random_batch(batch, size, NUM_CLASSES)
    window = LossWindow()

    def step() -> None:
        images = host_images.to(device, non_blocking=True, memory_format=fmt)
        targets = move_to_device(host_targets, device)
        total, losses = train_step(
            model, model.criterion, optimizer, images, targets, amp_dtype, max_norm=0.01
        )
        scheduler.step()
        window.add({"loss": total, **losses})

    return step


def main(argv: list[str] | None = None) -> None:
    """Profile a few steps and write the report."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m benchmarks profile_step", description=__doc__,
                                     formatter_class=fmt)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "profile_step.txt")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    step = engine_step(device, args.size, args.batch)
    step()  # warm-up: optimizer state, cuDNN autotuning
    events: Counter = Counter()
    log = SyncLog()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with warnings.catch_warnings(record=True) as caught, profile(activities=activities) as prof:
        warnings.simplefilter("always")
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
        with log, host_calls(events):
            for _ in range(args.steps):
                step()
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
            torch.cuda.synchronize(device)
    events.update(log.events)
    lines = [f"# Training-step synchronisation profile: {device_name(device)}, R50 + deep supervision "
             f"(6 decoder layers), {args.size}x{args.size}, batch {args.batch}, {args.steps} steps",
             "", "## Sync candidates per step (event, call site)"]
    lines += [f"{n / args.steps:6.1f}  {kind:55s} {site}" for (kind, site), n in sorted(
        events.items(), key=lambda e: (e[0][1], e[0][0]))]
    if device.type == "cuda":
        syncs = Counter(f"{Path(w.filename).name}:{w.lineno} {str(w.message)[:60]}" for w in caught)
        lines += ["", "## torch.cuda sync debug mode warnings per step"]
        lines += [f"{n / args.steps:6.1f}  {site}" for site, n in syncs.most_common()]
    wanted = ("item", "_local_scalar_dense", "nonzero", "Synchronize", "Memcpy", "aten::to", "_to_copy")
    table = [e for e in prof.key_averages() if any(w in e.key for w in wanted)]
    lines += ["", "## torch.profiler events per step (calls)"]
    lines += [f"{e.count / args.steps:6.1f}  {e.key}" for e in sorted(table, key=lambda e: -e.count)]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
