"""Stage `evaluate_instance`: COCO mask AP and panoptic PQ/SQ/RQ of the model on the validation split (for the
per-pixel baseline, its instances are the connected regions of each thing class in its class map).

Writes metrics/instance.json ({"segm": {...}, "panoptic_seg": {...}} in percent, or null with a reason
where not available), metrics/instance_per_class.csv, metrics/panoptic_per_class.csv and the predictions
in the standard formats: predictions/instances_val_results.json (COCO results, RLE) and
predictions/panoptic_val.json + predictions/panoptic/<name>.png (COCO panoptic).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from maskformer.data import CanonicalLayout, id_to_rgb
from maskformer.evaluation.predict import Predictor
from maskformer.evaluation.runner import OnImage, evaluate_masks
from pipeline.outputs import (
    AP_PER_CLASS,
    INSTANCE_METRICS,
    INSTANCE_RESULTS,
    PANOPTIC_JSON,
    PANOPTIC_PREDICTIONS,
    PQ_PER_CLASS,
    SEGM_HEADLINE,
    processed_dir,
)
from pipeline.params import Params
from pipeline.stages.evaluation import build_predictor, validation_set, write_csv, write_json
from pipeline.stages.runner import run_stage


@dataclass
class InstanceResult:
    """What mask_metrics computes: the content of metrics/instance.json and what the other files hold."""

    content: dict  # {"segm": {...} | None, "panoptic_seg": {...} | None[, "note": why not]}
    categories: list[dict]
    segm: dict | None = None  # every COCOeval number, per-class AP included
    results: list[dict] = field(default_factory=list)  # COCO results (RLE)
    panoptic_per_class: list[dict] = field(default_factory=list)


def unavailable_reason(record: dict, categories: list[dict]) -> str | None:
    """Why mask metrics cannot be computed for this model and data set, or None."""
    if record["params"]["input"]["task"] != "panoptic":
        return "not available: the model was trained on semantic targets (semantic-only data set)"
    if not any(c["isthing"] for c in categories):
        return "not available: the data set has no thing classes (semantic labels only)"
    return None


def mask_metrics(params: Params, predictor: Predictor, record: dict, on_image: OnImage | None = None
                 ) -> InstanceResult:
    """Panoptic and instance quality of `predictor` (trained as `record` says) on the validation split."""
    dataset = validation_set(params, "panoptic")
    reason = unavailable_reason(record, dataset.categories)
    if reason:
        return InstanceResult({"segm": None, "panoptic_seg": None, "note": reason}, dataset.categories)
    coco_gt = json.loads(CanonicalLayout(processed_dir(params.data)).instances_json("val").read_text())
    cfg = record["config"]
    per_pixel = cfg["architecture"] != "maskformer"  # its instances: connected regions of its class map
    result = evaluate_masks(predictor, dataset, coco_gt, cfg["object_mask_threshold"],
                            cfg["overlap_threshold"], cfg["test_topk_per_image"], on_image=on_image,
                            component_min_area=params.evaluate.component_min_area if per_pixel else None)
    segm = result["segm"]
    content = {"segm": {k: segm[k] for k in SEGM_HEADLINE} if segm else None,
               "panoptic_seg": result["panoptic_seg"]}
    return InstanceResult(content, dataset.categories, segm, result["results"], result["panoptic_per_class"])


class PanopticWriter:
    """An on_image callback writing predictions/panoptic/<name>.png and collecting their segments_info."""

    def __init__(self, folder: Path, categories: list[dict]) -> None:
        self.folder, self.categories, self.annotations = folder, categories, []

    def __call__(self, target: dict, pred: dict) -> None:
        name = Path(target["file_name"]).stem + ".png"
        self.folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(id_to_rgb(pred["panoptic"].numpy())).save(self.folder / name)
        segments = [{"id": s["id"], "category_id": self.categories[s["category_id"]]["id"],
                     "isthing": int(s["isthing"]), "area": s["area"]} for s in pred["segments"]]
        self.annotations.append({"image_id": target["image_id"], "file_name": name,
                                 "segments_info": segments})


def write_instance(result: InstanceResult, panoptic: PanopticWriter | None) -> None:
    """metrics/instance.json, the per-class tables and, when computed, the COCO and panoptic predictions."""
    write_json(INSTANCE_METRICS, result.content)
    segm, names = result.segm, [c["name"] for c in result.categories if c["isthing"]]
    write_csv(AP_PER_CLASS, [{"class": n, "AP": segm.get(f"AP-{n}")} for n in names] if segm else [])
    write_csv(PQ_PER_CLASS, result.panoptic_per_class)
    if result.content["panoptic_seg"] is not None:
        write_json(INSTANCE_RESULTS, result.results)
        annotations = panoptic.annotations if panoptic else []
        write_json(PANOPTIC_JSON, {"annotations": annotations, "categories": result.categories})


def evaluate_instance(params: Params) -> dict:
    """The stage: evaluate models/model.pt, write metrics and predictions; return metrics/instance.json."""
    predictor, record = build_predictor(params)
    writer = PanopticWriter(PANOPTIC_PREDICTIONS, validation_set(params, "panoptic").categories)
    result = mask_metrics(params, predictor, record, on_image=writer)
    write_instance(result, writer)
    return result.content


def _run(params: Params, run: Any) -> str:
    from pipeline import tracking  # here: importing the stage stays free of MLflow

    content = evaluate_instance(params)
    tracking.log_metrics_file(INSTANCE_METRICS)
    tracking.log_artifacts([INSTANCE_METRICS, AP_PER_CLASS, PQ_PER_CLASS], "metrics")
    lines = []
    for section in ("segm", "panoptic_seg"):
        values = content.get(section)
        text = ", ".join(f"{k}={v:.2f}" for k, v in values.items()) if values else content.get("note")
        lines.append(f"{section}: {text}")
    return "\n".join(lines)


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline evaluate_instance [--params params.yaml]`."""
    return run_stage("evaluate_instance", __doc__, params_path, argv, _run)
