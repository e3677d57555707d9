"""Evaluation metrics as detectron2 names them: semantic (mIoU), panoptic (PQ) and instance (mask AP)."""

from maskformer.evaluation.instance import coco_mask_ap, encode_masks
from maskformer.evaluation.panoptic import PanopticEvaluator
from maskformer.evaluation.semantic import SemSegEvaluator

__all__ = ["PanopticEvaluator", "SemSegEvaluator", "coco_mask_ap", "encode_masks"]
