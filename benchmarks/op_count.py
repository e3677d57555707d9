"""Device ops dispatched per call, ours vs transformers: a proxy for GPU kernel launches.

Run: `python -m benchmarks op_count [--size 128] [--batch 8]`; appends JSON lines to
benchmarks/results/op_count.jsonl. On a GPU, matching and loss move little data (a few MB at 512x512,
batch 8), so their time is set by how many kernels are launched and how often the host waits, not by
FLOPs; a CPU machine can count the launches exactly. Every aten op that computes (views, aliases and
metadata ops excluded) is counted while the callable runs, its backward included, split by phase.
"""

from __future__ import annotations

import argparse
import uuid
from collections import Counter
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.common import RESULTS, random_batch, record
from benchmarks.hf_maskformer import build_hf_model, hf_targets
from benchmarks.variants import NUM_CLASSES, NUM_QUERIES, loss_step, ours_model
from maskformer import weighted_loss

# ops that only create views or read metadata: no kernel on a GPU
VIEW_OPS = {"view", "_unsafe_view", "reshape", "expand", "t", "transpose", "permute", "slice", "select",
            "unsqueeze", "squeeze", "as_strided", "detach", "alias", "unbind", "split", "split_with_sizes",
            "chunk", "narrow", "view_as", "lift_fresh", "_reshape_alias", "diagonal", "unflatten",
            "flatten", "sym_size", "sym_stride", "sym_numel", "is_same_size",
            "_has_compatible_shallow_copy_type"}


class OpCount(TorchDispatchMode):
    """Counts computing aten ops by name while active (this thread and the autograd engine's)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        name = func.overloadpacket.__name__
        if name not in VIEW_OPS:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def count(step: Callable[[], None]) -> Counter[str]:
    """Ops of one call of `step` (after one warm-up call, so lazily built state is not counted)."""
    step()
    with OpCount() as counter:
        step()
    return counter.ops


def forward_backward(impl: str, aux: bool, images: torch.Tensor, targets: list[dict]) -> dict[str, Callable]:
    """The training step without the optimizer, split in `forward_loss` and `backward` (on a GPU both
    optimizers run as a few multi-tensor kernels: fused AdamW for ours, foreach for transformers')."""
    model = ours_model(aux) if impl == "ours" else build_hf_model(NUM_CLASSES, NUM_QUERIES)
    model.train()
    if impl == "ours":
        def loss() -> torch.Tensor:
            return weighted_loss(model.criterion(model(images), targets), model.criterion.weight_dict)
    else:
        masks, labels = hf_targets(targets)

        def loss() -> torch.Tensor:
            return model(images, mask_labels=masks, class_labels=labels).loss

    saved: list[torch.Tensor] = []

    def forward_loss() -> None:
        model.zero_grad(set_to_none=True)
        saved[:] = [loss()]

    def backward() -> None:
        if not saved:
            forward_loss()
        saved.pop().backward()

    return {"forward_loss": forward_loss, "backward": backward}


def main(argv: list[str] | None = None) -> None:
    """Count the ops of the loss and of the training step, ours and transformers'."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks op_count", description=__doc__)
    parser.add_argument("--size", type=int, default=128, help="op counts do not depend on the size")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    images, targets = random_batch(args.batch, args.size, NUM_CLASSES)
    run = uuid.uuid4().hex[:12]
    for impl in ("ours", "transformers"):
        ops = count(loss_step(impl, torch.device("cpu"), args.size, targets))
        _record(args, run, "loss", impl, False, "matcher + loss + its backward", ops)
    for impl, aux in (("ours", False), ("transformers", False), ("ours", True)):
        phases = forward_backward(impl, aux, images, targets)
        phases["forward_loss"]()  # warm-up of the whole step
        phases["backward"]()
        for phase, call in phases.items():
            with OpCount() as counter:
                call()
            _record(args, run, "train_step", impl, aux, phase, counter.ops)


def _record(args: argparse.Namespace, run: str, benchmark: str, impl: str, aux: bool, phase: str,
            ops: Counter[str]) -> None:
    record(RESULTS / "op_count.jsonl", benchmark=benchmark, impl=impl, aux=aux, phase=phase, run=run,
           device="cpu", batch=args.batch, size=args.size, dtype="fp32", img_per_s=None, peak_mem_gib=None,
           aten_ops=sum(ops.values()), top_ops=dict(ops.most_common(10)))
