"""semantic_to_instances with known answers: one instance per connected region of each thing class, with
exact masks, labels and scores; small regions dropped; stuff and ignore skipped."""

from __future__ import annotations

import numpy as np
import pytest

from maskformer.evaluation import semantic_to_instances
from maskformer.evaluation.components import per_pixel_panoptic

STUFF, IGNORE = 0, 255


def _blobs() -> tuple[np.ndarray, list[np.ndarray]]:
    """A 10x12 class map on stuff (0): two class-1 blobs, one class-2 blob, a 1-pixel class-1 speck, an
    ignore strip; and the expected masks in the function's order (class, then first pixel)."""
    sem = np.full((10, 12), STUFF)
    sem[1:4, 1:4] = 1  # 9 pixels, first in raster order
    sem[6:9, 2:6] = 1  # 12 pixels
    sem[1:5, 7:11] = 2  # 16 pixels
    sem[8, 10] = 1  # a speck
    sem[9, :] = IGNORE
    masks = [np.zeros(sem.shape, bool) for _ in range(4)]
    masks[0][1:4, 1:4] = masks[1][6:9, 2:6] = masks[2][8, 10] = masks[3][1:5, 7:11] = True
    return sem, masks


def test_disjoint_blobs_become_instances_with_exact_masks():
    sem, masks = _blobs()
    instances = semantic_to_instances(sem, thing_ids=[1, 2])
    assert len(instances) == 4 and instances.labels.tolist() == [1, 1, 1, 2]
    assert all(np.array_equal(got, want) for got, want in zip(instances.masks, masks, strict=True))
    assert instances.masks.dtype == bool and instances.scores.tolist() == [1.0] * 4


def test_regions_under_min_area_are_dropped():
    sem, masks = _blobs()
    instances = semantic_to_instances(sem, thing_ids=[1, 2], min_area=9)
    assert instances.labels.tolist() == [1, 1, 2]
    assert all(np.array_equal(got, want) for got, want in zip(instances.masks, [masks[0], masks[1], masks[3]],
                                                                strict=True))
    assert semantic_to_instances(sem, thing_ids=[1, 2], min_area=13).labels.tolist() == [2]


def test_stuff_ignore_and_absent_classes_give_no_instances():
    sem, _ = _blobs()
    assert semantic_to_instances(sem, thing_ids=[2, 5]).labels.tolist() == [2]
    empty = semantic_to_instances(np.full((4, 4), STUFF), thing_ids=[1])
    assert len(empty) == 0 and empty.masks.shape == (0, 4, 4) and empty.scores.shape == (0,)
    assert len(semantic_to_instances(sem, thing_ids=[])) == 0


def test_touching_same_class_objects_are_one_region_corners_are_not():
    sem = np.zeros((6, 6), int)
    sem[0:2, 0:4] = 1  # two objects side by side: one region
    sem[2:4, 4:6] = 1  # meets the first only at a corner: a region of its own
    assert semantic_to_instances(sem, thing_ids=[1]).masks.sum(axis=(1, 2)).tolist() == [8, 4]


def test_scores_are_the_mean_class_probability_over_the_region():
    sem, _ = _blobs()
    probs = np.full((3, *sem.shape), 0.1, np.float32)
    probs[1, 1:4, 1:4] = 0.9
    probs[1, 1, 1] = 0.0  # the first blob's mean: (8 * 0.9 + 0) / 9 = 0.8
    probs[2, 1:5, 7:11] = 0.6
    scores = semantic_to_instances(sem, thing_ids=[1, 2], probs=probs).scores
    assert scores.tolist() == pytest.approx([0.8, 0.1, 0.1, 0.6])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="class map"):
        semantic_to_instances(np.zeros((2, 3, 4)), thing_ids=[1])
    with pytest.raises(ValueError, match="probs shape"):
        semantic_to_instances(np.zeros((3, 4), int), thing_ids=[1], probs=np.zeros((2, 4, 3)))


def test_per_pixel_panoptic_gives_a_segment_per_stuff_class_and_per_thing_region():
    import torch

    sem = np.zeros((6, 8), np.int64)  # class 0 stuff background
    sem[1:3, 1:3] = 1  # two class-1 blobs (a thing) and a class-2 strip (stuff)
    sem[4:6, 5:8] = 1
    sem[:, 4] = 2
    scores = torch.zeros(3, 6, 8)
    scores.scatter_(0, torch.from_numpy(sem)[None], 0.9)
    ids, segments, found = per_pixel_panoptic(scores, thing_ids=[1], min_area=2)
    assert [(s["category_id"], s["isthing"], s["area"]) for s in segments] == [
        (0, False, 32), (2, False, 6), (1, True, 4), (1, True, 6)]
    for s in segments:
        assert int((ids == s["id"]).sum()) == s["area"]
    assert found["labels"].tolist() == [1, 1] and found["masks"].shape == (2, 6, 8)
    assert torch.equal(found["masks"][0], torch.from_numpy(sem == 1) & (torch.arange(6)[:, None] < 3))
    assert torch.allclose(found["scores"], torch.tensor([0.9, 0.9]))
