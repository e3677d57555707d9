"""PQ/SQ/RQ on a hand-built pair of panoptic maps covering void, crowd and the IoU 0.5 boundary."""

import math

import numpy as np
import pytest

from maskformer.evaluation import PanopticEvaluator

CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1},
    {"id": 2, "name": "car", "isthing": 1},
    {"id": 3, "name": "sky", "isthing": 0},
    {"id": 4, "name": "road", "isthing": 0},
    {"id": 5, "name": "tree", "isthing": 0},  # never occurs: left out of every mean
]


def _maps() -> tuple[np.ndarray, list[dict], np.ndarray, list[dict]]:
    """One scenario per row of a 9 x 20 image; the comments give each row's counts."""
    gt = np.zeros((9, 20), dtype=np.int64)
    pred = np.zeros((9, 20), dtype=np.int64)
    # row 0: person 20 px vs person 11 px inside it -> IoU 11/20 = 0.55 > 0.5: TP
    gt[0], pred[0, :11] = 1, 11
    # row 1: person 20 px vs person 10 px inside it -> IoU exactly 0.5, not > 0.5: FN + FP
    gt[1], pred[1, :10] = 2, 12
    # row 2: car 10 px then void; car pred covers 6 gt px + 10 void px.
    # union without void = 10 + 16 - 6 - 10 = 10 -> IoU 0.6: TP (it would be 6/20 if void counted)
    gt[2, :10], pred[2, 4:] = 3, 13
    # row 3: void (id 0) then an id absent from the segment list (also void); a car and a person
    # prediction lying wholly on them are not false positives
    gt[3, 10:], pred[3, :10], pred[3, 10:] = 99, 14, 15
    # row 4: crowd person then sky; a person pred of 12 px, 10 of them on the crowd: not a FP,
    # and the crowd is not a FN
    gt[4, :10], gt[4, 10:], pred[4, :12] = 5, 6, 16
    # rows 4-6: sky 50 px vs sky pred 48 px inside it -> IoU 0.96: TP
    gt[5:7], pred[4, 12:], pred[5:7] = 6, 17, 17
    # row 7: road 20 px vs road pred 9 px (IoU 0.45): FN + FP; sky pred of 11 px on road: FP
    gt[7], pred[7, :9], pred[7, 9:] = 7, 18, 19
    # row 8: car 10 px not predicted: FN; rest void and unpredicted
    gt[8, :10] = 8
    gt_segments = [
        {"id": 1, "category_id": 1},
        {"id": 2, "category_id": 1},
        {"id": 3, "category_id": 2},
        {"id": 5, "category_id": 1, "iscrowd": 1},
        {"id": 6, "category_id": 3, "iscrowd": 0},
        {"id": 7, "category_id": 4},
        {"id": 8, "category_id": 2},
        {"id": 9, "category_id": 5},  # listed but absent from the map: skipped
    ]
    cats = {11: 1, 12: 1, 13: 2, 14: 2, 15: 1, 16: 1, 17: 3, 18: 4, 19: 3}
    pred_segments = [{"id": i, "category_id": c} for i, c in cats.items()]
    return pred, pred_segments, gt, gt_segments


# per class (TP, FP, FN, summed IoU) -> PQ = IoU / (TP + FP/2 + FN/2), SQ = IoU / TP, RQ = TP / (...)
# person (1, 1, 1, 0.55): PQ 0.275, SQ 0.55, RQ 0.5
# car    (1, 0, 1, 0.60): PQ 0.4,   SQ 0.6,  RQ 2/3
# sky    (1, 1, 0, 0.96): PQ 0.64,  SQ 0.96, RQ 2/3
# road   (0, 1, 1, 0):    PQ 0,     SQ 0,    RQ 0
HAND = {
    "PQ": 32.875,  # (27.5 + 40 + 64 + 0) / 4
    "SQ": 52.75,  # (55 + 60 + 96 + 0) / 4
    "RQ": 45.833333333333336,  # (50 + 66.67 + 66.67 + 0) / 4
    "PQ_th": 33.75,  # (27.5 + 40) / 2
    "SQ_th": 57.5,
    "RQ_th": 58.333333333333336,  # (50 + 66.67) / 2
    "PQ_st": 32.0,  # (64 + 0) / 2
    "SQ_st": 48.0,
    "RQ_st": 33.333333333333336,
}


def test_hand_computed_pq():
    ev = PanopticEvaluator(CATEGORIES)
    ev.update(*_maps())
    res = ev.compute()
    assert res.keys() == HAND.keys()
    for key, value in HAND.items():
        assert res[key] == pytest.approx(value), key
    rows = {r["name"]: r for r in ev.per_class()}
    counts = {n: (r["TP"], r["FP"], r["FN"]) for n, r in rows.items()}
    assert counts == {
        "person": (1, 1, 1),
        "car": (1, 0, 1),
        "sky": (1, 1, 0),
        "road": (0, 1, 1),
        "tree": (0, 0, 0),
    }
    assert rows["person"]["PQ"] == pytest.approx(27.5) and rows["car"]["SQ"] == pytest.approx(60.0)
    assert rows["sky"]["RQ"] == pytest.approx(200 / 3) and not rows["sky"]["isthing"]
    assert math.isnan(rows["tree"]["PQ"])


def test_accumulates_over_images():
    ev = PanopticEvaluator(CATEGORIES)
    pred, pred_segments, gt, gt_segments = _maps()
    # rows 0-3 and 4-8 as two images: every segment stays inside one of them
    ev.update(pred[:4], pred_segments, gt[:4], gt_segments)
    ev.update(pred[4:], pred_segments, gt[4:], gt_segments)
    assert ev.compute() == pytest.approx(HAND)
    ev.update(*_maps())  # the same image again doubles the counts, leaves the ratios
    assert ev.compute() == pytest.approx(HAND)
    assert ev.per_class()[0]["TP"] == 2
    ev.reset()
    assert all(math.isnan(v) for v in ev.compute().values())


def test_rejects_inconsistent_inputs():
    ev = PanopticEvaluator(CATEGORIES)
    pred, pred_segments, gt, gt_segments = _maps()
    with pytest.raises(ValueError, match="no segment info"):
        ev.update(pred, pred_segments[1:], gt, gt_segments)
    with pytest.raises(ValueError, match="unknown category"):
        ev.update(pred, [{"id": 11, "category_id": 42}, *pred_segments[1:]], gt, gt_segments)
    with pytest.raises(ValueError, match="shape"):
        ev.update(pred[:3], pred_segments, gt, gt_segments)
