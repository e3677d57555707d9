"""What the run report shows: headline metrics, per-class tables, figures, earlier runs and the environment,
collected from the stages' outputs (rendering is pipeline.report.render)."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from PIL import Image

from maskformer.data import CanonicalLayout, rgb_to_id
from pipeline import outputs as out
from pipeline.params import Params
from pipeline.report import plots
from pipeline.report.runs import runs_table
from pipeline.tracking.identity import data_hash, git_commit
from pipeline.tracking.run import tracking_uri

PACKAGES = ("torch", "torchvision", "mlflow", "dvc", "prefect", "numpy", "pandas")
HEADLINE_ORDER = ("sem_seg", "panoptic_seg", "segm")


@dataclass
class Report:
    """Everything the report shows, before rendering."""

    title: str
    headline: dict[str, dict[str, float]]  # section (sem_seg, panoptic_seg, segm, train) -> metric -> value
    notes: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # caption -> per-class table
    figures: dict[str, bytes] = field(default_factory=dict)  # file stem -> PNG bytes
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    environment: dict[str, str] = field(default_factory=dict)


def _read_csv(path: Path) -> pd.DataFrame:
    """A metrics CSV, empty when missing or header-only."""
    return pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()


def _headline(notes: list[str]) -> dict[str, dict[str, float]]:
    """Metric sections of both evaluation JSONs and the last training step; reasons for gaps go to notes."""
    sections: dict[str, dict[str, float]] = {}
    for path in (out.SEMANTIC_METRICS, out.INSTANCE_METRICS):
        if not path.exists():
            notes.append(f"{path} is missing: its stage has not run")
            continue
        content = json.loads(path.read_text())
        sections |= {k: v for k, v in content.items() if isinstance(v, dict)}
        if content.get("note"):
            notes.append(f"{path.name}: {content['note']}")
    log = _read_csv(out.TRAIN_LOG)
    if not log.empty:
        last = log.iloc[-1]
        sections["train"] = {"step": float(last["step"]), "loss": float(last["loss"])}
    first = {"sem_seg": out.SEMANTIC_HEADLINE, "segm": out.SEGM_HEADLINE,
             "panoptic_seg": out.PANOPTIC_HEADLINE}
    return {s: {k: sections[s][k] for k in _ordered(sections[s], first.get(s, ()))}
            for s in _ordered(sections, HEADLINE_ORDER)}


def _ordered(keys: Iterable[str], first: Iterable[str]) -> list[str]:
    """`first` (those present) in its order, then the rest sorted."""
    keys = list(keys)
    return [k for k in first if k in keys] + sorted(k for k in keys if k not in first)


def _samples(params: Params, count: int) -> list[plots.Sample]:
    """`count` validation images spread over the split, with ground truth and whatever predictions exist."""
    layout = CanonicalLayout(out.processed_dir(params.data))
    truths = sorted(layout.semantic_dir("val").glob("*.png"))
    spread = np.linspace(0, len(truths) - 1, min(count, len(truths))) if truths else []
    picks = [truths[int(i)] for i in spread]
    samples = []
    for truth in picks:
        image = next(layout.image_dir("val").glob(f"{truth.stem}.*"), None)
        if image is None:
            continue
        sem_pred, pan_pred = out.SEMANTIC_PREDICTIONS / truth.name, out.PANOPTIC_PREDICTIONS / truth.name
        panoptic = rgb_to_id(np.asarray(Image.open(pan_pred).convert("RGB"))) if pan_pred.exists() else None
        samples.append(plots.Sample(
            truth.stem, np.asarray(Image.open(image).convert("RGB")), np.asarray(Image.open(truth)),
            np.asarray(Image.open(sem_pred)) if sem_pred.exists() else None, panoptic))
    return samples


def environment(params: Params, run_id: str | None) -> dict[str, str]:
    """Versions, device, git commit, data hash and MLflow run: what is needed to reproduce the numbers."""
    import torch

    from maskformer.engine import resolve_device

    env = {"generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "git commit": git_commit() or "unknown (not a git checkout)",
           "python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            env[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            env[package] = "not installed"
    device = resolve_device(params.evaluate.device)
    env["device"] = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    env["data"] = f"{params.data.dataset}: {data_hash(params) or 'not preprocessed'}"
    if run_id:
        env["MLflow run"] = f"{run_id} ({tracking_uri(params)})"
    return env


def build_report(params: Params, run_id: str | None = None, title: str | None = None) -> Report:
    """Collect metrics, per-class tables, figures, earlier runs and the environment of the current outputs."""
    model = params.model
    report = Report(title or f"{params.data.dataset} / {model.architecture} {model.backbone}", {})
    report.headline = _headline(report.notes)
    dpi = params.report.dpi
    for caption, path in (("semantic segmentation per class", out.SEMANTIC_PER_CLASS),
                          ("panoptic quality per class", out.PQ_PER_CLASS),
                          ("mask AP per thing class", out.AP_PER_CLASS)):
        table = _read_csv(path)
        if not table.empty:
            report.tables[caption] = table
    manifest = CanonicalLayout(out.processed_dir(params.data)).manifest
    categories = json.loads(manifest.read_text())["categories"] if manifest.exists() else []
    figures = {
        "training_curves": plots.training_curves(_read_csv(out.TRAIN_LOG), dpi),
        "per_class_iou": plots.per_class_iou(_read_csv(out.SEMANTIC_PER_CLASS), dpi),
        "confusion": plots.confusion_heatmap(_read_csv(out.SEMANTIC_CONFUSION), dpi),
        "overlays": plots.overlays(_samples(params, params.report.num_samples), len(categories), dpi),
        "class_legend": plots.class_legend([c["name"] for c in categories], dpi),
    }
    report.figures = {k: v for k, v in figures.items() if v is not None}
    try:
        report.runs = runs_table(params, max_runs=params.report.max_runs)
    except MlflowException as exc:  # an unreachable server must not cost the report
        report.notes.append(f"earlier runs unavailable: {exc}")
    if run_id and not report.runs.empty:
        report.runs.insert(0, "this", np.where(report.runs["run_id"] == run_id, "◀", ""))
    report.environment = environment(params, run_id)
    return report
