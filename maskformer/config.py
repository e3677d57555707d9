"""MaskFormerConfig: every model hyper-parameter with the paper's ADE20K R50 defaults; a tiny variant."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
SWINS = ("swin_t", "swin_s", "swin_b")
BACKBONES = RESNETS + SWINS
ARCHITECTURES = ("maskformer", "per_pixel_baseline")
PIXEL_DECODERS = ("fpn", "transformer_encoder")
BACKBONE_NORMS = ("frozen_bn", "bn")
# what the Transformer decoder attends to (official TRANSFORMER_IN_FEATURE): "res5" is the pixel decoder's
# stride-32 map (res5, or the encoder's output under transformer_encoder); res2-res4 the backbone's finer
# maps; "pixel_embedding" the stride-4 mask features
TRANSFORMER_IN_FEATURES = ("res2", "res3", "res4", "res5", "pixel_embedding")


@dataclass(frozen=True)
class MaskFormerConfig:
    """Hyper-parameters of MaskFormer and the per-pixel baseline (official ADE20K R50 config)."""

    architecture: str = "maskformer"
    backbone: str = "resnet50"
    weights: str | None = None  # None: scratch; imagenet (default), imagenet_v1 / _v2; or a state-dict path
    backbone_norm: str = "frozen_bn"  # ResNets: "frozen_bn" (detectron2, for pretrained weights) or "bn"
    backbone_width: int = 64  # ResNets from scratch: stem/res2 channels (torchvision's 64; 32 for CPU runs)
    num_classes: int = 150
    # pixel decoder (FPN; "transformer_encoder" is the paper's "R50 + 6 Enc" variant for COCO panoptic)
    pixel_decoder: str = "fpn"
    conv_dim: int = 256
    mask_dim: int = 256
    encoder_layers: int = 6
    # transformer decoder
    transformer_in_feature: str = "res5"
    num_queries: int = 100
    hidden_dim: int = 256
    nheads: int = 8
    dim_feedforward: int = 2048
    dec_layers: int = 6
    dropout: float = 0.1
    pre_norm: bool = False
    enforce_input_proj: bool = False
    drop_path_rate: float = 0.3  # Swin only, as the official Swin configs
    # loss and matching
    deep_supervision: bool = True
    no_object_weight: float = 0.1
    class_weight: float = 1.0
    mask_weight: float = 20.0
    dice_weight: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    ignore_label: int = 255
    num_points: int = 0  # > 0: mask losses at this many sampled points (Mask2Former uses 12544); 0: dense
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    # inference
    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    test_topk_per_image: int = 100

    def __post_init__(self) -> None:
        choices = {
            "architecture": ARCHITECTURES,
            "backbone": BACKBONES,
            "pixel_decoder": PIXEL_DECODERS,
            "backbone_norm": BACKBONE_NORMS,
            "transformer_in_feature": TRANSFORMER_IN_FEATURES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"MaskFormerConfig.{name}={getattr(self, name)!r}: must be one of {allowed}")
        positive = (
            "num_classes",
            "backbone_width",
            "conv_dim",
            "mask_dim",
            "num_queries",
            "hidden_dim",
            "nheads",
            "dim_feedforward",
            "dec_layers",
            "test_topk_per_image",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"MaskFormerConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.num_points < 0 or self.oversample_ratio < 1:
            raise ValueError(
                f"MaskFormerConfig.num_points={self.num_points} must be >= 0 and oversample_ratio="
                f"{self.oversample_ratio} >= 1"
            )
        if self.encoder_layers < 0:
            raise ValueError(f"MaskFormerConfig.encoder_layers={self.encoder_layers}: must be >= 0")
        if self.hidden_dim % self.nheads:
            raise ValueError(
                f"MaskFormerConfig.hidden_dim={self.hidden_dim} must be divisible by nheads={self.nheads}"
            )
        for name in (
            "dropout",
            "drop_path_rate",
            "focal_alpha",
            "no_object_weight",
            "object_mask_threshold",
            "overlap_threshold",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"MaskFormerConfig.{name}={getattr(self, name)}: must be in [0, 1]")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MaskFormerConfig:
        """Build from a plain mapping (e.g. a params section); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MaskFormerConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (for checkpoints and tracking)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> MaskFormerConfig:
        """A copy with some fields changed (validated like the constructor)."""
        return self.from_dict({**self.to_dict(), **changes})


# A MaskFormer small enough to train in seconds on a CPU (the demo, tests, benchmarks). BN is trainable:
# from scratch, frozen BN of a random init is the identity and the model trains erratically.
TINY: dict[str, Any] = {
    "backbone": "resnet18",
    "backbone_norm": "bn",
    "num_queries": 10,
    "hidden_dim": 64,
    "nheads": 4,
    "dim_feedforward": 128,
    "dec_layers": 3,
    "conv_dim": 64,
    "mask_dim": 64,
    "encoder_layers": 1,  # pixel_decoder="transformer_encoder" only
    "dropout": 0.0,
}


def tiny_config(num_classes: int = 3, **changes: Any) -> MaskFormerConfig:
    """The tiny model (TINY) for `num_classes` classes, with some fields changed."""
    return MaskFormerConfig(**{**TINY, "num_classes": num_classes, **changes})
