"""Instances from a per-pixel semantic map by connected components, and the same-class contacts they miss.

A per-pixel classifier (the paper's baseline) predicts one class per pixel and no instances; the most it
can offer instance and panoptic evaluation is one instance per connected region of a thing class. Two
same-class objects that touch form one region, so `touching_same_class_pairs` counts, in a ground-truth
segment map, exactly the pairs that this split cannot separate and mask classification can. Both use
4-connectivity (scipy's default structure): pixels touching only at a corner are not connected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage


@dataclass
class Instances:
    """Instance predictions of one image: bool masks [N, H, W], class indices [N] and scores [N]."""

    masks: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def semantic_to_instances(
    sem_seg: np.ndarray,
    thing_ids: Iterable[int],
    min_area: int = 1,
    probs: np.ndarray | None = None,
) -> Instances:
    """One instance per 4-connected region of each thing class in a class map, regions under `min_area`
    pixels dropped; ordered by class, then by each region's first pixel in raster order.

    Args:
        sem_seg: [H, W] int class index per pixel (e.g. the argmax of the class scores; 255 = ignore).
        thing_ids: class indices that have instances; every other class (stuff, ignore) is skipped.
        min_area: smallest region kept, in pixels.
        probs: optional [K, H, W] class probabilities; a region's score is the mean probability of its
            class over its pixels. Without them every score is 1.0.

    A panoptic prediction adds one segment per stuff class present; this gives the thing segments.
    """
    sem_seg = np.asarray(sem_seg)
    if sem_seg.ndim != 2:
        raise ValueError(f"expected a class map [H, W], got shape {sem_seg.shape}")
    if probs is not None:
        probs = np.asarray(probs)
        if probs.ndim != 3 or probs.shape[1:] != sem_seg.shape:
            raise ValueError(f"probs shape {probs.shape} does not match the class map {sem_seg.shape}")
    masks, labels, scores = [], [], []
    for cls in sorted(set(int(t) for t in thing_ids) & set(np.unique(sem_seg).tolist())):
        regions, count = ndimage.label(sem_seg == cls)
        areas = np.bincount(regions.ravel(), minlength=count + 1)
        for region in np.flatnonzero(areas[1:] >= min_area) + 1:
            mask = regions == region
            masks.append(mask)
            labels.append(cls)
            scores.append(float(probs[cls][mask].mean()) if probs is not None else 1.0)
    shape = (len(masks), *sem_seg.shape)
    return Instances(np.stack(masks) if masks else np.zeros(shape, bool), np.array(labels, np.int64),
                     np.array(scores, np.float32))


def touching_same_class_pairs(ids: np.ndarray, segments: Sequence[tuple[int, int, bool]]) -> int:
    """The number of pairs of thing segments of one class whose masks touch (one dilated by a pixel,
    4-neighbours, meets the other) in a segment-id map [H, W]; `segments` lists (id, class, isthing)."""
    ids = np.asarray(ids)
    things = {int(s): int(c) for s, c, isthing in segments if isthing}
    # a pixel and its right or lower neighbour in different segments: the two segments are adjacent
    neighbours = ((ids[:, :-1], ids[:, 1:]), (ids[:-1], ids[1:]))
    edges = np.concatenate([np.stack([a[a != b], b[a != b]], axis=1) for a, b in neighbours])
    pairs = np.unique(np.sort(edges, axis=1), axis=0)
    return sum(int(p) in things and int(q) in things and things[int(p)] == things[int(q)] for p, q in pairs)


def per_pixel_panoptic(scores: torch.Tensor, thing_ids: Iterable[int], min_area: int = 1
                       ) -> tuple[torch.Tensor, list[dict], dict[str, torch.Tensor]]:
    """What a per-pixel model offers panoptic and instance evaluation, from its class scores [K, H, W]:
    the argmax map with one segment per stuff class present and one per connected region of a thing
    class (`semantic_to_instances`), in the formats of maskformer.inference's panoptic_inference (id map
    [H, W] int32, 0 = void; segments_info) and instance_inference (masks, scores, labels)."""
    probs = scores.float().cpu().numpy()
    sem_seg = probs.argmax(0)
    things = set(int(t) for t in thing_ids)
    instances = semantic_to_instances(sem_seg, things, min_area, probs)
    panoptic = np.zeros(sem_seg.shape, np.int32)
    segments: list[dict] = []
    stuff = [(int(c), sem_seg == c) for c in np.unique(sem_seg) if int(c) not in things]
    regions = [*stuff, *zip(instances.labels.tolist(), instances.masks, strict=True)]
    for cls, mask in regions:
        if cls not in things and mask.sum() < min_area:
            continue
        panoptic[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": cls, "isthing": cls in things,
                         "area": int(mask.sum())})
    device = scores.device
    found = {"masks": torch.from_numpy(instances.masks).to(device),
             "scores": torch.from_numpy(instances.scores).to(device),
             "labels": torch.from_numpy(instances.labels).to(device)}
    return torch.from_numpy(panoptic).to(device), segments, found
