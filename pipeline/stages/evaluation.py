"""What both evaluation stages share: the trained model as a test-time predictor, the validation split,
and the writers of metric files."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from maskformer.data import CanonicalDataset, build_eval_transforms
from maskformer.engine import resolve_device
from maskformer.evaluation.predict import Predictor
from pipeline.outputs import MODEL, processed_dir
from pipeline.params import Params
from pipeline.stages.train import load_trained


def build_predictor(params: Params) -> tuple[Predictor, dict]:
    """The trained model from models/model.pt wrapped for test-time inference, and its record."""
    device = resolve_device(params.evaluate.device)
    model, record = load_trained(MODEL, device)
    amp = params.evaluate.amp and device.type == "cuda"  # CPUs evaluate in fp32
    return Predictor(model, params.evaluate, device, amp=amp), record


def validation_set(params: Params, task: str) -> CanonicalDataset:
    """The validation split at its original size."""
    return CanonicalDataset(processed_dir(params.data), "val", task=task, transforms=build_eval_transforms())


def write_json(path: Path, content: Any) -> None:
    """Pretty, stable JSON (metrics files are read by DVC, MLflow and people)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """A table as CSV with the union of the rows' keys as header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(k for row in rows for k in row)) or ["empty"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
