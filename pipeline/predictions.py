"""A trained model on new images: semantic map, COCO panoptic segments and COCO instance results per image.

One implementation for `python -m pipeline predict` and the MLflow pyfunc model, run exactly as the
evaluation stages run the model (same test-time resizing, same post-processing); images of one size are
batched on the device.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

from maskformer.data import build_eval_transforms
from maskformer.engine import resolve_device
from maskformer.evaluation.components import per_pixel_panoptic
from maskformer.evaluation.instance import encode_masks
from maskformer.evaluation.predict import Predictor
from maskformer.inference import instance_inference, panoptic_inference
from pipeline.data.sources import IMAGE_ERRORS
from pipeline.model_file import read_model
from pipeline.params import EvaluateParams

TASKS = ("semantic", "panoptic", "instance")


@dataclass
class ImagePrediction:
    """What the model says about one image; a task not asked for stays None / empty.

    `semantic` [H, W] class indices (the model's category order); `panoptic` [H, W] int32 segment ids
    (0 = void) with `segments_info` (COCO panoptic: id, category_id of the data set, isthing, area);
    `instances`: COCO results without image_id (category_id, RLE segmentation, score).
    """

    semantic: np.ndarray | None = None
    panoptic: np.ndarray | None = None
    segments_info: list[dict] = field(default_factory=list)
    instances: list[dict] = field(default_factory=list)


def read_image(source: str | Path | BinaryIO, name: str, expected: str = "a readable image") -> np.ndarray:
    """An RGB uint8 [H, W, 3] array from a file or file object; ValueError naming it (`name`) otherwise."""
    try:
        with Image.open(source) as im:
            return np.asarray(im.convert("RGB"))
    except IMAGE_ERRORS as exc:
        raise ValueError(f"{name}: not {expected} ({exc})") from None


class Segmenter:
    """A model file's model, its categories and the evaluation's test-time settings, on one device."""

    def __init__(self, model_path: str | Path, evaluate: EvaluateParams, batch_size: int = 8) -> None:
        device = resolve_device(evaluate.device)
        model, record = read_model(model_path, device)
        self.categories: list[dict] = record["categories"]
        self.names = [c["name"] for c in self.categories]
        self.config = model.config
        self.per_pixel = self.config.architecture == "per_pixel_baseline"
        self.evaluate, self.batch_size = evaluate, batch_size
        self.predictor = Predictor(model, evaluate, device, amp=evaluate.amp and device.type == "cuda")
        self._normalise = build_eval_transforms()

    def thing_ids(self) -> set[int]:
        """Contiguous indices of the thing classes."""
        return {k for k, c in enumerate(self.categories) if c["isthing"]}

    def __call__(self, images: list[np.ndarray], tasks: tuple[str, ...] = TASKS) -> list[ImagePrediction]:
        """Predictions for RGB uint8 images [H, W, 3], in their order (same-size images share batches)."""
        unknown = set(tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown task {sorted(unknown)[0]!r} (known: {', '.join(TASKS)})")
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for i, rgb in enumerate(images):
            by_shape[rgb.shape].append(i)
        results: list[ImagePrediction | None] = [None] * len(images)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                for i, result in zip(chunk, self._batch([images[i] for i in chunk], tasks), strict=True):
                    results[i] = result
        return results

    def _batch(self, images: list[np.ndarray], tasks: tuple[str, ...]) -> list[ImagePrediction]:
        tensors = [self._normalise(tv_tensors.Image(torch.from_numpy(im.copy()).permute(2, 0, 1)))
                   for im in images]
        out = [ImagePrediction() for _ in images]
        masked = {"panoptic", "instance"} & set(tasks)
        scores = self.predictor.semantic_batch(tensors) if "semantic" in tasks or self.per_pixel else None
        if "semantic" in tasks:
            dtype = np.uint8 if len(self.categories) < 256 else np.uint16
            for result, s in zip(out, scores, strict=True):
                result.semantic = s.argmax(0).cpu().numpy().astype(dtype)
        if not masked:
            return out
        cfg, things = self.config, self.thing_ids()
        if self.per_pixel:  # the paper's baseline: thing instances are connected regions of its classes
            found = [per_pixel_panoptic(s, things, self.evaluate.component_min_area) for s in scores]
        else:
            found = []
            for logits, masks in self.predictor.masks_batch(tensors):
                ids, segments = panoptic_inference(logits, masks, things, cfg.object_mask_threshold,
                                                   cfg.overlap_threshold)
                instances = instance_inference(logits, masks, cfg.test_topk_per_image, things)
                found.append((ids, segments, instances))
        for result, (ids, segments, instances) in zip(out, found, strict=True):
            if "panoptic" in tasks:
                result.panoptic = ids.cpu().numpy().astype(np.int32)
                result.segments_info = [{"id": s["id"], "isthing": int(s["isthing"]), "area": s["area"],
                                         "category_id": self.categories[s["category_id"]]["id"]}
                                        for s in segments]
            if "instance" in tasks:
                triples = zip(encode_masks(instances["masks"]), instances["scores"], instances["labels"],
                              strict=True)
                result.instances = [{"category_id": self.categories[int(label)]["id"],
                                     "segmentation": rle, "score": float(score)}
                                    for rle, score, label in triples]
        return out
