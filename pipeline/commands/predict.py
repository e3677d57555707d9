"""Command `predict`: a trained model's segmentation of new images, in the standard formats, with overlays.

    python -m pipeline predict IMAGES... [--model models/model.pt] --out DIR

IMAGES are files, folders or globs. Per image <name>: `<name>_semantic.png` (class indices),
`<name>_semantic_color.png`, `<name>_panoptic.png` (COCO panoptic ids) and `<name>_overlay.jpg` (each
predicted thing outlined in its own colour, stuff a faint class fill; no text labels yet); for all:
`panoptic.json` (COCO panoptic, categories included)
and `instances.json` (COCO results, RLE). Test-time resizing is params.yaml's `evaluate:`, as in evaluation.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision import tv_tensors
from tqdm import tqdm

from pipeline.data.sources import IMAGE_ERRORS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def expand(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs -> image paths; an input that names nothing is an
    error naming it."""
    found: list[Path] = []
    for spec in inputs:
        path = Path(spec)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        elif matches := sorted(glob.glob(spec)):
            found += [Path(m) for m in matches]
        else:
            raise FileNotFoundError(f"{spec}: no such image, folder or glob match")
    return found


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 [H, W, 3] array; ValueError naming the file if it does not open as an image."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except IMAGE_ERRORS as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def predict(paths: list[Path], model_path: Path, out: Path, params) -> dict:
    """Write every output for `paths` into `out`; returns {"images": n, "instances": n}."""
    from maskformer.data import build_eval_transforms, id_to_rgb
    from maskformer.evaluation.predict import Predictor
    from maskformer.evaluation.runner import segment
    from pipeline.model_file import read_model
    from pipeline.report.plots import class_colors, colorize, draw_instances

    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model file (train one: make run)")
    try:
        model, record = read_model(model_path)
    except Exception as exc:  # noqa: BLE001 - weights_only refuses foreign pickles; say which file
        kind = type(exc).__name__
        raise ValueError(f"{model_path}: not a model file of this project ({kind}: {exc})") from None
    categories = record["categories"]
    names = [c["name"] for c in categories]
    thing_ids = {k for k, c in enumerate(categories) if c["isthing"]}
    cfg, predictor = model.config, Predictor(model, params.evaluate)
    normalise = build_eval_transforms()
    out.mkdir(parents=True, exist_ok=True)
    panoptic, results = [], []
    for image_id, path in enumerate(tqdm(paths, desc="predict"), start=1):
        rgb = read_image(path)
        image = normalise(tv_tensors.Image(torch.from_numpy(rgb.copy()).permute(2, 0, 1)))
        semantic = predictor.semantic(image).argmax(0).numpy().astype(np.uint8)
        Image.fromarray(semantic).save(out / f"{path.stem}_semantic.png")
        colour = colorize(semantic, class_colors(len(names)))
        Image.fromarray(colour).save(out / f"{path.stem}_semantic_color.png")
        pan_ids, segments, instances = segment(predictor, image, thing_ids, cfg.object_mask_threshold,
                                               cfg.overlap_threshold, cfg.test_topk_per_image)
        ids = pan_ids.numpy()
        Image.fromarray(id_to_rgb(ids)).save(out / f"{path.stem}_panoptic.png")
        infos = [{"id": s["id"], "category_id": categories[s["category_id"]]["id"],
                  "isthing": int(s["isthing"]), "area": s["area"]} for s in segments]
        panoptic.append({"image_id": image_id, "file_name": f"{path.stem}_panoptic.png", "source": str(path),
                         "segments_info": infos})
        drawn = [(s["id"], s["category_id"], bool(s["isthing"])) for s in segments]
        overlay = draw_instances(rgb, ids, drawn, names)
        Image.fromarray(overlay).save(out / f"{path.stem}_overlay.jpg", quality=92)
        found = zip(instances["masks"], instances["scores"], instances["labels"], strict=True)
        for mask, score, label in found:
            rle = mask_utils.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
            results.append({"image_id": image_id, "category_id": categories[int(label)]["id"],
                            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                            "score": float(score)})
    (out / "panoptic.json").write_text(json.dumps({"annotations": panoptic, "categories": categories}))
    (out / "instances.json").write_text(json.dumps(results))
    return {"images": len(paths), "instances": len(results)}


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry; returns 2 with a one-line message naming the file on bad input."""
    parser = argparse.ArgumentParser(prog="python -m pipeline predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files, folders or globs")
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from pipeline.params import load_params

    try:
        summary = predict(expand(args.images), args.model, args.out, load_params(params_path))
    except (FileNotFoundError, ValueError) as exc:
        print(f"predict: {exc}")
        return 2
    print(f"predict: {summary['images']} images, {summary['instances']} instances -> {args.out}")
    return 0
