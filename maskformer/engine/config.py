"""TrainConfig, the training hyper-parameters, and the check of a learning-rate schedule: no torch, so the
params file is validated without loading it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

LR_SCHEDULERS = ("poly", "multistep")


def check_schedule(name: str, max_iters: int, steps: Sequence[int] = (), gamma: float = 0.1) -> None:
    """A schedule build_lr_scheduler can run: a known name; for multistep a non-empty, strictly increasing
    list of steps within [1, max_iters] (an error with poly) and gamma > 0. Errors name the field."""
    steps = list(steps)
    if name not in LR_SCHEDULERS:
        raise ValueError(f"lr_scheduler={name!r}: must be one of {LR_SCHEDULERS}")
    if name != "multistep":
        if steps:
            raise ValueError(f"steps={steps}: only lr_scheduler multistep uses steps")
        return
    if not steps:
        raise ValueError("steps=[]: lr_scheduler multistep needs at least one step")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)) or steps[0] < 1 or steps[-1] > max_iters:
        raise ValueError(f"steps={steps}: must increase strictly, from >= 1 to <= max_iters={max_iters}")
    if gamma <= 0:
        raise ValueError(f"gamma={gamma}: must be > 0")


@dataclass
class TrainConfig:
    """Training hyper-parameters (defaults: MaskFormer's ADE20K schedule except max_iters/batch_size)."""

    device: str = "auto"  # "auto": CUDA when present, else CPU
    max_iters: int = 1000
    batch_size: int = 16  # the global batch (the paper's IMS_PER_BATCH), split evenly across processes
    num_workers: int = 4
    seed: int = 0
    lr: float = 1e-4
    weight_decay: float = 1e-4
    weight_decay_norm: float = 0.0
    weight_decay_embed: float = 0.0
    backbone_multiplier: float = 0.1
    lr_scheduler: str = "poly"  # poly (WarmupPolyLR, ADE20K) or multistep (WarmupMultiStepLR, COCO)
    poly_power: float = 0.9
    steps: list[int] = field(default_factory=list)  # multistep: iterations where the lr is x gamma
    gamma: float = 0.1
    warmup_iters: int = 0
    warmup_factor: float = 1.0
    clip_grad_norm: float = 0.01  # full-model L2 clipping; <= 0 disables
    checkpoint_period: int = 1000
    checkpoint_dir: str | None = None  # None: no checkpoints, no resume
    keep_last: int = 3  # checkpoints kept on disk; <= 0 keeps all
    amp: bool = True  # autocast on CUDA only
    amp_dtype: str = "bfloat16"  # or "float16" (then a GradScaler is used)
    channels_last: bool = True  # any device: the same losses up to summation order; 1.04-1.08x on a CPU
    amp_cpu: bool = False  # CPU with native bf16 (AVX512-BF16 / AMX): bf16 autocast + channels_last
    cudnn_benchmark: bool = True  # CUDA only
    find_unused_parameters: bool = False  # DDP: needed if some parameters get no gradient in a step
    log_period: int = 20  # callback/progress every log_period steps; DDP also checks SIGTERM then

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"TrainConfig.device={self.device!r}: must be 'auto', 'cpu' or 'cuda'")
        if self.amp_cpu and self.amp_dtype != "bfloat16":
            raise ValueError(f"TrainConfig.amp_cpu needs amp_dtype='bfloat16', got {self.amp_dtype!r}")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"TrainConfig.amp_dtype={self.amp_dtype!r}: must be 'bfloat16' or 'float16'")
        for name in ("max_iters", "batch_size", "checkpoint_period", "log_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.num_workers < 0 or self.warmup_iters < 0:
            raise ValueError("TrainConfig.num_workers and warmup_iters must be >= 0")
        try:
            check_schedule(self.lr_scheduler, self.max_iters, self.steps, self.gamma)
        except ValueError as exc:  # "TrainConfig.steps=...": the params error names train.steps
            raise ValueError(f"TrainConfig.{exc}") from None
