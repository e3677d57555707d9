"""Stage `evaluate_instance`: COCO mask AP and panoptic PQ/SQ/RQ of one MaskFormer on the validation split.

Writes metrics/instance.json ({"segm": {...}, "panoptic_seg": {...}} in percent, or null with a reason
where not available), metrics/instance_per_class.csv, metrics/panoptic_per_class.csv and the predictions
in the standard formats: predictions/instances_val_results.json (COCO results, RLE) and
predictions/panoptic_val.json + predictions/panoptic/<name>.png (COCO panoptic).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from maskformer.evaluation.predict import Predictor
from maskformer.evaluation.runner import evaluate_masks
from pipeline.params import Params, load_params
from pipeline.sources._common import id_to_rgb
from pipeline.stages.evaluate_common import build_predictor, validation_set, write_csv, write_json

METRICS = Path("metrics/instance.json")
AP_PER_CLASS = Path("metrics/instance_per_class.csv")
PQ_PER_CLASS = Path("metrics/panoptic_per_class.csv")
RESULTS = Path("predictions/instances_val_results.json")
PANOPTIC_JSON = Path("predictions/panoptic_val.json")
PANOPTIC_PNG = Path("predictions/panoptic")
SEGM_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def unavailable_reason(record: dict, categories: list[dict]) -> str | None:
    """Why mask metrics cannot be computed for this model and data set, or None."""
    if record["config"]["architecture"] != "maskformer":
        return "not available: the per-pixel baseline predicts no masks"
    if record["params"]["train"]["task"] != "panoptic":
        return "not available: the model was trained on semantic targets (semantic-only data set)"
    if not any(c["isthing"] for c in categories):
        return "not available: the data set has no thing classes (semantic labels only)"
    return None


def evaluate_instance(
    params: Params, predictor: Predictor | None = None, record: dict | None = None, write: bool = True
) -> dict:
    """Evaluate panoptic and instance quality; returns the content of metrics/instance.json."""
    if predictor is None:
        predictor, record = build_predictor(params)
    dataset = validation_set(params, "panoptic")
    reason = unavailable_reason(record, dataset.categories) if record else None
    if reason:
        content = {"segm": None, "panoptic_seg": None, "note": reason}
        if write:
            write_json(METRICS, content)
            write_csv(AP_PER_CLASS, [])
            write_csv(PQ_PER_CLASS, [])
        return content
    coco_gt = json.loads((params.data.processed_path() / "annotations" / "instances_val.json").read_text())
    annotations: list[dict] = []
    if write:
        PANOPTIC_PNG.mkdir(parents=True, exist_ok=True)

    def save(target: dict, pred: dict) -> None:
        name = Path(target["file_name"]).stem + ".png"
        Image.fromarray(id_to_rgb(pred["panoptic"].numpy())).save(PANOPTIC_PNG / name)
        segments = [
            {
                "id": s["id"],
                "category_id": dataset.categories[s["category_id"]]["id"],
                "isthing": int(s["isthing"]),
                "area": s["area"],
            }
            for s in pred["segments"]
        ]
        annotations.append({"image_id": target["image_id"], "file_name": name, "segments_info": segments})

    model_cfg = record["config"] if record else params.model.to_dict()
    result = evaluate_masks(
        predictor,
        dataset,
        coco_gt,
        model_cfg["object_mask_threshold"],
        model_cfg["overlap_threshold"],
        model_cfg["test_topk_per_image"],
        on_image=save if write else None,
    )
    segm = result["segm"]
    content = {
        "segm": {k: segm[k] for k in SEGM_KEYS} if segm else None,
        "panoptic_seg": result["panoptic_seg"],
    }
    if write:
        write_json(METRICS, content)
        write_json(RESULTS, result["results"])
        write_json(PANOPTIC_JSON, {"annotations": annotations, "categories": dataset.categories})
        names = [c["name"] for c in dataset.categories if c["isthing"]]
        write_csv(AP_PER_CLASS, [{"class": n, "AP": segm.get(f"AP-{n}")} for n in names] if segm else [])
        write_csv(PQ_PER_CLASS, result["panoptic_per_class"])
    return content


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline evaluate_instance [--params params.yaml]`."""
    from pipeline import tracking  # here, not at the top: the stage function stays free of MLflow

    argparse.ArgumentParser(prog="python -m pipeline evaluate_instance", description=__doc__).parse_args(argv)
    params = load_params(params_path)
    with tracking.stage_run("evaluate_instance", params):
        content = evaluate_instance(params)
        tracking.log_metrics_file(METRICS)
        tracking.log_artifacts([METRICS, AP_PER_CLASS, PQ_PER_CLASS], "metrics")
    for section in ("segm", "panoptic_seg"):
        values = content.get(section)
        text = ", ".join(f"{k}={v:.2f}" for k, v in values.items()) if values else content.get("note")
        print(f"evaluate_instance: {section}: {text}")
    return 0
