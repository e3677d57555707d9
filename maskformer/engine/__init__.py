"""Training engine: train_step, AdamW + poly schedule, atomic checkpoints with exact resume, DDP, callback."""

from .checkpoint import (
    atomic_save,
    capture_rng_state,
    checkpoint_path,
    find_last,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .dist import get_rank, get_world_size, init_distributed, is_distributed, is_main_process
from .runtime import resolve_device, seed_everything
from .sampler import InfiniteShardedSampler, SeededDataset
from .solver import (
    build_lr_scheduler,
    build_optimizer,
    clip_grad_norm,
    is_norm,
    warmup_multistep_factor,
    warmup_poly_factor,
)
from .step import train_step
from .train import Callback, TrainConfig, TrainingInterruptedError, train

__all__ = [
    "Callback",
    "InfiniteShardedSampler",
    "SeededDataset",
    "TrainConfig",
    "TrainingInterruptedError",
    "atomic_save",
    "build_lr_scheduler",
    "build_optimizer",
    "capture_rng_state",
    "checkpoint_path",
    "clip_grad_norm",
    "find_last",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "is_norm",
    "list_checkpoints",
    "load_checkpoint",
    "restore_rng_state",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
    "train",
    "train_step",
    "warmup_multistep_factor",
    "warmup_poly_factor",
]
