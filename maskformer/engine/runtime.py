"""Process-level helpers of the train loop: device choice, seeding, SIGTERM flag, nested tensor moves."""

from __future__ import annotations

import os
import random
import signal
import threading
from typing import Any

import numpy as np
import torch

from .dist import launched_by_torchrun


class SigtermFlag:
    """Context manager: while active, SIGTERM only sets `requested` (main thread only), then restored."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> SigtermFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)


def ignore_sigterm(worker_id: int) -> None:
    """Loader workers' init: a SIGTERM to the process group leaves stopping to the main process, which
    checkpoints first (torch's own handler would end the worker and fail the main one's next batch)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def resolve_device(name: str = "auto") -> torch.device:
    """'auto': CUDA when available, else CPU; under torchrun LOCAL_RANK's GPU (no context made on GPU 0)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("TrainConfig.device='cuda' but CUDA is not available")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if launched_by_torchrun():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cuda", torch.cuda.current_device())


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and all CUDA devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def move_to_device(obj: Any, device: torch.device) -> Any:
    """Copy every tensor in nested lists/tuples/dicts to `device` (asynchronously from pinned memory)."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(move_to_device(v, device) for v in obj)
    return obj


class _NoBar:
    """Stands in for a tqdm bar when tqdm is not installed: the library trains without it."""

    def __init__(self, iterable: Any = None, **_: Any) -> None:
        self.iterable = iterable

    def __iter__(self) -> Any:
        return iter(self.iterable)

    def update(self, n: int = 1) -> None:
        """Nothing to show."""

    def set_postfix(self, **_: Any) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def progress_bar(iterable: Any = None, **kwargs: Any) -> Any:
    """A tqdm progress bar when tqdm is installed, else a silent stand-in with the same methods."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar(iterable, **kwargs)
    return tqdm(iterable, **kwargs)
