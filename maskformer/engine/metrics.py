"""Training metrics of a log window: loss means over its steps and the ranks, lr, throughput, GPU memory."""

from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist

from .dist import get_world_size, is_distributed


class LossWindow:
    """Loss sums (on the device: no host sync) and the start time of the steps since the last log."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.tic = time.perf_counter()

    def add(self, values: dict[str, torch.Tensor]) -> None:
        """Add one step's loss terms."""
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0) + value.detach().float()
        self.steps += 1

    def metrics(
        self, step: int, lr: float, batch_size: int, device: torch.device, stop: bool
    ) -> tuple[dict[str, float], bool]:
        """The window's metrics and whether any rank got SIGTERM (`stop`: this one did); one sync.

        Raises FloatingPointError when the mean loss is not finite (checked here only: no extra sync).
        """
        metrics, synced_stop = reduce_means(self.sums, self.steps, stop)
        if not math.isfinite(metrics["loss"]):
            raise FloatingPointError(f"loss is {metrics['loss']} at iteration {step}: {metrics}")
        seconds = time.perf_counter() - self.tic
        metrics["lr"] = lr
        metrics["img_per_s"] = self.steps * batch_size * get_world_size() / max(seconds, 1e-9)
        if device.type == "cuda":
            metrics["gpu_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        return metrics, synced_stop


def reduce_means(sums: dict[str, torch.Tensor], steps: int, stop: bool) -> tuple[dict[str, float], bool]:
    """Means over `steps` of the loss sums, averaged over ranks, and whether any rank set `stop` (1 sync)."""
    names = sorted(sums)
    values = torch.stack([sums[k] for k in names] + [torch.zeros_like(sums[names[0]])]) / steps
    values[-1] = float(stop)
    if is_distributed():
        dist.all_reduce(values)
        values[:-1] /= get_world_size()
    host = values.tolist()
    return dict(zip(names, host[:-1], strict=True)), host[-1] > 0
