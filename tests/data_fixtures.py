"""Test helpers for the data stages: a local HTTP server with Range/cut-off, fixture archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from maskformer.data.layout import id_to_rgb
from pipeline.params import DataParams


class FixtureServer:
    """Serves `files` (url path -> bytes) on 127.0.0.1 with HTTP Range; can cut a response mid-file."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_next: dict[str, int] = {}  # path -> bytes to send before dropping the connection (once)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Keep test output quiet."""

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                """Serve a file, honouring `Range: bytes=N-` and the one-shot cut-off."""
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                cut = server.cut_next.pop(self.path, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        """Full URL of a served path."""
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def __enter__(self) -> FixtureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def md5(data: bytes) -> str:
    """'md5:hex' of bytes."""
    return "md5:" + hashlib.md5(data).hexdigest()


def _png(array: np.ndarray) -> bytes:
    """PNG bytes of an array."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(rng: np.random.Generator, h: int, w: int) -> bytes:
    """JPEG bytes of a random image."""
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    """Zip archive bytes of name -> content."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def ade_archive(labels: dict[str, np.ndarray], seed: int = 0) -> bytes:
    """An ADEChallengeData2016.zip look-alike; `labels` maps 'train/<stem>' or 'val/<stem>' to uint8 PNGs."""
    rng = np.random.default_rng(seed)
    members = {}
    for key, label in labels.items():
        split, stem = key.split("/")
        sub = {"train": "training", "val": "validation"}[split]
        members[f"ADEChallengeData2016/images/{sub}/{stem}.jpg"] = _jpg(rng, *label.shape)
        members[f"ADEChallengeData2016/annotations/{sub}/{stem}.png"] = _png(label)
    return _zip(members)


COCO_CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1, "supercategory": "person"},
    {"id": 3, "name": "car", "isthing": 1, "supercategory": "vehicle"},
    {"id": 149, "name": "rug", "isthing": 0, "supercategory": "floor"},
    {"id": 184, "name": "tree", "isthing": 0, "supercategory": "plant"},
]


def coco_scene(rng: np.random.Generator, h: int = 24, w: int = 32) -> tuple[np.ndarray, list[dict]]:
    """A random panoptic scene: two stuff regions, up to three things; returns (ids [H,W], segments_info)."""
    ids = np.zeros((h, w), np.int64)
    ids[: h // 2], ids[h // 2:] = 1000, 2000
    ids[0, :3] = 0  # a void corner
    segments = [{"id": 1000, "category_id": 184, "iscrowd": 0},
                {"id": 2000, "category_id": 149, "iscrowd": 0}]
    for k in range(int(rng.integers(1, 4))):
        y, x = rng.integers(2, h - 8), rng.integers(2, w - 8)
        seg_id = int(rng.integers(3000, 2**24 - 1))
        ids[y:y + 6, x:x + 6] = seg_id
        segments.append({"id": seg_id, "category_id": int(rng.choice([1, 3])), "iscrowd": int(k == 2)})
    present = set(np.unique(ids).tolist())
    return ids, [s for s in segments if s["id"] in present]


def coco_archives(scenes: dict[str, dict[str, tuple]], seed: int = 0) -> dict[str, bytes]:
    """train2017.zip, val2017.zip, panoptic_annotations_trainval2017.zip (with nested PNG zips) and
    annotations_trainval2017.zip (instances JSONs: each thing's bounding box as its polygon)."""
    rng = np.random.default_rng(seed)
    out, annotations, official = {}, {}, {}
    things = [c for c in COCO_CATEGORIES if c["isthing"]]
    for split, items in scenes.items():
        imgdir = f"{split}2017"
        images, anns, pngs, boxes = [], [], {}, []
        for i, (stem, (ids, segments)) in enumerate(sorted(items.items())):
            h, w = ids.shape
            images.append({"id": i + 7, "file_name": f"{stem}.jpg", "height": h, "width": w})
            anns.append({"image_id": i + 7, "file_name": f"{stem}.png", "segments_info": segments})
            pngs[f"panoptic_{imgdir}/{stem}.png"] = _png(id_to_rgb(ids))
            for seg in segments:  # the official instances: each thing's box as a polygon (they overlap)
                ys, xs = np.nonzero(ids == seg["id"])
                if seg["category_id"] in {c["id"] for c in things} and ys.size:
                    x0, y0 = float(xs.min()), float(ys.min())
                    x1, y1 = float(xs.max() + 1), float(ys.max() + 1)
                    boxes.append({"id": 1000 + len(boxes), "image_id": i + 7,
                                  "category_id": seg["category_id"],
                                  "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]], "iscrowd": 0,
                                  "area": (x1 - x0) * (y1 - y0), "bbox": [x0, y0, x1 - x0, y1 - y0]})
        official[f"annotations/instances_{imgdir}.json"] = json.dumps(
            {"images": images, "annotations": boxes, "categories": things}).encode()
        jpgs = {f"{imgdir}/{stem}.jpg": _jpg(rng, *ids.shape) for stem, (ids, _) in items.items()}
        out[f"{imgdir}.zip"] = _zip(jpgs)
        content = {"images": images, "annotations": anns, "categories": COCO_CATEGORIES}
        annotations[f"annotations/panoptic_{imgdir}.json"] = json.dumps(content).encode()
        annotations[f"annotations/panoptic_{imgdir}.zip"] = _zip(pngs)
    out["panoptic_annotations_trainval2017.zip"] = _zip(annotations)
    out["annotations_trainval2017.zip"] = _zip(official)
    return out


def data_params(tmp: Path, dataset: str, **overrides: object) -> DataParams:
    """DataParams for in-process workers, with any field overridden; makes `tmp` the cwd, since the data
    stages write under the project folder (pipeline.outputs; conftest restores the cwd after each test)."""
    tmp.mkdir(parents=True, exist_ok=True)
    os.chdir(tmp)
    download = {"retries": 2, "backoff_s": 0.0, "timeout_s": 10.0}
    base = {"dataset": dataset, "num_workers": 0, "download": download, "check_image_counts": False}
    return DataParams.model_validate({**base, **overrides})
