"""Tiny model/dataset obeying the MaskFormer training interface, so engine tests need no real model."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

NUM_CLASSES = 3


class ToyCriterion(nn.Module):
    """Per-pixel cross-entropy plus a small logit penalty; 'loss_unweighted' is reported but not optimised."""

    weight_dict = {"loss_ce": 1.0, "loss_reg": 2.0}

    def forward(self, outputs: dict, targets: list[dict]) -> dict[str, torch.Tensor]:
        logits = outputs["pred_logits"]
        semantic = []
        for t in targets:
            sem = torch.zeros(t["masks"].shape[-2:], dtype=torch.int64, device=logits.device)
            for label, mask in zip(t["labels"], t["masks"], strict=True):
                sem[mask] = label
            semantic.append(sem)
        ce = F.cross_entropy(logits, torch.stack(semantic))
        return {"loss_ce": ce, "loss_reg": 1e-3 * logits.pow(2).mean(), "loss_unweighted": ce.detach() * 0}


class ToyModel(nn.Module):
    """Conv backbone (GroupNorm: per-sample, so DDP equals a bigger batch), class embedding, frozen param."""

    def __init__(self, dropout: float = 0.1, width: int = 8) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(2, width), nn.ReLU())
        self.class_embed = nn.Embedding(NUM_CLASSES, width)
        self.bias = nn.Parameter(torch.zeros(NUM_CLASSES))
        self.frozen = nn.Parameter(torch.ones(1), requires_grad=False)
        self.dropout = nn.Dropout(dropout)
        self.criterion = ToyCriterion()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.dropout(self.backbone(images)) * self.frozen
        logits = torch.einsum("bchw,kc->bkhw", features, self.class_embed.weight) + self.bias[:, None, None]
        return {"pred_logits": logits}


class ToyDataset(Dataset):
    """Fixed random images with two-region masks; a random horizontal flip exercises seeded augmentation."""

    def __init__(self, n: int = 10, size: int = 12, sleep: float = 0.0) -> None:
        self.n, self.size, self.sleep = n, size, sleep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        if self.sleep:
            time.sleep(self.sleep)
        g = torch.Generator().manual_seed(index)
        image = torch.rand(3, self.size, self.size, generator=g)
        left = torch.zeros(self.size, self.size, dtype=torch.bool)
        left[:, : self.size // 2] = True
        masks = torch.stack([left, ~left])
        labels = torch.tensor([index % NUM_CLASSES, (index + 1) % NUM_CLASSES])
        for label, mask in zip(labels, masks, strict=True):
            image[label, mask] += 2.0  # learnable: the brightest channel of a pixel is its class
        if torch.rand(()) < 0.5:
            image, masks = image.flip(-1), masks.flip(-1)
        return image, {"labels": labels, "masks": masks}


def collate(batch: list) -> tuple[torch.Tensor, list[dict]]:
    """Stack images, keep targets as a list of dicts."""
    images, targets = zip(*batch, strict=True)
    return torch.stack(images), list(targets)
