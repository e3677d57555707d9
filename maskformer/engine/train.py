"""Iteration-based train loop: AMP, DDP, atomic checkpoints, exact resume, SIGTERM-safe, metric callback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from .checkpoint import capture_rng_state, find_last, load_checkpoint, restore_rng_state, save_checkpoint
from .dist import get_rank, get_world_size, init_distributed, is_distributed
from .runtime import SigtermFlag, move_to_device, progress_bar, resolve_device, seed_everything
from .sampler import InfiniteShardedSampler, SeededDataset
from .solver import build_lr_scheduler, build_optimizer, clip_grad_norm

Callback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    """Training hyper-parameters (defaults: MaskFormer's ADE20K schedule except max_iters/batch_size)."""

    device: str = "auto"  # "auto": CUDA when present, else CPU
    max_iters: int = 1000
    batch_size: int = 16  # per process
    num_workers: int = 4
    seed: int = 0
    lr: float = 1e-4
    weight_decay: float = 1e-4
    weight_decay_norm: float = 0.0
    weight_decay_embed: float = 0.0
    backbone_multiplier: float = 0.1
    poly_power: float = 0.9
    warmup_iters: int = 0
    warmup_factor: float = 1.0
    clip_grad_norm: float = 0.01  # full-model L2 clipping; <= 0 disables
    checkpoint_period: int = 1000
    checkpoint_dir: str | None = None  # None: no checkpoints, no resume
    keep_last: int = 3  # checkpoints kept on disk; <= 0 keeps all
    amp: bool = True  # autocast on CUDA only
    amp_dtype: str = "bfloat16"  # or "float16" (then a GradScaler is used)
    channels_last: bool = True  # CUDA only
    cudnn_benchmark: bool = True  # CUDA only
    find_unused_parameters: bool = False  # DDP: needed if some parameters get no gradient in a step
    log_period: int = 20  # callback/progress every log_period steps; DDP also checks SIGTERM then

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"TrainConfig.device={self.device!r}: must be 'auto', 'cpu' or 'cuda'")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"TrainConfig.amp_dtype={self.amp_dtype!r}: must be 'bfloat16' or 'float16'")
        for name in ("max_iters", "batch_size", "checkpoint_period", "log_period"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.num_workers < 0 or self.warmup_iters < 0:
            raise ValueError("TrainConfig.num_workers and warmup_iters must be >= 0")


class TrainingInterruptedError(RuntimeError):
    """Raised by train() after SIGTERM, once the checkpoint of the last finished iteration is written."""

    def __init__(self, iteration: int, checkpoint: Path | None) -> None:
        super().__init__(f"training stopped by SIGTERM after iteration {iteration}; checkpoint: {checkpoint}")
        self.iteration, self.checkpoint = iteration, checkpoint


def train(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    collate_fn: Callable[[list[Any]], tuple[torch.Tensor, list[dict[str, torch.Tensor]]]],
    callback: Callback | None = None,
) -> nn.Module:
    """Train `model` for cfg.max_iters iterations (resuming from cfg.checkpoint_dir) and return it.

    Under torchrun the default process group is created here (and destroyed on exit) unless the caller
    already created one. Raises TrainingInterruptedError after a SIGTERM, once a checkpoint is written.
    """
    device = resolve_device(cfg.device)
    created = init_distributed(device.type)
    try:
        return _train(model, dataset, cfg, collate_fn, callback, device)
    finally:
        if created:
            dist.destroy_process_group()


def _train(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    collate_fn: Callable,
    callback: Callback | None,
    device: torch.device,
) -> nn.Module:
    """The loop itself, once the device and process group are set."""
    rank, world = get_rank(), get_world_size()
    cuda = device.type == "cuda"
    seed_everything(cfg.seed + rank)
    if cuda:
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    fmt = torch.channels_last if cuda and cfg.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt)
    optimizer = build_optimizer(
        model,
        cfg.lr,
        cfg.weight_decay,
        cfg.weight_decay_norm,
        cfg.weight_decay_embed,
        cfg.backbone_multiplier,
    )
    scheduler = build_lr_scheduler(
        optimizer, cfg.max_iters, cfg.poly_power, cfg.warmup_iters, cfg.warmup_factor
    )
    amp_dtype = getattr(torch, cfg.amp_dtype)
    use_amp = cfg.amp and cuda
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    trainables = [p for p in model.parameters() if p.requires_grad]

    stateful = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}

    def state() -> dict[str, Any]:
        return {name: obj.state_dict() for name, obj in stateful.items()}

    start_iter = _resume(cfg, stateful, rank, world)
    if start_iter >= cfg.max_iters:  # a finished run: nothing left to do
        return model

    net: nn.Module = model
    if is_distributed():
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if cuda else None,
            find_unused_parameters=cfg.find_unused_parameters,
            gradient_as_bucket_view=True,
        )
    criterion = model.criterion
    sampler = InfiniteShardedSampler(len(dataset), cfg.seed, rank, world, start=start_iter * cfg.batch_size)
    loader = DataLoader(
        SeededDataset(dataset, cfg.seed),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_fn,
        pin_memory=cuda,
        generator=torch.Generator().manual_seed(cfg.seed),
    )  # keeps the global RNG untouched

    bar = progress_bar(
        total=cfg.max_iters,
        initial=start_iter,
        desc="train",
        dynamic_ncols=True,
        disable=None if rank == 0 else True,
    )  # None: hidden when stderr is not a terminal
    path: Path | None = None
    sums: dict[str, torch.Tensor] = {}
    window, tic = 0, time.perf_counter()
    model.train()
    try:
        with SigtermFlag() as sigterm:
            data = iter(loader)
            for it in range(start_iter, cfg.max_iters):
                images, targets = next(data)
                images = images.to(device, non_blocking=True, memory_format=fmt)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    outputs = net(images)
                total, losses = _losses(criterion, outputs, move_to_device(targets, device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if cfg.clip_grad_norm > 0:
                    scaler.unscale_(optimizer)
                    clip_grad_norm(trainables, cfg.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                lr = max(group["lr"] for group in optimizer.param_groups)  # the head lr of this step
                scheduler.step()
                for name, value in {"loss": total, **losses}.items():
                    sums[name] = sums.get(name, 0) + value.detach().float()
                window += 1
                step = it + 1
                bar.update(1)

                synced_stop = False  # DDP ranks agree on stopping at log steps only, to avoid a sync per step
                if step % cfg.log_period == 0 or step == cfg.max_iters:
                    metrics, synced_stop = _reduce_metrics(sums, window, sigterm.requested)
                    if not math.isfinite(metrics["loss"]):  # checked when logging only: no extra sync
                        raise FloatingPointError(f"loss is {metrics['loss']} at iteration {step}: {metrics}")
                    seconds = time.perf_counter() - tic
                    metrics["lr"] = lr
                    metrics["img_per_s"] = window * cfg.batch_size * world / max(seconds, 1e-9)
                    if cuda:
                        metrics["gpu_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                    if rank == 0:
                        bar.set_postfix(
                            loss=f"{metrics['loss']:.4g}",
                            lr=f"{metrics['lr']:.3g}",
                            img_s=f"{metrics['img_per_s']:.1f}",
                        )
                        if callback is not None:
                            callback(step, metrics)
                    sums, window, tic = {}, 0, time.perf_counter()
                stop = synced_stop if is_distributed() else sigterm.requested

                periodic = step % cfg.checkpoint_period == 0 or step == cfg.max_iters
                if cfg.checkpoint_dir and (stop or periodic):
                    path = _save(cfg, step, state, world)
                if stop:
                    raise TrainingInterruptedError(step, path)
    finally:
        bar.close()
    return model


def _resume(cfg: TrainConfig, stateful: dict[str, Any], rank: int, world: int) -> int:
    """Load the newest checkpoint into `stateful` and this rank's RNGs; return its iteration (0: none)."""
    last = find_last(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    if last is None:
        return 0
    ckpt = load_checkpoint(last)
    for name, obj in stateful.items():
        if name == "scaler" and not ckpt[name]:  # saved by a disabled (non-fp16) scaler
            continue
        obj.load_state_dict(ckpt[name])
    if len(ckpt["rng"]) == world:
        restore_rng_state(ckpt["rng"][rank])
    else:  # the world size changed: exact continuation is impossible, stay deterministic
        seed_everything(cfg.seed + rank + 1_000_003 * ckpt["iteration"])
    return ckpt["iteration"]


def _losses(criterion: nn.Module, outputs: Any, targets: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Unweighted loss terms and their weighted sum, the loss to optimise. Called outside autocast: the
    criteria take bf16 outputs as they are and compute in float32 only what they use."""
    losses = criterion(outputs, targets)
    weight_dict: dict[str, float] = criterion.weight_dict
    weighted = [losses[k] * weight_dict[k] for k in losses if k in weight_dict]
    if not weighted:
        raise KeyError(f"no loss term {sorted(losses)} is in criterion.weight_dict {sorted(weight_dict)}")
    return torch.stack(weighted).sum(), losses


def _reduce_metrics(sums: dict[str, torch.Tensor], window: int, stop: bool) -> tuple[dict[str, float], bool]:
    """Window means of the loss terms, averaged over ranks, plus whether any rank got SIGTERM (one sync)."""
    names = sorted(sums)
    values = torch.stack([sums[k] for k in names] + [torch.zeros_like(sums[names[0]])]) / window
    values[-1] = float(stop)
    if is_distributed():
        dist.all_reduce(values)
        values[:-1] /= get_world_size()
    host = values.tolist()
    return dict(zip(names, host[:-1], strict=True)), host[-1] > 0


def _save(cfg: TrainConfig, step: int, state: Callable[[], dict[str, Any]], world: int) -> Path | None:
    """Collect every rank's RNG state, then rank 0 writes the checkpoint atomically (all ranks must call)."""
    rng = [capture_rng_state()]
    if world > 1:
        rng = [None] * world
        dist.all_gather_object(rng, capture_rng_state())
    if get_rank() != 0:
        return None
    return save_checkpoint(cfg.checkpoint_dir, step, {**state(), "rng": rng}, keep_last=cfg.keep_last)
