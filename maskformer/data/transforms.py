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


def build_train_transforms(crop_size: int | tuple[int, int], scale_range: tuple[float, float] = (0.5, 2.0),
                           color_aug_ssd: bool = True) -> v2.Compose:
    """The official MaskFormer mapper: random shortest-edge resize (0.5-2.0 x the crop's longer side, at
    most 4x it on the longest edge), random crop (a side or (h, w)) with padding (image 128, labels PAD_ID),
    ColorAugSSD, horizontal flip, normalisation. Cityscapes' 512x1024 crop resizes to 512-2048, as there.
    """
    low, high = scale_range
    base = max(crop_size) if isinstance(crop_size, tuple | list) else crop_size
    sizes = sorted({int(base * (low + (high - low) * i / 15)) for i in range(16)})
    crop_size = tuple(crop_size) if isinstance(crop_size, tuple | list) else crop_size
    ops: list[v2.Transform] = [
        v2.RandomShortestSize(min_size=sizes, max_size=base * 4, antialias=True),
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
