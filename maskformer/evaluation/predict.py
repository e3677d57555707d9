"""Test-time inference as the official code: resize the shortest side, pad, predict, map back to the image."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from maskformer.evaluation.config import InferenceConfig
from maskformer.inference import resize_to_image, semantic_maps


def resize_and_pad(
    image: Tensor, short: int, max_size: int, divisibility: int
) -> tuple[Tensor, tuple[int, int]]:
    """Resize [3, H, W] so the shortest side is `short` (longest <= max_size), zero-pad to the divisibility.

    Returns the padded batch [1, 3, Hp, Wp] and the resized (unpadded) size.
    """
    h, w = image.shape[-2:]
    scale = min(short / min(h, w), max_size / max(h, w))
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size != (h, w):
        image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    ph, pw = (math.ceil(s / divisibility) * divisibility for s in size)
    return F.pad(image, (0, pw - size[1], 0, ph - size[0]))[None], size


class Predictor:
    """Runs a trained model on normalised images [3, H, W] and returns results at their original sizes.

    The batch methods take images of one shape (stacked, so no image sees another's padding: the results
    equal one image at a time); the single-image methods are batches of one.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: InferenceConfig | None = None,
        device: str | torch.device = "cpu",
        amp: bool = False,
    ) -> None:
        self.model = model.eval()
        self.cfg = cfg or InferenceConfig()
        self.device = torch.device(device)
        self.amp = amp  # bf16 autocast on the predictor's device

    @torch.inference_mode()
    def _forward(
        self, images: list[Tensor], scale: float, flip: bool
    ) -> tuple[dict, tuple[int, int], tuple[int, int]]:
        cfg = self.cfg
        short = max(32, round(cfg.test_size * scale))
        longest = round(cfg.max_size * scale)
        padded = [resize_and_pad(im.to(self.device), short, longest, cfg.size_divisibility) for im in images]
        batch, size = torch.cat([b for b, _ in padded]), padded[0][1]
        if flip:
            # flip the image content, not the padding, so the crop after inference stays top-left
            batch[..., : size[1]] = batch[..., : size[1]].flip(-1)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            outputs = self.model(batch)
        return outputs, tuple(batch.shape[-2:]), size

    @staticmethod
    def _same_shape(images: list[Tensor]) -> tuple[int, int]:
        shapes = {tuple(im.shape[-2:]) for im in images}
        if len(shapes) != 1:
            raise ValueError(f"a batch holds images of one shape, got {sorted(shapes)}")
        return shapes.pop()

    def masks_batch(self, images: list[Tensor]) -> list[tuple[Tensor, Tensor]]:
        """Per image: MaskFormer's class logits [Q, K+1] and mask logits [Q, H, W] at the original size."""
        out_size = self._same_shape(images)
        outputs, padded, size = self._forward(images, 1.0, False)
        if "pred_masks" not in outputs:
            raise ValueError("mask predictions need a MaskFormer model, not the per-pixel baseline")
        return [(outputs["pred_logits"][b].float(), resize_to_image(outputs["pred_masks"][b], padded, size,
                                                                    out_size)) for b in range(len(images))]

    def semantic_batch(self, images: list[Tensor]) -> list[Tensor]:
        """Per image: class scores [K, H, W] at the original size, averaged over the test scales and flips."""
        out_size = self._same_shape(images)
        total = None
        views = [(s, f) for s in self.cfg.scales for f in ((False, True) if self.cfg.flip else (False,))]
        for scale, flip in views:
            outputs, padded, size = self._forward(images, scale, flip)
            n = len(images)
            scores = torch.stack(semantic_maps(outputs, padded, [size] * n, [out_size] * n))
            if flip:
                scores = scores.flip(-1)
            total = scores if total is None else total + scores
        return list(total / len(views))

    def masks(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """MaskFormer's class logits [Q, K+1] and mask logits [Q, H, W] at the original size (no TTA)."""
        return self.masks_batch([image])[0]

    def semantic(self, image: Tensor) -> Tensor:
        """Class scores [K, H, W] at the original size, averaged over the test scales and flips."""
        return self.semantic_batch([image])[0]
