"""COCO mask AP: perfect, hand-computed imperfect (checked against COCOeval itself) and empty predictions."""

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
import torch

from maskformer.evaluation import coco_mask_ap, encode_masks

pytest.importorskip("pycocotools")

SIZE = 16


def _mask(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), dtype=bool)
    m[rows, cols] = True
    return m


# image 1: person A; image 2: person B; image 3: car C and car D
GT_MASKS = {
    "A": (1, 1, _mask(slice(0, 4), slice(0, 4))),
    "B": (2, 1, _mask(slice(5, 9), slice(5, 9))),
    "C": (3, 2, _mask(slice(0, 3), slice(0, 3))),
    "D": (3, 2, _mask(slice(10, 11), slice(0, 5))),  # 5 px
}


def _gt() -> dict:
    rles = encode_masks(np.stack([m for _, _, m in GT_MASKS.values()]))
    return {
        "images": [{"id": i, "height": SIZE, "width": SIZE} for i in (1, 2, 3)],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}, {"id": 3, "name": "bike"}],
        "annotations": [
            {"image_id": img, "category_id": cat, "segmentation": rle}
            for (img, cat, _), rle in zip(GT_MASKS.values(), rles, strict=True)
        ],
    }


def _pred(image_id: int, category_id: int, mask: np.ndarray, score: float) -> dict:
    (rle,) = encode_masks(mask[None])
    return {"image_id": image_id, "category_id": category_id, "segmentation": rle, "score": score}


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # inside pycocotools
def test_encode_masks_is_json_and_lossless():
    from pycocotools import mask as mask_util

    masks = torch.rand(3, 7, 5, generator=torch.Generator().manual_seed(0)) > 0.5
    rles = encode_masks(masks)
    rles = json.loads(json.dumps(rles))
    assert np.array_equal(mask_util.decode(rles).transpose(2, 0, 1), masks.numpy())
    assert encode_masks(np.zeros((0, 7, 5), dtype=bool)) == []


def test_perfect_predictions_score_100():
    preds = [_pred(img, cat, m, 0.9) for img, cat, m in GT_MASKS.values()]
    res = coco_mask_ap(_gt(), preds)
    assert res["AP"] == res["AP50"] == res["AP75"] == res["APs"] == pytest.approx(100.0)
    assert res["AP-person"] == res["AP-car"] == pytest.approx(100.0)
    # every object is small (< 32^2 px): no ground truth in the medium/large ranges, nor for "bike"
    assert math.isnan(res["APm"]) and math.isnan(res["APl"]) and math.isnan(res["AP-bike"])


# person: A found (0.9), B missed, a false positive (0.8) in image 2 ->
#   precision 1 up to recall 0.5, then nothing: 51 of the 101 recall points -> AP 51/101 at every IoU.
# car: C exact (0.7); D found with IoU 5/8 = 0.625 (0.6) -> matched at IoU thresholds 0.50, 0.55, 0.60
#   (AP 1), at the 7 thresholds 0.65..0.95 D is a miss plus a FP ranked last -> 51/101.
PERSON = 100 * 51 / 101  # 50.495...
CAR = 100 * (3 + 7 * 51 / 101) / 10  # 65.347...
HAND = {
    "AP": 57.920792079207914,  # (PERSON + CAR) / 2
    "AP50": 75.24752475247524,  # (PERSON + 100) / 2
    "AP75": PERSON,
    "APs": 57.920792079207914,  # every object is small
    "AP-person": PERSON,
    "AP-car": CAR,
}


def _imperfect_predictions() -> list[dict]:
    return [
        _pred(1, 1, GT_MASKS["A"][2], 0.9),
        _pred(2, 1, _mask(slice(12, 16), slice(12, 16)), 0.8),  # no overlap with B: FP
        _pred(3, 2, GT_MASKS["C"][2], 0.7),
        _pred(3, 2, _mask(slice(10, 11), slice(0, 8)), 0.6),  # D's 5 px inside 8 px: IoU 5/8
    ]


def test_imperfect_case_hand_computed_and_equal_to_cocoeval():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, preds = _gt(), _imperfect_predictions()
    res = coco_mask_ap(gt, preds)
    for key, value in HAND.items():
        assert res[key] == pytest.approx(value), key

    # the same numbers straight from pycocotools
    direct = copy.deepcopy(gt)
    for i, ann in enumerate(direct["annotations"]):
        ann.update(id=i + 1, iscrowd=0, area=int(GT_MASKS[list(GT_MASKS)[i]][2].sum()))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = direct
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(preds)), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for k, key in enumerate(("AP", "AP50", "AP75", "APs")):
        assert res[key] == pytest.approx(100 * ev.stats[k]), key


def test_empty_predictions_score_zero():
    res = coco_mask_ap(_gt(), [])
    assert res["AP"] == res["AP50"] == res["AP75"] == res["APs"] == 0.0
    assert res["AP-person"] == res["AP-car"] == 0.0
    assert math.isnan(res["AP-bike"])


def test_inputs_are_not_mutated():
    gt, preds = _gt(), _imperfect_predictions()
    gt_before, preds_before = copy.deepcopy(gt), copy.deepcopy(preds)
    coco_mask_ap(gt, preds)
    assert gt == gt_before and preds == preds_before


def test_polygon_ground_truth_as_in_the_official_instances_json():
    """COCO's instances_val2017.json holds polygons: a mask covering the polygon's pixels scores 100, one
    covering half of them scores 0 at every threshold above 0.5."""
    gt = {"images": [{"id": 5, "height": 20, "width": 20}], "categories": [{"id": 3, "name": "car"}],
          "annotations": [{"id": 1, "image_id": 5, "category_id": 3, "iscrowd": 0, "area": 64.0,
                           "segmentation": [[4.0, 4.0, 12.0, 4.0, 12.0, 12.0, 4.0, 12.0]]}]}
    from pycocotools import mask as mask_util

    square = mask_util.decode(mask_util.frPyObjects(gt["annotations"][0]["segmentation"], 20, 20))[..., 0]
    half = square.copy()
    half[:, 8:] = 0
    for mask, expected in ((square, 100.0), (half, 0.0)):
        (rle,) = encode_masks(mask[None].astype(bool))
        result = coco_mask_ap(gt, [{"image_id": 5, "category_id": 3, "segmentation": rle, "score": 0.9}])
        assert result["AP75"] == pytest.approx(expected)
