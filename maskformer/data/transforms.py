"""Train/eval transforms (torchvision v2) that keep the image and its segment-id map aligned.

Labels travel as one `tv_tensors.Mask` of segment indices (k + 1 for segment k, 0 = unlabeled), so
every geometric op moves image and labels together; padding writes PAD_ID, which the dataset turns
into "no segment" in the masks and IGNORE in `sem_seg`, never into a class. Two training mappers: the
official semantic one (build_train_transforms) and DETR's COCO panoptic one (build_detr_train_transforms).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


def _image_size(flat_inputs: list[Any]) -> tuple[int, int]:
    """(h, w) of the first image or mask among a transform's inputs (all must share it)."""
    sizes = {tuple(x.shape[-2:]) for x in flat_inputs if isinstance(x, tv_tensors.Image | tv_tensors.Mask)}
    if len(sizes) != 1:
        raise ValueError(f"expected an image and masks of one size, got sizes {sorted(sizes)}")
    return sizes.pop()


def _draw(options: Sequence[int]) -> int:
    """One of `options`, uniformly, from torch's RNG (a seeded data loader repeats it)."""
    return int(options[int(torch.randint(len(options), ()))])


class ShortestEdgeResize(v2.Transform):
    """detectron2's ResizeShortestEdge(sample_style="choice"): the shortest edge becomes one of `sizes`
    (drawn uniformly), the aspect ratio is kept, and the longest edge is at most `max_size` (None: no
    limit); sides rounded to the nearest integer. Images are resized bilinearly (antialiased, as PIL),
    masks by nearest neighbour; other inputs pass through."""

    def __init__(self, sizes: Sequence[int], max_size: int | None = None) -> None:
        super().__init__()
        if not sizes or any(int(s) < 1 for s in sizes):
            raise ValueError(f"ShortestEdgeResize: sizes={list(sizes)} must be a non-empty list of positive "
                             "ints")
        self.sizes, self.max_size = tuple(int(s) for s in sizes), max_size

    def output_size(self, h: int, w: int, short: int) -> tuple[int, int]:
        """The (h, w) an h x w input becomes with shortest edge `short`."""
        scale = short / min(h, w)
        new_h, new_w = h * scale, w * scale
        if self.max_size is not None and max(new_h, new_w) > self.max_size:
            shrink = self.max_size / max(new_h, new_w)
            new_h, new_w = new_h * shrink, new_w * shrink
        return int(new_h + 0.5), int(new_w + 0.5)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"size": self.output_size(*_image_size(flat_inputs), _draw(self.sizes))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        return v2.functional.resize(inpt, list(params["size"]), antialias=True)  # masks: nearest


class RandomRangeCrop(v2.Transform):
    """detectron2's RandomCrop("absolute_range", (low, high)): crop height drawn uniformly from
    [min(h, low), min(h, high)], width likewise from w, at a uniformly drawn position inside the input."""

    def __init__(self, crop_range: tuple[int, int]) -> None:
        super().__init__()
        low, high = crop_range
        if not 1 <= low <= high:
            raise ValueError(f"RandomRangeCrop: crop_range={crop_range} must be 1 <= low <= high")
        self.low, self.high = int(low), int(high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = _image_size(flat_inputs)
        ch = int(torch.randint(min(h, self.low), min(h, self.high) + 1, ()))
        cw = int(torch.randint(min(w, self.low), min(w, self.high) + 1, ()))
        return {"top": int(torch.randint(h - ch + 1, ())), "left": int(torch.randint(w - cw + 1, ())),
                "height": ch, "width": cw}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image | tv_tensors.Mask):
            return inpt
        return v2.functional.crop(inpt, **params)


def build_detr_train_transforms(min_sizes: Sequence[int], max_size: int,
                                crop_sizes: Sequence[int] = (400, 500, 600),
                                crop_range: tuple[int, int] = (384, 600)) -> v2.Compose:
    """The official DETRPanopticDatasetMapper (COCO panoptic): horizontal flip (p 0.5), then with
    probability 0.5 a shortest-edge resize to one of `min_sizes` (longest edge <= max_size), else a
    shortest-edge resize to one of `crop_sizes`, a crop of `crop_range` sides and that same resize to
    `min_sizes`. No fixed-size crop or padding (collate_fn pads each batch), no ColorAugSSD; normalisation.
    """
    final = ShortestEdgeResize(min_sizes, max_size)
    crop_path = v2.Compose([ShortestEdgeResize(crop_sizes), RandomRangeCrop(crop_range), final])
    ops: list[v2.Transform] = [v2.RandomHorizontalFlip(p=0.5), v2.RandomChoice([final, crop_path])]
    return v2.Compose(ops + _normalise())


def build_eval_transforms() -> v2.Compose:
    """Evaluation: original size kept, only normalisation."""
    return v2.Compose(_normalise())
