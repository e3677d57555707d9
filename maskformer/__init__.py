"""MaskFormer (Cheng, Schwing, Kirillov, NeurIPS 2021) in plain PyTorch: model, loss, inference."""

from maskformer._lazy import lazy_exports

_EXPORTS = {  # name -> the submodule that defines it
    "MaskFormerConfig": ".config",
    "tiny_config": ".config",
    "PerPixelCriterion": ".criterion",
    "SetCriterion": ".criterion",
    "dice_loss": ".criterion",
    "sigmoid_focal_loss": ".criterion",
    "weighted_loss": ".criterion",
    "instance_inference": ".inference",
    "panoptic_inference": ".inference",
    "resize_to_image": ".inference",
    "semantic_inference": ".inference",
    "semantic_maps": ".inference",
    "HungarianMatcher": ".matcher",
    "MaskFormer": ".model",
    "PerPixelBaseline": ".model",
    "build_model": ".model",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
