"""MaskFormer (Cheng, Schwing, Kirillov, NeurIPS 2021) in plain PyTorch: model, loss, inference."""

from maskformer.config import MaskFormerConfig, tiny_config
from maskformer.criterion import (
    PerPixelCriterion,
    SetCriterion,
    dice_loss,
    sigmoid_focal_loss,
    weighted_loss,
)
from maskformer.inference import (
    instance_inference,
    panoptic_inference,
    resize_to_image,
    semantic_inference,
    semantic_maps,
)
from maskformer.matcher import HungarianMatcher
from maskformer.model import MaskFormer, PerPixelBaseline, build_model

__all__ = [
    "HungarianMatcher",
    "MaskFormer",
    "MaskFormerConfig",
    "PerPixelBaseline",
    "PerPixelCriterion",
    "SetCriterion",
    "build_model",
    "dice_loss",
    "instance_inference",
    "panoptic_inference",
    "resize_to_image",
    "semantic_inference",
    "semantic_maps",
    "sigmoid_focal_loss",
    "tiny_config",
    "weighted_loss",
]
