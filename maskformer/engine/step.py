"""One optimisation step of a model and its criterion: the step of train(), also for demos and benchmarks."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from maskformer.criterion import weighted_loss

from .solver import clip_grad_norm


def train_step(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    targets: list[dict[str, Tensor]],
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    max_norm: float = 0.0,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Forward (under autocast to `amp_dtype` if given), losses, backward, clipping (max_norm > 0), step.

    The criterion runs outside autocast: it takes bf16 outputs as they are and computes in float32 only
    what it uses. `scaler` (float16) scales the loss; None is a disabled one. Returns the weighted total
    and the unweighted loss terms, as device tensors (no host sync).
    """
    if scaler is None:
        scaler = torch.amp.GradScaler(images.device.type, enabled=False)
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        outputs = model(images)
    losses = criterion(outputs, targets)
    total = weighted_loss(losses, criterion.weight_dict)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    if max_norm > 0:
        scaler.unscale_(optimizer)
        clip_grad_norm(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    return total, losses
