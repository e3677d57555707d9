"""ColorAugSSD: the official MaskFormer mapper's colour augmentation (detectron2's ColorAugSSDTransform).

From SSD (Liu et al., ECCV 2016): brightness +-32, then either contrast, saturation, hue or saturation,
hue, contrast, each applied with probability 0.5, on 8-bit images: every step ends as uint8 (clipped,
then truncated as numpy's astype does) and saturation/hue work in OpenCV's 8-bit HSV (H in 0-179,
S and V in 0-255). Only images change; masks pass through untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

_SHIFT = 12  # OpenCV's fixed-point precision for 8-bit RGB -> HSV


def _to_uint8(x: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """x * alpha + beta in float32, clipped to 0-255 and truncated to uint8 (the reference's convert)."""
    return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> uint8 HSV as OpenCV's COLOR_RGB2HSV (fixed-point tables, ties r then g)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    v = np.maximum(np.maximum(r, g), b)
    diff = v - np.minimum(np.minimum(r, g), b)
    sdiv = np.where(v > 0, np.round((255 << _SHIFT) / np.maximum(v, 1)), 0).astype(np.int64)
    hdiv = np.where(diff > 0, np.round((180 << _SHIFT) / (6.0 * np.maximum(diff, 1))), 0).astype(np.int64)
    s = (diff * sdiv + (1 << (_SHIFT - 1))) >> _SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv + (1 << (_SHIFT - 1))) >> _SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], -1).astype(np.uint8)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """uint8 HSV (H 0-179) -> uint8 RGB: OpenCV's float formula (sector, fraction), rounded."""
    h = hsv[..., 0].astype(np.float32) * (6.0 / 180.0)
    s, v = hsv[..., 1].astype(np.float32) / 255.0, hsv[..., 2].astype(np.float32)
    sector = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]  # (r, g, b) per sector
    out = np.zeros(hsv.shape, np.float32)
    for k, channels in enumerate(table):
        chosen = sector == k
        for c in range(3):
            out[..., c] = np.where(chosen, channels[c], out[..., c])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def color_aug_ssd(rgb: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Apply drawn parameters (`ColorAugSSD.make_params`) to a uint8 RGB image [H, W, 3]."""
    img = _to_uint8(rgb, beta=params["brightness"]) if params["brightness"] is not None else rgb

    def contrast(x: np.ndarray) -> np.ndarray:
        return _to_uint8(x, alpha=params["contrast"]) if params["contrast"] is not None else x

    def saturation(x: np.ndarray) -> np.ndarray:
        if params["saturation"] is None:
            return x
        hsv = rgb_to_hsv(x)
        hsv[..., 1] = _to_uint8(hsv[..., 1], alpha=params["saturation"])
        return hsv_to_rgb(hsv)

    def hue(x: np.ndarray) -> np.ndarray:
        if params["hue"] is None:
            return x
        hsv = rgb_to_hsv(x)
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + params["hue"]) % 180
        return hsv_to_rgb(hsv)

    steps = (contrast, saturation, hue) if params["contrast_first"] else (saturation, hue, contrast)
    for step in steps:
        img = step(img)
    return img


class ColorAugSSD(v2.Transform):
    """The official mapper's colour augmentation as a torchvision v2 transform on uint8 images [3, H, W].

    Each of brightness (delta 32), contrast and saturation ([0.5, 1.5]) and hue (delta 18 of 180) is
    applied with probability 0.5; contrast comes first or last with probability 0.5. Draws use torch's
    RNG, so a seeded data loader repeats them.
    """

    def __init__(self, brightness_delta: float = 32, contrast_range: tuple[float, float] = (0.5, 1.5),
                 saturation_range: tuple[float, float] = (0.5, 1.5), hue_delta: int = 18) -> None:
        super().__init__()
        self.brightness_delta, self.hue_delta = brightness_delta, hue_delta
        self.contrast_range, self.saturation_range = contrast_range, saturation_range

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        def coin() -> bool:
            return bool(torch.randint(2, ()).item())

        def uniform(low: float, high: float) -> float:
            return float(torch.empty(()).uniform_(low, high))

        d = self.brightness_delta
        return {
            "brightness": uniform(-d, d) if coin() else None,
            "contrast_first": coin(),
            "contrast": uniform(*self.contrast_range) if coin() else None,
            "saturation": uniform(*self.saturation_range) if coin() else None,
            "hue": int(torch.randint(-self.hue_delta, self.hue_delta + 1, ())) if coin() else None,
        }

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        if inpt.dtype != torch.uint8 or inpt.shape[-3] != 3:
            raise ValueError(f"ColorAugSSD needs a uint8 RGB image [3, H, W], got {inpt.dtype} "
                             f"{tuple(inpt.shape)}")
        out = color_aug_ssd(inpt.permute(1, 2, 0).numpy(), params)
        return tv_tensors.wrap(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1), like=inpt)
