"""Evaluation metrics as detectron2 names them: semantic (mIoU), panoptic (PQ) and instance (mask AP), and
instances from a per-pixel semantic map by connected components (the per-pixel baseline's)."""

from maskformer._lazy import lazy_exports

_EXPORTS = {  # name -> the submodule that defines it
    "InferenceConfig": ".config",
    "Instances": ".components",
    "semantic_to_instances": ".components",
    "touching_same_class_pairs": ".components",
    "coco_mask_ap": ".instance",
    "encode_masks": ".instance",
    "PanopticEvaluator": ".panoptic",
    "SemSegEvaluator": ".semantic",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
