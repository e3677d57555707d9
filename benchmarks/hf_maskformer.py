"""transformers' MaskFormer built to match ours: R50, 150 classes, 100 queries, random weights."""

from __future__ import annotations

import torch
from torch import nn


def build_hf_model(num_classes: int = 150, num_queries: int = 100, aux: bool = False) -> nn.Module:
    """transformers' MaskFormerForInstanceSegmentation with its ResNet-50, from a config (no download).

    The paper's loss weights (CE 1, focal 20, dice 1, no-object 0.1) are transformers' defaults.
    """
    from transformers import MaskFormerConfig, MaskFormerForInstanceSegmentation, ResNetConfig

    backbone = ResNetConfig(
        depths=[3, 4, 6, 3],
        hidden_sizes=[256, 512, 1024, 2048],
        embedding_size=64,
        layer_type="bottleneck",
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = MaskFormerConfig(backbone_config=backbone, num_labels=num_classes, use_auxiliary_loss=aux)
    config.decoder_config.num_queries = num_queries
    return MaskFormerForInstanceSegmentation(config)


def hf_targets(targets: list[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Our targets (labels [N], bool masks [N, H, W]) as transformers' float mask_labels and class_labels."""
    return [t["masks"].float() for t in targets], [t["labels"] for t in targets]


def hf_loss_module(num_classes: int = 150) -> nn.Module:
    """transformers' MaskFormerLoss with its Hungarian matcher and the paper's weights."""
    from transformers.models.maskformer.modeling_maskformer import MaskFormerHungarianMatcher, MaskFormerLoss

    matcher = MaskFormerHungarianMatcher(cost_class=1.0, cost_mask=20.0, cost_dice=1.0)
    weights = {"loss_cross_entropy": 1.0, "loss_mask": 20.0, "loss_dice": 1.0}
    return MaskFormerLoss(num_classes, matcher=matcher, weight_dict=weights, eos_coef=0.1)


def hf_aux_loss_crashes(model: nn.Module, images: torch.Tensor, targets: list[dict]) -> str | None:
    """Run one aux-loss forward of an aux-configured model; the error it raises, or None if it works."""
    masks, labels = hf_targets(targets)
    try:
        model(images, mask_labels=masks, class_labels=labels)
    except Exception as error:  # noqa: BLE001 - we report whatever it raises
        return f"{type(error).__name__}: {error}"
    return None
