"""ColorAugSSD against values computed by hand from its definition (detectron2's ColorAugSSDTransform)."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from maskformer.data.color_aug import ColorAugSSD, color_aug_ssd, hsv_to_rgb, rgb_to_hsv

NONE = {"brightness": None, "contrast_first": True, "contrast": None, "saturation": None, "hue": None}
# RGB (200, 100, 50): V 200, S round(150 * 255 / 200) = 191, H (100 - 50) * 60 / 150 = 20 deg -> 10 of 180
# RGB (10, 20, 250): V 250, S round(240 * 255 / 250) = 245, H 240 + (10 - 20) * 60 / 240 = 237.5 deg -> 119
IMAGE = np.array([[[200, 100, 50], [10, 20, 250]]], np.uint8)


def test_rgb_to_hsv_uses_opencvs_8bit_scale():
    assert rgb_to_hsv(IMAGE).tolist() == [[[10, 191, 200], [119, 245, 250]]]
    grey_and_black = np.array([[[7, 7, 7], [0, 0, 0]]], np.uint8)
    assert rgb_to_hsv(grey_and_black).tolist() == [[[0, 0, 7], [0, 0, 0]]]


def test_hsv_round_trip_loses_at_most_the_hue_quantisation():
    """8-bit hue has 2-degree steps: at most 1 degree off, V * S / 60 <= 4.25 levels of a channel."""
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    error = np.abs(hsv_to_rgb(rgb_to_hsv(rgb)).astype(int) - rgb)
    assert error.max() <= 5 and error.mean() < 1.0


def test_brightness_adds_then_clips_and_truncates():
    out = color_aug_ssd(IMAGE, {**NONE, "brightness": 10.7})
    assert out.tolist() == [[[210, 110, 60], [20, 30, 255]]]  # 260.7 clipped to 255; 210.7 truncated to 210


def test_contrast_scales_every_channel():
    out = color_aug_ssd(IMAGE, {**NONE, "contrast": 1.5})
    assert out.tolist() == [[[255, 150, 75], [15, 30, 255]]]


def test_hue_shifts_in_opencvs_0_to_180_range():
    # H 10 + 18 = 28 (56 deg), S 191/255, V 200: sector 0, r = V, b = V(1 - S) = 50.2, g = V(1 - S(1 - 56/60))
    out = color_aug_ssd(IMAGE[:, :1], {**NONE, "hue": 18})
    assert out.tolist() == [[[200, 190, 50]]]
    wrapped = color_aug_ssd(IMAGE[:, :1], {**NONE, "hue": -18})  # 10 - 18 = -8 -> 172 (344 deg): sector 5
    assert wrapped.tolist() == [[[200, 50, 90]]]  # b = V(1 - S * 16/60) = 90.1


def test_saturation_scales_s_only():
    # S 191 * 0.5 = 95.5 -> 95; V 200, H 20 deg: b = 200 (1 - 95/255) = 125.49, g = 200 (1 - 95/255 * 2/3)
    out = color_aug_ssd(IMAGE[:, :1], {**NONE, "saturation": 0.5})
    assert out.tolist() == [[[200, 150, 125]]]


def test_order_contrast_first_or_last():
    params = {**NONE, "contrast": 2.0, "hue": 18}
    first = color_aug_ssd(IMAGE[:, :1], {**params, "contrast_first": True})  # (255, 200, 100) then hue
    last = color_aug_ssd(IMAGE[:, :1], {**params, "contrast_first": False})  # (200, 190, 50) * 2
    assert last.tolist() == [[[255, 255, 100]]]
    assert first.tolist() != last.tolist()


def test_transform_draws_each_step_with_probability_one_half_and_leaves_masks():
    transform = ColorAugSSD()
    torch.manual_seed(0)
    draws = [transform.make_params([]) for _ in range(2000)]
    for key in ("brightness", "contrast", "saturation", "hue"):
        assert 0.45 < np.mean([d[key] is not None for d in draws]) < 0.55
    assert all(-32 <= d["brightness"] <= 32 for d in draws if d["brightness"] is not None)
    assert {d["hue"] for d in draws if d["hue"] is not None} == set(range(-18, 19))
    image = tv_tensors.Image(torch.from_numpy(IMAGE).permute(2, 0, 1).contiguous())
    mask = tv_tensors.Mask(torch.tensor([[[3, 4]]]))
    out_image, out_mask = transform(image, mask)
    assert isinstance(out_image, tv_tensors.Image) and out_image.dtype == torch.uint8
    assert torch.equal(out_mask, mask)
    with pytest.raises(ValueError, match="uint8 RGB"):
        transform(tv_tensors.Image(image.float()))
