"""Panoptic quality PQ = SQ x RQ with COCO panopticapi's matching rules, accumulated over images (numpy)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

VOID = 0  # segment id of unlabelled pixels, in both prediction and ground truth
_MATCH_IOU = 0.5  # a pair matches when IoU > 0.5, which makes matches unique
_IGNORE_FRACTION = 0.5  # an unmatched prediction more than half on void/crowd is not a false positive


class PanopticEvaluator:
    """Count per-category TP/FP/FN and matched IoU over images; `compute` turns them into PQ/SQ/RQ.

    Ground-truth pixels whose id is 0 or missing from the segment list are void. Segments listed but
    absent from the id map are skipped. Crowd ground truth is never matched; like void it only
    excuses predictions of its category that lie mostly on it.
    """

    def __init__(self, categories: Sequence[Mapping[str, Any]]) -> None:
        """Args: categories: dicts with `id`, `isthing` (bool/0/1) and optional `name`."""
        self.categories = [dict(c) for c in categories]
        self._index = {c["id"]: k for k, c in enumerate(self.categories)}
        self.isthing = np.array([bool(c["isthing"]) for c in self.categories])
        self.reset()

    def reset(self) -> None:
        """Zero the counts to start a new evaluation."""
        n = len(self.categories)
        self.tp, self.fp, self.fn = (np.zeros(n, dtype=np.int64) for _ in range(3))
        self.iou = np.zeros(n, dtype=np.float64)

    def _category(self, segment: Mapping[str, Any]) -> int:
        if segment["category_id"] not in self._index:
            raise ValueError(f"segment {segment['id']} has unknown category {segment['category_id']}")
        return self._index[segment["category_id"]]

    def update(
        self,
        pred_ids: np.ndarray,
        pred_segments: Sequence[Mapping[str, Any]],
        gt_ids: np.ndarray,
        gt_segments: Sequence[Mapping[str, Any]],
    ) -> None:
        """Add one image.

        Args:
            pred_ids: [H, W] int segment id per pixel, 0 = no prediction.
            pred_segments: dicts with `id` and `category_id` for every nonzero id of `pred_ids`.
            gt_ids: [H, W] int segment id per pixel, 0 = void.
            gt_segments: dicts with `id`, `category_id` and optional `iscrowd`.
        """
        pred, gt = np.asarray(pred_ids, dtype=np.int64), np.asarray(gt_ids, dtype=np.int64)
        if pred.shape != gt.shape:
            raise ValueError(f"pred shape {pred.shape} != gt shape {gt.shape}")
        if pred.size and min(pred.min(), gt.min()) < 0:
            raise ValueError("segment ids must be non-negative")
        pred_info = {s["id"]: s for s in pred_segments}
        gt_info = {s["id"]: s for s in gt_segments}
        if VOID in pred_info or VOID in gt_info:
            raise ValueError(f"segment id {VOID} is reserved for void")
        unknown = set(np.unique(pred).tolist()) - set(pred_info) - {VOID}
        if unknown:
            raise ValueError(f"predicted ids {sorted(unknown)} have no segment info")
        gt = np.where(np.isin(gt, list(gt_info)), gt, VOID)

        # one pass over the joint ids gives every intersection and, summed, every area
        offset = int(pred.max(initial=0)) + 1
        joint, counts = np.unique(gt * offset + pred, return_counts=True)
        overlap = {(int(j // offset), int(j % offset)): int(c) for j, c in zip(joint, counts, strict=True)}
        gt_area: dict[int, int] = {}
        pred_area: dict[int, int] = {}
        for (g, p), c in overlap.items():
            gt_area[g] = gt_area.get(g, 0) + c
            pred_area[p] = pred_area.get(p, 0) + c
        gt_area.pop(VOID, None)
        pred_area.pop(VOID, None)

        matched_gt, matched_pred = set(), set()
        for (g, p), inter in overlap.items():
            if g == VOID or p == VOID or gt_info[g].get("iscrowd", 0):
                continue
            k = self._category(gt_info[g])
            if k != self._category(pred_info[p]):
                continue
            # panopticapi leaves the prediction's void pixels out of the union
            union = gt_area[g] + pred_area[p] - inter - overlap.get((VOID, p), 0)
            iou = inter / union
            if iou > _MATCH_IOU:
                self.tp[k] += 1
                self.iou[k] += iou
                matched_gt.add(g)
                matched_pred.add(p)

        crowd: dict[int, list[int]] = {}
        for g in gt_area.keys() - matched_gt:
            k = self._category(gt_info[g])
            if gt_info[g].get("iscrowd", 0):
                crowd.setdefault(k, []).append(g)
            else:
                self.fn[k] += 1
        for p in pred_area.keys() - matched_pred:
            k = self._category(pred_info[p])
            ignored = overlap.get((VOID, p), 0) + sum(overlap.get((g, p), 0) for g in crowd.get(k, []))
            if ignored / pred_area[p] <= _IGNORE_FRACTION:
                self.fp[k] += 1

    def _per_class(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return (present, PQ, SQ, RQ) per category as fractions; NaN where a class never occurs."""
        present = (self.tp + self.fp + self.fn) > 0
        denom = np.where(present, self.tp + 0.5 * self.fp + 0.5 * self.fn, 1.0)
        sq = np.divide(self.iou, self.tp, out=np.zeros_like(self.iou), where=self.tp > 0)
        pq, rq = self.iou / denom, self.tp / denom
        return present, *(np.where(present, v, math.nan) for v in (pq, sq, rq))

    def compute(self) -> dict[str, float]:
        """Return PQ, SQ, RQ over all / thing (`_th`) / stuff (`_st`) categories, in percent.

        Each is the mean over the categories that occur (TP + FP + FN > 0); NaN if none does.
        """
        present, pq, sq, rq = self._per_class()
        results = {}
        for suffix, group in (("", np.ones_like(present)), ("_th", self.isthing), ("_st", ~self.isthing)):
            sel = present & group
            for name, values in (("PQ", pq), ("SQ", sq), ("RQ", rq)):
                results[name + suffix] = 100.0 * float(values[sel].mean()) if sel.any() else math.nan
        return results

    def per_class(self) -> list[dict[str, Any]]:
        """Return one row per category: id, name, isthing, PQ/SQ/RQ in percent (NaN if absent), TP/FP/FN."""
        _, pq, sq, rq = self._per_class()
        return [
            {
                "category_id": c["id"],
                "name": c.get("name", str(c["id"])),
                "isthing": bool(self.isthing[k]),
                "PQ": 100.0 * float(pq[k]),
                "SQ": 100.0 * float(sq[k]),
                "RQ": 100.0 * float(rq[k]),
                "TP": int(self.tp[k]),
                "FP": int(self.fp[k]),
                "FN": int(self.fn[k]),
            }
            for k, c in enumerate(self.categories)
        ]
