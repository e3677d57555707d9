"""Iteration-based train loop: AMP, DDP, atomic checkpoints, exact resume, SIGTERM-safe, metric callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from .checkpoint import capture_rng_state, find_last, load_checkpoint, restore_rng_state, save_checkpoint
from .config import TrainConfig
from .dist import get_rank, get_world_size, init_distributed, is_distributed
from .metrics import LossWindow
from .runtime import (
    SigtermFlag,
    ignore_sigterm,
    move_to_device,
    progress_bar,
    resolve_device,
    seed_everything,
)
from .sampler import InfiniteShardedSampler, SeededDataset
from .solver import build_lr_scheduler, build_optimizer
from .step import train_step

Callback = Callable[[int, dict[str, float]], None]


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
    """The run once the device and process group are set: set up, resume, then loop to cfg.max_iters."""
    rank, world = get_rank(), get_world_size()
    cfg = replace(cfg, batch_size=per_process_batch(cfg.batch_size, world))
    seed_everything(cfg.seed + rank)
    stateful = _setup(model, cfg, device)
    start_iter = _resume(cfg, stateful, rank, world)
    if start_iter >= cfg.max_iters:  # a finished run: nothing left to do
        return model
    net: nn.Module = model
    if is_distributed():
        net = DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
            gradient_as_bucket_view=True,
        )
    loader = _loader(dataset, cfg, collate_fn, start_iter, device)
    model.train()
    _loop(net, stateful, loader, cfg, callback, device, start_iter)
    return model


def per_process_batch(batch_size: int, world_size: int) -> int:
    """Each process's share of the global batch; an error when the processes cannot share it evenly."""
    if batch_size % world_size:
        raise ValueError(f"TrainConfig.batch_size={batch_size} (the global batch) does not split evenly "
                         f"across {world_size} processes: use a multiple of {world_size}")
    return batch_size // world_size


def native_cpu_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _cpu_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether this run autocasts to bf16 on the CPU (amp_cpu); an error when the CPU has no native bf16,
    where oneDNN would emulate it slower than fp32."""
    if not (cfg.amp_cpu and device.type == "cpu"):
        return False
    if not native_cpu_bf16():
        raise RuntimeError("TrainConfig.amp_cpu: this CPU has no native bf16 (AVX512-BF16 or AMX); "
                           "set amp_cpu false")
    return True


def _memory_format(cfg: TrainConfig, device: torch.device) -> torch.memory_format:
    """channels_last when configured (always with amp_cpu on a CPU), else the contiguous format."""
    return torch.channels_last if cfg.channels_last or _cpu_bf16(cfg, device) else torch.contiguous_format


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype training autocasts to on this device (amp on CUDA, amp_cpu on a CPU), None for fp32."""
    if device.type == "cuda":
        return getattr(torch, cfg.amp_dtype) if cfg.amp else None
    return torch.bfloat16 if _cpu_bf16(cfg, device) else None


def _setup(model: nn.Module, cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """The model on its device, its optimizer, LR schedule and gradient scaler: what checkpoints hold."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
    model.to(device=device, memory_format=_memory_format(cfg, device))
    optimizer = build_optimizer(
        model,
        cfg.lr,
        cfg.weight_decay,
        cfg.weight_decay_norm,
        cfg.weight_decay_embed,
        cfg.backbone_multiplier,
    )
    scheduler = build_lr_scheduler(
        optimizer, cfg.max_iters, cfg.poly_power, cfg.warmup_iters, cfg.warmup_factor,
        name=cfg.lr_scheduler, steps=cfg.steps, gamma=cfg.gamma,
    )
    fp16 = cfg.amp and cuda and cfg.amp_dtype == "float16"
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}


def _loader(
    dataset: Dataset, cfg: TrainConfig, collate_fn: Callable, start_iter: int, device: torch.device
) -> DataLoader:
    """This rank's endless, seeded batches from iteration start_iter on (the global RNG stays untouched)."""
    sampler = InfiniteShardedSampler(
        len(dataset), cfg.seed, get_rank(), get_world_size(), start=start_iter * cfg.batch_size
    )
    return DataLoader(
        SeededDataset(dataset, cfg.seed),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_fn,
        worker_init_fn=ignore_sigterm,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _loop(
    net: nn.Module,
    stateful: dict[str, Any],
    loader: DataLoader,
    cfg: TrainConfig,
    callback: Callback | None,
    device: torch.device,
    start_iter: int,
) -> None:
    """Iterations start_iter..max_iters: a train_step each, metrics every log_period, checkpoints, SIGTERM."""
    model, optimizer, scheduler = stateful["model"], stateful["optimizer"], stateful["scheduler"]
    fmt = _memory_format(cfg, device)
    amp_dtype = autocast_dtype(cfg, device)
    bar = progress_bar(
        total=cfg.max_iters,
        initial=start_iter,
        desc="train",
        dynamic_ncols=True,
        disable=None if get_rank() == 0 else True,
    )  # None: hidden when stderr is not a terminal
    path: Path | None = None
    window = LossWindow()
    try:
        with SigtermFlag() as sigterm:
            data = iter(loader)
            for it in range(start_iter, cfg.max_iters):
                images, targets = next(data)
                images = images.to(device, non_blocking=True, memory_format=fmt)
                total, losses = train_step(
                    net,
                    model.criterion,
                    optimizer,
                    images,
                    move_to_device(targets, device),
                    amp_dtype,
                    stateful["scaler"],
                    cfg.clip_grad_norm,
                )
                lr = max(group["lr"] for group in optimizer.param_groups)  # the head lr of this step
                scheduler.step()
                window.add({"loss": total, **losses})
                step = it + 1
                bar.update(1)

                synced_stop = False  # DDP ranks agree on stopping at log steps only, to avoid a sync per step
                if step % cfg.log_period == 0 or step == cfg.max_iters:
                    synced_stop = _log(window, step, lr, sigterm.requested, cfg, device, bar, callback)
                    window = LossWindow()
                stop = synced_stop if is_distributed() else sigterm.requested

                periodic = step % cfg.checkpoint_period == 0 or step == cfg.max_iters
                if cfg.checkpoint_dir and (stop or periodic):
                    path = _save(cfg, step, stateful)
                if stop:
                    raise TrainingInterruptedError(step, path)
    finally:
        bar.close()


def _log(
    window: LossWindow,
    step: int,
    lr: float,
    stop_requested: bool,
    cfg: TrainConfig,
    device: torch.device,
    bar: Any,
    callback: Callback | None,
) -> bool:
    """The window's metrics to the bar and the callback (rank 0); returns whether any rank got SIGTERM."""
    metrics, synced_stop = window.metrics(step, lr, cfg.batch_size, device, stop_requested)
    if get_rank() == 0:
        bar.set_postfix(
            loss=f"{metrics['loss']:.4g}",
            lr=f"{metrics['lr']:.3g}",
            img_s=f"{metrics['img_per_s']:.1f}",
        )
        if callback is not None:
            callback(step, metrics)
    return synced_stop


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


def _save(cfg: TrainConfig, step: int, stateful: dict[str, Any]) -> Path | None:
    """Collect every rank's RNG state, then rank 0 writes the checkpoint atomically (all ranks must call)."""
    rng = [capture_rng_state()]
    if get_world_size() > 1:
        rng = [None] * get_world_size()
        dist.all_gather_object(rng, capture_rng_state())
    if get_rank() != 0:
        return None
    state = {name: obj.state_dict() for name, obj in stateful.items()}
    return save_checkpoint(cfg.checkpoint_dir, step, {**state, "rng": rng}, keep_last=cfg.keep_last)
