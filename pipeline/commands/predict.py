"""Command `predict`: a trained model's segmentation of new images, in the standard formats, with overlays.

    python -m pipeline predict IMAGES... [--model models/model.pt | --model models:/NAME@champion |
                                          --run MLFLOW_RUN_ID] --out DIR [--task semantic|panoptic|instance]

IMAGES are files, folders or globs. Per image <name>: `<name>_semantic.png` (class indices) and
`<name>_semantic_color.png` (the categories' colours), `<name>_panoptic.png` (COCO panoptic ids),
`<name>_overlay.jpg` (each predicted segment outlined or filled and labelled with its class; small
images enlarged); for all: `panoptic.json` (COCO panoptic, categories included) and `instances.json`
(COCO results, RLE). --task keeps one of them. Test-time resizing is params.yaml's `evaluate:`, as in
evaluation; same-size images are batched.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm import tqdm

from pipeline.params import Params

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
OVERLAY_MIN_SCORE = 0.5  # --task instance: instances drawn on the overlay (detectron2's demo threshold)
OVERLAY_MIN_SIDE = 384  # overlays of smaller images are enlarged by a whole factor to at least this side


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


def resolve_model(model: str | None, run_id: str | None, params: Params) -> Path:
    """The local model file for --model (a path or an MLflow model URI) or --run (that run's model)."""
    if run_id is None and (model is None or ":/" not in model):
        path = Path(model or "models/model.pt")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file (train one: make run)")
        return path
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pipeline import tracking
    from pipeline.tracking.pyfunc import model_file

    tracking.setup(params)
    try:
        if run_id is not None:
            model = MlflowClient().get_run(run_id).data.tags.get("model_uri")
            if model is None:
                raise ValueError(f"run {run_id}: logged no model (tracking.log_model: false?)")
        return model_file(model)
    except MlflowException as exc:
        raise ValueError(f"{run_id or model}: {exc.message}") from None


def overlay(rgb: np.ndarray, prediction, segmenter) -> np.ndarray:
    """The image with the prediction drawn and labelled: panoptic segments, else the confident
    instances, else the semantic classes (one filled region per class)."""
    from pipeline.report.plots import draw_instances, draw_labels, instance_labels

    names, index = segmenter.names, {c["id"]: k for k, c in enumerate(segmenter.categories)}
    if prediction.panoptic is not None:
        ids = prediction.panoptic
        drawn = [(s["id"], index[s["category_id"]], bool(s["isthing"])) for s in prediction.segments_info]
    elif prediction.instances:
        ids, drawn = np.zeros(rgb.shape[:2], np.int32), []
        confident = [r for r in prediction.instances if r["score"] >= OVERLAY_MIN_SCORE]
        for k, r in enumerate(sorted(confident, key=lambda r: r["score"]), start=1):  # best painted last
            ids[mask_utils.decode(r["segmentation"]).astype(bool)] = k
            drawn.append((k, index[r["category_id"]], True))
    else:
        ids = prediction.semantic.astype(np.int32) + 1
        drawn = [(int(v), int(v) - 1, False) for v in np.unique(ids)]
    zoom = -(-OVERLAY_MIN_SIDE // min(rgb.shape[:2]))  # small images are enlarged: labels stay readable
    rgb, ids = (np.repeat(np.repeat(a, zoom, 0), zoom, 1) for a in (rgb, ids))
    picture = draw_instances(rgb, ids, drawn, names, width=max(1, round(max(rgb.shape[:2]) / 250)))
    return draw_labels(picture, instance_labels(ids, drawn, names, stuff=True))


def predict(paths: list[Path], model_path: Path, out: Path, params: Params,
            tasks: tuple[str, ...] | None = None, chunk: int = 64) -> dict:
    """Write every output for `paths` into `out`; returns {"images": n, "instances": n}."""
    from maskformer.data import id_to_rgb
    from pipeline.predictions import TASKS, Segmenter, read_image
    from pipeline.report.plots import category_colors, colorize

    tasks = tasks or TASKS
    try:
        segmenter = Segmenter(model_path, params.evaluate)
    except Exception as exc:  # noqa: BLE001 - weights_only refuses foreign pickles; say which file
        kind = type(exc).__name__
        raise ValueError(f"{model_path}: not a model file of this project ({kind}: {exc})") from None
    out.mkdir(parents=True, exist_ok=True)
    colors = category_colors(segmenter.categories)
    panoptic, results = [], []
    with tqdm(total=len(paths), desc="predict", unit="image") as bar:
        for start in range(0, len(paths), chunk):  # read a chunk, predict it in batches, write it
            batch = paths[start:start + chunk]
            images = [read_image(p, str(p)) for p in batch]
            for image_id, path, rgb, p in zip(range(start + 1, start + len(batch) + 1), batch, images,
                                              segmenter(images, tasks), strict=True):
                if p.semantic is not None:
                    Image.fromarray(p.semantic).save(out / f"{path.stem}_semantic.png")
                    colour = colorize(p.semantic, colors)
                    Image.fromarray(colour).save(out / f"{path.stem}_semantic_color.png")
                if p.panoptic is not None:
                    Image.fromarray(id_to_rgb(p.panoptic)).save(out / f"{path.stem}_panoptic.png")
                    panoptic.append({"image_id": image_id, "file_name": f"{path.stem}_panoptic.png",
                                     "source": str(path), "segments_info": p.segments_info})
                results += [{"image_id": image_id, **r} for r in p.instances]
                drawn = overlay(rgb, p, segmenter)
                Image.fromarray(drawn).save(out / f"{path.stem}_overlay.jpg", quality=92)
                bar.update()
    if "panoptic" in tasks:
        (out / "panoptic.json").write_text(json.dumps({"annotations": panoptic,
                                                       "categories": segmenter.categories}))
    if "instance" in tasks:
        (out / "instances.json").write_text(json.dumps(results))
    return {"images": len(paths), "instances": len(results)}


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry; returns 2 with a one-line message naming the file on bad input."""
    from pipeline.predictions import TASKS

    parser = argparse.ArgumentParser(prog="python -m pipeline predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files, folders or globs")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a model file (default models/model.pt) or an MLflow model URI "
                                        "(models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model)")
    source.add_argument("--run", help="an MLflow run id: the model that run logged")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--task", choices=TASKS, help="write only this task's outputs (default: all)")
    args = parser.parse_args(argv)
    from pipeline.params import load_params

    try:
        params = load_params(params_path)
        paths = expand(args.images)
        model = resolve_model(args.model, args.run, params)
        summary = predict(paths, model, args.out, params, (args.task,) if args.task else None)
    except (FileNotFoundError, ValueError) as exc:
        print(f"predict: {exc}")
        return 2
    print(f"predict: {summary['images']} images, {summary['instances']} instances -> {args.out}")
    return 0
