"""Semantic segmentation metrics (mIoU, fwIoU, mACC, pACC) from a confusion matrix kept on the device."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist


class SemSegEvaluator:
    """Accumulate a confusion matrix with `torch.bincount` and report detectron2's sem_seg metrics.

    `conf_matrix` is [K+1, K+1] int64, rows = ground truth, columns = prediction; index K is "void":
    row K holds the `ignore_label` pixels (excluded from every metric), column K the predictions
    outside [0, K) (counted as misses of their ground-truth class). Classes absent from the ground
    truth get NaN and are left out of the means, as detectron2 does.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_label: int = 255,
        device: torch.device | str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        """Args: device=None keeps the matrix on the device of the first `update` inputs."""
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.class_names = [str(k) for k in range(num_classes)] if class_names is None else list(class_names)
        self._follow_inputs = device is None
        self.conf_matrix = torch.zeros(num_classes + 1, num_classes + 1, dtype=torch.int64, device=device)

    def reset(self) -> None:
        """Zero the matrix to start a new evaluation."""
        self.conf_matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add one image [H, W] or a batch [B, H, W] of integer class maps (pred and gt of equal shape)."""
        if pred.shape != gt.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != gt shape {tuple(gt.shape)}")
        if self._follow_inputs and self.conf_matrix.device != pred.device:
            self.conf_matrix = self.conf_matrix.to(pred.device)
        device, K = self.conf_matrix.device, self.num_classes
        pred = pred.to(device=device, dtype=torch.int64).flatten()
        gt = gt.to(device=device, dtype=torch.int64).flatten()
        ignored = gt == self.ignore_label
        # a label outside [0, K) that is not the ignore label is a data bug: fail loudly, not silently
        if (~ignored & ((gt < 0) | (gt >= K))).any():
            raise ValueError(f"ground truth holds labels outside [0, {K}) other than {self.ignore_label}")
        gt = gt.masked_fill(ignored, K)
        pred = pred.masked_fill((pred < 0) | (pred >= K), K)
        self.conf_matrix += torch.bincount(gt * (K + 1) + pred, minlength=(K + 1) ** 2).view(K + 1, K + 1)

    def synchronize(self) -> None:
        """Sum the matrices of all ranks in place; call once on every rank after the last `update`."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.conf_matrix)

    def compute(self) -> dict[str, float]:
        """Return mIoU, fwIoU, mACC, pACC and per-class IoU-<name> / ACC-<name>, all in percent."""
        K = self.num_classes
        conf = self.conf_matrix.cpu().double()
        tp = conf.diagonal()[:K]
        pos_gt = conf[:K, :].sum(1)  # includes gt pixels predicted as void: they are misses
        pos_pred = conf[:K, :K].sum(0)  # predictions on ignored pixels do not count
        present = pos_gt > 0
        nan = torch.full_like(tp, math.nan)
        acc = torch.where(present, tp / pos_gt, nan)
        iou = torch.where(present, tp / (pos_gt + pos_pred - tp), nan)
        total = pos_gt.sum()
        results = {
            "mIoU": iou[present].mean().item(),
            "fwIoU": (iou[present] * pos_gt[present] / total).sum().item() if total > 0 else math.nan,
            "mACC": acc[present].mean().item(),
            "pACC": (tp.sum() / total).item(),
        }
        results.update({f"IoU-{name}": iou[k].item() for k, name in enumerate(self.class_names)})
        results.update({f"ACC-{name}": acc[k].item() for k, name in enumerate(self.class_names)})
        return {key: 100.0 * value for key, value in results.items()}
