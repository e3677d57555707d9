"""Stage `evaluate_semantic`: mIoU, fwIoU, mACC, pACC and per-class IoU/ACC on the validation split.

Writes metrics/semantic.json ({"sem_seg": {...}} in percent), metrics/semantic_per_class.csv,
metrics/semantic_confusion.csv and predictions/semantic/<name>.png (class index per pixel, uint8).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image

from maskformer.evaluation.predict import Predictor
from maskformer.evaluation.runner import evaluate_semantic as run_semantic
from pipeline.params import Params, load_params
from pipeline.stages.evaluate_common import build_predictor, validation_set, write_csv, write_json

METRICS = Path("metrics/semantic.json")
PER_CLASS = Path("metrics/semantic_per_class.csv")
CONFUSION = Path("metrics/semantic_confusion.csv")
PREDICTIONS = Path("predictions/semantic")
HEADLINE = ("mIoU", "fwIoU", "mACC", "pACC")


def evaluate_semantic(params: Params, predictor: Predictor | None = None, write: bool = True) -> dict:
    """Evaluate the trained model (or `predictor`) and write the metric files and predicted maps."""
    predictor = predictor or build_predictor(params)[0]
    dataset = validation_set(params, "semantic")
    if write:
        PREDICTIONS.mkdir(parents=True, exist_ok=True)

    def save(target: dict, pred: dict) -> None:
        name = Path(target["file_name"]).stem + ".png"
        Image.fromarray(pred["sem_seg"].cpu().numpy().astype(np.uint8)).save(PREDICTIONS / name)

    metrics, confusion = run_semantic(predictor, dataset, on_image=save if write else None)
    headline = {k: metrics[k] for k in HEADLINE}
    if write:
        names = [c["name"] for c in dataset.categories]
        rows = [{"class": n, "IoU": metrics[f"IoU-{n}"], "ACC": metrics[f"ACC-{n}"]} for n in names]
        write_json(METRICS, {"sem_seg": headline})
        write_csv(PER_CLASS, rows)
        labels = names + ["void"]
        write_csv(
            CONFUSION,
            [
                {"gt": g, **{p: int(v) for p, v in zip(labels, row, strict=True)}}
                for g, row in zip(labels, confusion.tolist(), strict=True)
            ],
        )
    return headline


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline evaluate_semantic [--params params.yaml]`."""
    from pipeline import tracking  # here, not at the top: the stage function stays free of MLflow
    argparse.ArgumentParser(prog="python -m pipeline evaluate_semantic", description=__doc__).parse_args(argv)
    params = load_params(params_path)
    with tracking.stage_run("evaluate_semantic", params):
        metrics = evaluate_semantic(params)
        tracking.log_metrics_file(METRICS)
        tracking.log_artifacts([METRICS, PER_CLASS, CONFUSION], "metrics")
    print("evaluate_semantic: " + ", ".join(f"{k}={v:.2f}" for k, v in metrics.items() if not math.isnan(v)))
    return 0
