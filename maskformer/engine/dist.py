"""Process-group helpers: rank/world size that also work outside torchrun, and torchrun initialisation."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a default process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """Global rank: the group's, else the launcher's RANK (still right once train() ended the group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def get_world_size() -> int:
    """Number of processes: the group's, else the launcher's WORLD_SIZE, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on rank 0, the only process that writes checkpoints and reports metrics."""
    return get_rank() == 0


def launched_by_torchrun() -> bool:
    """True when torchrun (or an equivalent launcher) set RANK/WORLD_SIZE for more than one process."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_type: str) -> bool:
    """Create the default group from torchrun's env vars (nccl on CUDA, gloo on CPU); True if we created it.

    On CUDA the process is bound to the GPU named by LOCAL_RANK first, as nccl requires.
    """
    if not launched_by_torchrun() or dist.is_initialized():
        return False
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return True
