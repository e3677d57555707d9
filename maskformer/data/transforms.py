"""Train/eval transforms (torchvision v2) that keep the image and its segment-id map aligned.

Labels travel as one `tv_tensors.Mask` of segment indices (k + 1 for segment k, 0 = unlabeled), so
every geometric op moves image and labels together; padding writes PAD_ID, which the dataset turns
into "no segment" in the masks and IGNORE in `sem_seg`, never into a class.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from maskformer.data.color_aug import ColorAugSSD

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_PAD = 128  # pixel value of padded image areas before normalisation (as the official mapper)
PAD_ID = -1  # segment-map value of padded areas


def _normalise() -> list[v2.Transform]:
    """uint8 image -> float in [0, 1] -> ImageNet normalisation (masks are left alone)."""
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def build_train_transforms(crop_size: int, scale_range: tuple[float, float] = (0.5, 2.0),
                           color_aug_ssd: bool = True) -> v2.Compose:
    """The official MaskFormer mapper: random shortest-edge resize (0.5-2.0 x crop), random crop with
    padding (image 128, labels PAD_ID), ColorAugSSD, horizontal flip, normalisation.
    """
    low, high = scale_range
    sizes = sorted({int(crop_size * (low + (high - low) * i / 15)) for i in range(16)})
    ops: list[v2.Transform] = [
        v2.RandomShortestSize(min_size=sizes, max_size=crop_size * 4, antialias=True),
        v2.RandomCrop(crop_size, pad_if_needed=True,
                      fill={tv_tensors.Image: IMAGE_PAD, tv_tensors.Mask: PAD_ID}),
    ]
    if color_aug_ssd:
        ops.append(ColorAugSSD())
    ops.append(v2.RandomHorizontalFlip(p=0.5))
    return v2.Compose(ops + _normalise())


def build_eval_transforms() -> v2.Compose:
    """Evaluation: original size kept, only normalisation."""
    return v2.Compose(_normalise())
