"""Stage `evaluate_semantic`: mIoU, fwIoU, mACC, pACC and per-class IoU/ACC on the validation split.

Writes metrics/semantic.json ({"sem_seg": {...}} in percent), metrics/semantic_per_class.csv,
metrics/semantic_confusion.csv and predictions/semantic/<name>.png (class index per pixel, uint8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from maskformer.evaluation.predict import Predictor
from maskformer.evaluation.runner import OnImage
from maskformer.evaluation.runner import evaluate_semantic as run_semantic
from pipeline.outputs import (
    SEMANTIC_CONFUSION,
    SEMANTIC_HEADLINE,
    SEMANTIC_METRICS,
    SEMANTIC_PER_CLASS,
    SEMANTIC_PREDICTIONS,
)
from pipeline.params import Params
from pipeline.stages.evaluation import build_predictor, validation_set, write_csv, write_json
from pipeline.stages.runner import run_stage


@dataclass
class SemanticResult:
    """Everything evaluate_semantic computes: all metrics, the confusion matrix and the class names."""

    metrics: dict[str, float]
    confusion: torch.Tensor  # [K+1, K+1] ground truth rows, predicted columns; void last
    names: list[str]

    @property
    def headline(self) -> dict[str, float]:
        return {k: self.metrics[k] for k in SEMANTIC_HEADLINE}


def semantic_metrics(params: Params, predictor: Predictor, on_image: OnImage | None = None) -> SemanticResult:
    """Evaluate `predictor` on the validation split; `on_image` receives every predicted class map."""
    dataset = validation_set(params, "semantic")
    metrics, confusion = run_semantic(predictor, dataset, on_image=on_image)
    return SemanticResult(metrics, confusion, [c["name"] for c in dataset.categories])


def save_class_map(folder: Path) -> OnImage:
    """An on_image callback writing predictions/semantic/<name>.png (class index per pixel)."""
    folder.mkdir(parents=True, exist_ok=True)

    def save(target: dict, pred: dict) -> None:
        name = Path(target["file_name"]).stem + ".png"
        Image.fromarray(pred["sem_seg"].cpu().numpy().astype(np.uint8)).save(folder / name)

    return save


def write_semantic(result: SemanticResult) -> None:
    """metrics/semantic.json, the per-class table and the confusion matrix as CSV."""
    m = result.metrics
    write_json(SEMANTIC_METRICS, {"sem_seg": result.headline})
    rows = [{"class": n, "IoU": m[f"IoU-{n}"], "ACC": m[f"ACC-{n}"]} for n in result.names]
    write_csv(SEMANTIC_PER_CLASS, rows)
    labels = result.names + ["void"]
    write_csv(SEMANTIC_CONFUSION, [{"gt": g, **{p: int(v) for p, v in zip(labels, row, strict=True)}}
                                   for g, row in zip(labels, result.confusion.tolist(), strict=True)])


def evaluate_semantic(params: Params) -> dict[str, float]:
    """The stage: evaluate models/model.pt, write the metric files and class maps; return the headline."""
    predictor = build_predictor(params)[0]
    result = semantic_metrics(params, predictor, on_image=save_class_map(SEMANTIC_PREDICTIONS))
    write_semantic(result)
    return result.headline


def _run(params: Params, run: Any) -> str:
    from pipeline import tracking  # here: importing the stage stays free of MLflow

    metrics = evaluate_semantic(params)
    tracking.log_metrics_file(SEMANTIC_METRICS)
    tracking.log_artifacts([SEMANTIC_METRICS, SEMANTIC_PER_CLASS, SEMANTIC_CONFUSION], "metrics")
    return ", ".join(f"{k}={v:.2f}" for k, v in metrics.items() if not math.isnan(v))


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline evaluate_semantic [--params params.yaml]`."""
    return run_stage("evaluate_semantic", __doc__, params_path, argv, _run)
