"""Training data: the canonical layout and its Dataset, aligned v2 transforms and a padding collate."""

from maskformer.data.dataset import TASKS, CanonicalDataset, collate_fn
from maskformer.data.layout import IGNORE, CanonicalLayout, id_to_rgb, rgb_to_id
from maskformer.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAD_ID,
    build_detr_train_transforms,
    build_eval_transforms,
    build_train_transforms,
)

__all__ = [
    "IGNORE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAD_ID",
    "TASKS",
    "CanonicalDataset",
    "CanonicalLayout",
    "build_detr_train_transforms",
    "build_eval_transforms",
    "build_train_transforms",
    "collate_fn",
    "id_to_rgb",
    "rgb_to_id",
]
