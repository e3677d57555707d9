"""The measured callables, ours and transformers': training step, matcher + loss, inference."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.hf_maskformer import build_hf_model, hf_loss_module, hf_targets
from maskformer import MaskFormerConfig, build_model, engine, weighted_loss
from maskformer.engine import build_optimizer, clip_grad_norm
from maskformer.model import build_criterion

NUM_CLASSES, NUM_QUERIES = 150, 100


@dataclass(frozen=True)
class Variant:
    """One implementation in one mode: impl `ours`/`transformers`, deep supervision, precision."""

    impl: str
    aux: bool
    dtype: str  # "fp32" or "bf16-autocast"

    @property
    def key(self) -> str:
        """A stable name, also the probe's command-line spelling: `ours:aux:bf16-autocast`."""
        return f"{self.impl}:{'aux' if self.aux else 'noaux'}:{self.dtype}"

    @classmethod
    def parse(cls, key: str) -> Variant:
        """Inverse of `key`."""
        impl, aux, dtype = key.split(":")
        return cls(impl, aux == "aux", dtype)

    def mode(self, device: torch.device, training: bool = True) -> str:
        """What else the run uses: ours runs the engine's default mode of the device (or amp_cpu)."""
        if self.impl == "ours" and device.type == "cuda" and self.dtype != "fp32":
            return "default GPU mode: bf16 autocast, channels_last, fused AdamW, cudnn.benchmark"
        if self.impl == "ours" and device.type == "cpu" and self.dtype != "fp32":
            return "train.amp_cpu: bf16 autocast, channels_last"
        if self.impl == "ours" and device.type == "cpu" and training:
            return "default CPU training: channels_last, fused AdamW"
        return "plain"


def ours_model(aux: bool) -> nn.Module:
    """Our MaskFormer R50 with the paper's ADE20K settings (frozen-BN backbone, random weights)."""
    cfg = MaskFormerConfig(backbone="resnet50", num_classes=NUM_CLASSES, num_queries=NUM_QUERIES,
                           deep_supervision=aux)
    return build_model(cfg)


def _prepare(variant: Variant, device: torch.device, training: bool
             ) -> tuple[nn.Module, bool, torch.memory_format]:
    """Build the variant's model on the device; returns it, whether autocast is on, the memory format."""
    model = ours_model(variant.aux) if variant.impl == "ours" else build_hf_model(NUM_CLASSES, NUM_QUERIES)
    bf16 = variant.dtype == "bf16-autocast"
    fmt = torch.channels_last if variant.mode(device, training) != "plain" else torch.contiguous_format
    return model.to(device=device, memory_format=fmt), bf16, fmt


def train_step(variant: Variant, device: torch.device, images: torch.Tensor, targets: list[dict]) -> Callable:
    """One full training step: forward, matching + losses, backward, clip (0.01), AdamW step; ours is the
    engine's train_step, transformers' computes its loss in its forward."""
    if variant.impl == "transformers" and variant.aux:
        raise ValueError("transformers' aux loss is not benchmarked: it crashes (see hf_aux_loss_crashes)")
    model, bf16, fmt = _prepare(variant, device, training=True)
    model.train()
    images = images.contiguous(memory_format=fmt)
    amp_dtype = torch.bfloat16 if bf16 else None
    if variant.impl == "ours":
        optimizer = build_optimizer(model)  # fused on CUDA and on the CPU

        def step() -> None:
            engine.train_step(model, model.criterion, optimizer, images, targets, amp_dtype, max_norm=0.01)

        return step

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)
    masks, labels = hf_targets(targets)

    def hf_step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype, enabled=bf16):
            loss = model(images, mask_labels=masks, class_labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(params, 0.01)
        optimizer.step()

    return hf_step


def inference_step(variant: Variant, device: torch.device, images: torch.Tensor) -> Callable:
    """Forward only (eval mode, inference_mode): class and mask logits of a batch."""
    model, bf16, fmt = _prepare(variant, device, training=False)
    model.eval()
    images = images.contiguous(memory_format=fmt)

    @torch.inference_mode()
    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model(images)

    return step


def random_predictions(
    batch: int, size: int, device: torch.device, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed random class logits [B, Q, K+1] and mask logits [B, Q, size/4, size/4] (leaves with grads)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, NUM_QUERIES, NUM_CLASSES + 1, generator=gen)
    masks = torch.randn(batch, NUM_QUERIES, size // 4, size // 4, generator=gen)
    return logits.to(device).requires_grad_(), masks.to(device).requires_grad_()


def loss_step(impl: str, device: torch.device, size: int, targets: list[dict]) -> Callable:
    """Matching + losses + backward of one layer's fixed predictions (no aux), weighted as in training."""
    logits, masks = random_predictions(len(targets), size, device)
    if impl == "ours":
        cfg = MaskFormerConfig(num_classes=NUM_CLASSES, deep_supervision=False)
        criterion = build_criterion(cfg).to(device)

        def total() -> torch.Tensor:
            losses = criterion({"pred_logits": logits, "pred_masks": masks}, targets)
            return weighted_loss(losses, criterion.weight_dict)
    else:
        criterion = hf_loss_module(NUM_CLASSES).to(device)
        hf_masks, labels = hf_targets(targets)

        def total() -> torch.Tensor:
            return weighted_loss(criterion(masks, logits, hf_masks, labels), criterion.weight_dict)

    def step() -> None:
        logits.grad = masks.grad = None
        total().backward()

    return step
