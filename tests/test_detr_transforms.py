"""The DETR panoptic mapper (COCO recipe): detectron2's resize rounding, the absolute-range crop, flips,
the two paths and image/mask alignment, with small sizes so it runs in a second."""

import pytest
import torch
from torchvision import tv_tensors

from maskformer.data import IMAGENET_MEAN, IMAGENET_STD, build_detr_train_transforms
from maskformer.data.transforms import RandomRangeCrop, ShortestEdgeResize

SIZES, MAX_SIZE = (48, 64), 90  # 64 on a 60x90 input would make 64x96: the longest edge caps it at 60x90


def _inputs(h: int, w: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Six blocks of ids 1-6 (2 rows x 3 columns, not mirror-symmetric); the red channel is 40 x id."""
    rows = torch.arange(h)[:, None] * 2 // h
    cols = torch.arange(w)[None, :] * 3 // w
    seg = (rows * 3 + cols + 1).to(torch.int32)
    image = torch.stack([seg * 40, torch.zeros_like(seg), torch.full_like(seg, 7)]).to(torch.uint8)
    return tv_tensors.Image(image), tv_tensors.Mask(seg[None])


def _denormalised_red(image: torch.Tensor) -> torch.Tensor:
    return (image[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255


@pytest.mark.parametrize(("hw", "short", "max_size", "expected"), [
    ((300, 400), 480, 1333, (480, 640)),  # scale 1.6
    ((100, 1000), 800, 1333, (133, 1333)),  # 800x8000 capped: x 1333/8000 -> 133.3 x 1333
    ((333, 500), 400, None, (400, 601)),  # 600.6 rounds to 601 (detectron2's int(x + 0.5))
    ((640, 480), 512, 1333, (683, 512)),  # 682.67 -> 683
])
def test_shortest_edge_resize_sizes_as_detectron2(hw, short, max_size, expected):
    op = ShortestEdgeResize([short], max_size)
    assert op.output_size(*hw, short) == expected
    image, mask = op(*_inputs(*hw))
    assert tuple(image.shape[-2:]) == tuple(mask.shape[-2:]) == expected
    assert isinstance(mask, tv_tensors.Mask) and set(mask.unique().tolist()) <= set(range(1, 7))  # nearest


def test_random_range_crop_draws_sides_in_the_range_and_positions_inside():
    torch.manual_seed(0)
    op = RandomRangeCrop((384, 600))
    heights, widths = set(), set()
    for _ in range(200):
        params = op.make_params([tv_tensors.Image(torch.zeros(3, 500, 700, dtype=torch.uint8))])
        assert 384 <= params["height"] <= 500 and 384 <= params["width"] <= 600
        assert 0 <= params["top"] <= 500 - params["height"] and 0 <= params["left"] <= 700 - params["width"]
        heights.add(params["height"])
        widths.add(params["width"])
    assert min(heights) < 400 and max(heights) > 480 and min(widths) < 400 and max(widths) > 580
    small = op.make_params([tv_tensors.Image(torch.zeros(3, 300, 450, dtype=torch.uint8))])
    assert small["height"] == 300 and 384 <= small["width"] <= 450  # min(h, 384) = min(h, 600) = h
    image, mask = _inputs(500, 700)
    crop_image, crop_mask = RandomRangeCrop((384, 600))(image, mask)
    assert crop_image.shape[-2:] == crop_mask.shape[-2:]
    assert torch.equal(crop_image[0].to(torch.int32), crop_mask[0] * 40)  # the same window of both


def test_detr_mapper_sizes_flips_paths_and_alignment():
    torch.manual_seed(0)
    transforms = build_detr_train_transforms(SIZES, MAX_SIZE, crop_sizes=(40, 50), crop_range=(32, 45))
    plain_shapes = {(48, 72), (60, 90)}  # 60x90 at shortest edge 48, and 64 capped by the longest edge
    flips = plain = 0
    for _ in range(200):
        image, mask = transforms(*_inputs(60, 90))
        h, w = image.shape[-2:]
        assert mask.shape[-2:] == (h, w) and image.dtype == torch.float32
        assert isinstance(mask, tv_tensors.Mask)
        assert min(h, w) in SIZES or max(h, w) == MAX_SIZE
        assert max(h, w) <= MAX_SIZE
        plain += (h, w) in plain_shapes  # the crop path's aspect ratio is at most 45/32 < 1.5: never these
        red = _denormalised_red(image)
        agree = ((red / 40).round() == mask[0]).float().mean()
        assert agree > 0.9, agree  # bilinear blends only along block borders
        ids = mask[0]
        left, right = ids[:, 0], ids[:, -1]  # columns grow left to right unless flipped
        flips += bool(((left - 1) % 3 > (right - 1) % 3).any())
    assert 70 <= flips <= 130 and 70 <= plain <= 130, (flips, plain)


def test_detr_mapper_rejects_bad_sizes():
    with pytest.raises(ValueError, match="non-empty list of positive ints"):
        build_detr_train_transforms([], 1333)
    with pytest.raises(ValueError, match="crop_range"):
        build_detr_train_transforms([800], 1333, crop_range=(600, 384))


def test_a_train_step_runs_on_a_detr_batch_of_two_sizes():
    """Images of other sizes in one batch (no fixed crop): collate_fn pads them, the model takes sides that
    32 does not divide, and the multistep schedule steps."""
    from maskformer import build_model, tiny_config
    from maskformer.data import IGNORE, collate_fn
    from maskformer.engine import build_lr_scheduler, build_optimizer, train_step

    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=3, weights=None, pixel_decoder="transformer_encoder"))
    transforms = build_detr_train_transforms((72, 88, 100), 150, crop_sizes=(60, 70), crop_range=(40, 64))
    batch = []
    for h, w in ((90, 130), (120, 80)):
        image, mask = transforms(*_inputs(h, w))
        seg = mask[0].as_subclass(torch.Tensor)
        masks = seg[None] == torch.arange(1, 7)[:, None, None].to(seg.dtype)
        keep = masks.flatten(1).any(1)
        labels = (torch.arange(6) % 3)[keep]
        batch.append((image.as_subclass(torch.Tensor), {"labels": labels, "masks": masks[keep],
                                                        "sem_seg": (seg - 1).long() % 3}))
    images, targets = collate_fn(batch)
    assert images.shape[-2:] == (max(b[0].shape[-2] for b in batch), max(b[0].shape[-1] for b in batch))
    small = min(range(2), key=lambda i: batch[i][0].shape[-2])
    assert (targets[small]["sem_seg"][batch[small][0].shape[-2]:] == IGNORE).all()
    optimizer = build_optimizer(model, lr=1e-4)
    scheduler = build_lr_scheduler(optimizer, 10, name="multistep", steps=[1])
    model.train()
    loss, _ = train_step(model, model.criterion, optimizer, images, targets, max_norm=0.01)
    scheduler.step()
    assert torch.isfinite(loss)
    assert all(g["lr"] == pytest.approx(0.1 * g["initial_lr"]) for g in optimizer.param_groups)
