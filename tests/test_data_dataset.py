"""Training data: the canonical Dataset per task, aligned transforms and the padding collate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from data_fixtures import data_params
from PIL import Image
from scipy import ndimage
from torchvision import tv_tensors

from maskformer.data import (
    IGNORE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAD_ID,
    CanonicalDataset,
    build_eval_transforms,
    build_train_transforms,
    collate_fn,
)
from pipeline.stages.download import download
from pipeline.stages.preprocess import preprocess


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    tmp, cwd = tmp_path_factory.mktemp("synthetic"), os.getcwd()
    params = data_params(tmp, "synthetic", synthetic={"num_train": 4, "num_val": 2, "image_size": 64})
    download(params)
    out = preprocess(params).resolve()
    os.chdir(cwd)  # the module's tests start where they would have
    return out


def _unnormalise(img):
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (img * std + mean) * 255


def test_semantic_task_matches_the_semantic_png(processed):
    ds = CanonicalDataset(processed, "val", task="semantic", transforms=build_eval_transforms())
    assert len(ds) == 2 and ds.num_classes == 6 and ds.categories[0]["name"] == "circle"
    image, target = ds[0]
    sem = np.asarray(Image.open(processed / "semantic" / "val" / target["file_name"]))
    assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
    assert target["orig_size"].tolist() == [64, 64]
    assert target["labels"].tolist() == sorted(set(np.unique(sem).tolist()) - {IGNORE})
    for label, mask in zip(target["labels"], target["masks"], strict=True):
        np.testing.assert_array_equal(mask.numpy(), sem == int(label))
    np.testing.assert_array_equal(target["sem_seg"].numpy(), sem)


def test_panoptic_and_instance_tasks(processed):
    pan = json.loads((processed / "annotations" / "panoptic_train.json").read_text())
    for index, ann in enumerate(pan["annotations"]):
        things = sum(s["category_id"] <= 4 for s in ann["segments_info"])
        stuff = len({s["category_id"] for s in ann["segments_info"] if s["category_id"] > 4})
        _, panoptic = CanonicalDataset(processed, "train", task="panoptic")[index]
        _, instance = CanonicalDataset(processed, "train", task="instance")[index]
        assert len(panoptic["labels"]) == things + stuff and len(instance["labels"]) == things
        assert (instance["labels"] < 4).all() and panoptic["masks"].dtype == torch.bool
        assert panoptic["masks"].sum(0).max() == 1  # segments never overlap


def _blocks(size=64, cells=4):
    """An image of distinct flat-colour blocks and the matching segment map (one segment per block)."""
    rng = np.random.default_rng(0)
    colours = rng.choice(np.arange(20, 236, 8), size=(cells * cells, 3))
    seg = np.kron(np.arange(1, cells * cells + 1).reshape(cells, cells), np.ones((size // cells,) * 2, int))
    image = colours[seg - 1].astype(np.uint8)
    return (tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)),
            tv_tensors.Mask(torch.from_numpy(seg.astype(np.int32))[None]), colours)


def test_train_transforms_keep_image_and_masks_aligned():
    image, seg, colours = _blocks()
    transform = build_train_transforms(48, color_aug_ssd=False)
    orders = set()
    for seed in range(12):
        torch.manual_seed(seed)
        img, out = transform(image, seg)
        out = out[0].numpy()
        assert img.shape == (3, 48, 48) and out.shape == (48, 48)
        pixels = _unnormalise(img).permute(1, 2, 0).numpy()
        for k in set(np.unique(out).tolist()) - {PAD_ID}:
            inner = ndimage.binary_erosion(out == k, iterations=2)  # resampling blurs only the edges
            if inner.any():
                expected = np.broadcast_to(colours[k - 1], pixels[inner].shape)
                np.testing.assert_allclose(pixels[inner], expected, atol=2.0)
        if (out == PAD_ID).any():  # padding: grey 128 under label PAD_ID
            np.testing.assert_allclose(pixels[out == PAD_ID], 128, atol=1.0)
        cols = {k: np.nonzero(out == k)[1].mean() for k in (1, 2) if (out == k).any()}
        if len(cols) == 2:
            orders.add(cols[1] < cols[2])  # block 1 is left of block 2 unless flipped
    assert orders == {True, False}  # both flipped and unflipped crops were seen


def test_dataset_padding_is_ignore_not_background(processed):
    transform = build_train_transforms(160, scale_range=(0.5, 0.5))  # shortest edge 80: padded to 160
    _, target = CanonicalDataset(processed, "train", task="panoptic", transforms=transform)[0]
    padded = target["sem_seg"] == IGNORE
    assert padded.sum() >= 160 * 80  # the whole padded half, at least
    assert not target["masks"][:, padded].any()
    assert target["masks"].any(0).sum() + padded.sum() == 160 * 160  # every other pixel has a segment


def test_collate_pads_images_masks_and_ignore():
    batch = []
    for h, w, n in ((10, 12, 2), (8, 15, 3)):
        masks = torch.zeros(n, h, w, dtype=torch.bool)
        masks[0] = True
        target = {"labels": torch.arange(n), "masks": masks, "sem_seg": torch.zeros(h, w, dtype=torch.int64)}
        batch.append((torch.ones(3, h, w), target))
    images, targets = collate_fn(batch)
    assert images.shape == (2, 3, 10, 15)
    assert images[1, :, 8:].abs().sum() == 0 and images[0, :, :, 12:].abs().sum() == 0
    assert [t["masks"].shape for t in targets] == [(2, 10, 15), (3, 10, 15)]
    assert not targets[1]["masks"][:, 8:].any() and (targets[1]["sem_seg"][8:] == IGNORE).all()
    assert (targets[0]["sem_seg"][:, :12] == 0).all() and (targets[0]["sem_seg"][:, 12:] == IGNORE).all()


def test_rectangular_crop_scales_from_its_longer_side(processed):
    """Cityscapes' 512x1024 crop: shortest edge resized to 0.5-2.0 x 1024, crops of height x width."""
    transform = build_train_transforms((32, 48), scale_range=(1.0, 1.0), color_aug_ssd=False)
    image, target = CanonicalDataset(processed, "train", task="panoptic", transforms=transform)[0]
    assert tuple(image.shape) == (3, 32, 48) and tuple(target["sem_seg"].shape) == (32, 48)
    resize = transform.transforms[0]
    assert list(resize.min_size) == [48] and resize.max_size == 192
