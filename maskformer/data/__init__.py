"""Training data: the canonical-layout Dataset, aligned v2 transforms and a padding collate."""

from maskformer.data.dataset import IGNORE, TASKS, CanonicalDataset, collate_fn
from maskformer.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAD_ID,
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
    "build_eval_transforms",
    "build_train_transforms",
    "collate_fn",
]
