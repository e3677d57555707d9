"""Dataset over the canonical layout (data/processed/<dataset>/) and a collate for varying segment counts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors

from maskformer.data.layout import IGNORE, CanonicalLayout, rgb_to_id

TASKS = ("semantic", "instance", "panoptic")


def _read(path: Path, mode: str) -> np.ndarray:
    """Decode an image file in a PIL mode."""
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


class CanonicalDataset(torch.utils.data.Dataset):
    """Images and one binary mask + class per segment, for the semantic, instance or panoptic task.

    semantic: one segment per class present (from semantic/*.png); panoptic: stuff merged per class,
    things per instance; instance: things only. Crowd regions are left unlabeled.
    `__getitem__` returns (image float [3,H,W], target) with target keys: `labels` int64 [N] (class index
    0..K-1), `masks` bool [N,H,W], `sem_seg` int64 [H,W] (255 = ignore or padding), `image_id` int,
    `file_name` str, `orig_size` int64 [2] (H, W before transforms).
    """

    def __init__(self, root: str | Path, split: str, task: str = "panoptic",
                 transforms: Callable | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.root, self.split, self.task, self.transforms = Path(root), split, task, transforms
        self.layout = CanonicalLayout(self.root)
        content = json.loads(self.layout.panoptic_json(split).read_text())
        self.categories: list[dict] = content["categories"]
        self.num_classes = len(self.categories)
        self._class_of = {c["id"]: i for i, c in enumerate(self.categories)}
        self._isthing = [bool(c["isthing"]) for c in self.categories]
        images = {img["id"]: img for img in content["images"]}
        self._records = [(images[a["image_id"]], a) for a in content["annotations"]]

    def __len__(self) -> int:
        return len(self._records)

    def _semantic_segments(self, stem: str) -> tuple[np.ndarray, list[int]]:
        """Segment map with one segment per class present in semantic/<stem>.png."""
        sem = _read(self.layout.semantic(self.split, stem), "L").astype(np.int64)
        classes = [int(c) for c in np.unique(sem) if c != IGNORE]
        lut = np.zeros(256, np.int32)
        lut[classes] = np.arange(1, len(classes) + 1)
        return lut[sem], classes

    def _panoptic_segments(self, ann: dict) -> tuple[np.ndarray, list[int]]:
        """Segment map of stuff (merged per class) and things (per instance; only things for `instance`)."""
        ids = rgb_to_id(_read(self.layout.panoptic_dir(self.split) / ann["file_name"], "RGB"))
        seg = np.zeros(ids.shape, np.int32)
        labels: list[int] = []
        stuff_slot: dict[int, int] = {}
        for info in ann["segments_info"]:
            cls = self._class_of[info["category_id"]]
            if info.get("iscrowd", 0) or (self.task == "instance" and not self._isthing[cls]):
                continue
            if not self._isthing[cls] and cls in stuff_slot:
                slot = stuff_slot[cls]
            else:
                labels.append(cls)
                slot = len(labels)
                if not self._isthing[cls]:
                    stuff_slot[cls] = slot
            seg[ids == info["id"]] = slot
        return seg, labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        info, ann = self._records[index]
        image = _read(self.layout.image(self.split, info["file_name"]), "RGB")
        stem = Path(ann["file_name"]).stem
        if self.task == "semantic":
            seg, labels = self._semantic_segments(stem)
        else:
            seg, labels = self._panoptic_segments(ann)
        img = tv_tensors.Image(torch.from_numpy(image.copy()).permute(2, 0, 1))
        seg_t = tv_tensors.Mask(torch.from_numpy(seg)[None])
        if self.transforms is not None:
            img, seg_t = self.transforms(img, seg_t)
        if img.dtype == torch.uint8:
            img = img.float() / 255
        return img.as_subclass(torch.Tensor), _target(seg_t[0].as_subclass(torch.Tensor), labels, info, ann)


def _target(seg: torch.Tensor, labels: list[int], info: dict, ann: dict) -> dict:
    """Binary masks and classes from the (transformed) segment map; segments cropped away are dropped."""
    slots = torch.arange(1, len(labels) + 1, dtype=seg.dtype)
    masks = seg[None] == slots[:, None, None]
    keep = masks.flatten(1).any(1)
    label_t = torch.tensor(labels, dtype=torch.int64)
    lut = torch.cat([torch.tensor([IGNORE]), label_t])  # slot 0 (unlabeled) -> ignore
    sem_seg = torch.where(seg > 0, lut[seg.clamp(min=0).long()], IGNORE)
    return {
        "labels": label_t[keep],
        "masks": masks[keep],
        "sem_seg": sem_seg.long(),
        "image_id": int(info["id"]),
        "file_name": info["file_name"],
        "orig_size": torch.tensor([info["height"], info["width"]], dtype=torch.int64),
    }


def collate_fn(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, list[dict]]:
    """Stack images zero-padded (the normalised mean) to the batch max size; pad each target's masks
    with False and `sem_seg` with 255, so padding is never a class. Returns (images [B,3,H,W], targets).
    """
    height = max(img.shape[-2] for img, _ in batch)
    width = max(img.shape[-1] for img, _ in batch)
    images = torch.zeros(len(batch), 3, height, width, dtype=batch[0][0].dtype)
    targets = []
    for i, (img, tgt) in enumerate(batch):
        h, w = img.shape[-2:]
        images[i, :, :h, :w] = img
        masks = torch.zeros(tgt["masks"].shape[0], height, width, dtype=torch.bool)
        masks[:, :h, :w] = tgt["masks"]
        sem_seg = torch.full((height, width), IGNORE, dtype=torch.int64)
        sem_seg[:h, :w] = tgt["sem_seg"]
        targets.append({**tgt, "masks": masks, "sem_seg": sem_seg})
    return images, targets

