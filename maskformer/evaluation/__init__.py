"""Evaluation metrics as detectron2 names them: semantic (mIoU), panoptic (PQ) and instance (mask AP), and
instances from a per-pixel semantic map by connected components (the per-pixel baseline's)."""

from maskformer.evaluation.components import Instances, semantic_to_instances, touching_same_class_pairs
from maskformer.evaluation.instance import coco_mask_ap, encode_masks
from maskformer.evaluation.panoptic import PanopticEvaluator
from maskformer.evaluation.semantic import SemSegEvaluator

__all__ = [
    "Instances",
    "PanopticEvaluator",
    "SemSegEvaluator",
    "coco_mask_ap",
    "encode_masks",
    "semantic_to_instances",
    "touching_same_class_pairs",
]
