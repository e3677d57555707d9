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
from maskformer.evaluation.components import touching_same_class_pairs
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
    crowded: pd.DataFrame = field(default_factory=pd.DataFrame)  # the images of the overlapping section
    paper: dict[str, float] = field(default_factory=dict)  # section/metric -> the paper's number
    environment: dict[str, str] = field(default_factory=dict)


def _read_csv(path: Path) -> pd.DataFrame:
    """A metrics CSV, empty when missing or header-only."""
    return pd.read_csv(path) if path.exists() and path.stat().st_size else pd.DataFrame()


def _headline(notes: list[str]) -> dict[str, dict[str, float]]:
    """Metric sections of both evaluation JSONs and the last training step; reasons for gaps go to notes."""
    sections: dict[str, dict[str, float]] = {}
    for path in out.METRICS_FILES:
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


def _touch(a: list[int] | None, b: list[int] | None) -> bool:
    """Whether two COCO boxes [x, y, w, h], one pixel wider, meet (masks in them may touch); unknown: True."""
    if a is None or b is None:
        return True
    return a[0] <= b[0] + b[2] and b[0] <= a[0] + a[2] and a[1] <= b[1] + b[3] and b[1] <= a[1] + a[3]


class Validation:
    """The validation split's panoptic ground truth and predictions on disk, as plots.Sample per image."""

    def __init__(self, params: Params, categories: list[dict]) -> None:
        self.layout = CanonicalLayout(out.processed_dir(params.data))
        self.index = {c["id"]: k for k, c in enumerate(categories)}
        self.isthing = {c["id"]: bool(c["isthing"]) for c in categories}
        self.truths = self._annotations(self.layout.panoptic_json("val"))
        self.predictions = self._annotations(out.PANOPTIC_JSON)

    @staticmethod
    def _annotations(path: Path) -> dict[str, list[dict]]:
        """PNG stem -> segments_info of a COCO panoptic JSON (empty when it is missing)."""
        content = json.loads(path.read_text()) if path.exists() else {"annotations": []}
        return {Path(a["file_name"]).stem: a["segments_info"] for a in content["annotations"]}

    def _instance(self, info: dict) -> bool:
        """Whether a segment is a thing instance (a crowd region is none: it is drawn as stuff)."""
        return bool(info.get("isthing", self.isthing[info["category_id"]])) and not info.get("iscrowd", 0)

    def _panoptic(self, png: Path, infos: list[dict]) -> plots.Panoptic:
        """A COCO panoptic PNG and its segments_info as segment ids and (id, class index, isthing)."""
        ids = rgb_to_id(np.asarray(Image.open(png).convert("RGB")))
        segments = [(s["id"], self.index[s["category_id"]], self._instance(s)) for s in infos]
        return plots.Panoptic(ids, segments)

    def sample(self, stem: str, caption: str = "") -> plots.Sample | None:
        """One image with its ground truth and whatever predictions exist; None without the image."""
        image = next(self.layout.image_dir("val").glob(f"{stem}.*"), None)
        if image is None:
            return None
        truth = self._panoptic(self.layout.panoptic_png("val", stem), self.truths[stem])
        sem, pan = out.SEMANTIC_PREDICTIONS / f"{stem}.png", out.PANOPTIC_PREDICTIONS / f"{stem}.png"
        semantic = np.asarray(Image.open(sem)) if sem.exists() else None
        predicted = pan.exists() and stem in self.predictions
        panoptic = self._panoptic(pan, self.predictions[stem]) if predicted else None
        picture = np.asarray(Image.open(image).convert("RGB"))
        return plots.Sample(stem, picture, truth, semantic, panoptic, caption)

    def spread(self, count: int) -> list[plots.Sample]:
        """`count` images spread evenly over the split."""
        stems = sorted(self.truths)
        picks = np.linspace(0, len(stems) - 1, min(count, len(stems))).round().astype(int) if stems else []
        return [s for s in (self.sample(stems[i]) for i in picks) if s is not None]

    def _touching_pairs(self, stem: str) -> int:
        """Touching same-class thing pairs of one ground-truth image (its PNG read only if boxes meet)."""
        boxes: dict[int, list[list[int] | None]] = {}
        for info in self.truths[stem]:
            if self._instance(info):
                boxes.setdefault(info["category_id"], []).append(info.get("bbox"))
        if not any(_touch(a, b) for same in boxes.values() for i, a in enumerate(same) for b in same[i + 1:]):
            return 0
        truth = self._panoptic(self.layout.panoptic_png("val", stem), self.truths[stem])
        return touching_same_class_pairs(truth.ids, truth.segments)

    def crowded(self, count: int) -> tuple[list[plots.Sample], pd.DataFrame]:
        """The `count` images with most touching same-class thing pairs in the ground truth (ties by name),
        and a table of them: image, pairs, thing instances."""
        found = [(pairs, stem) for stem in (sorted(self.truths) if count else [])
                 if (pairs := self._touching_pairs(stem))]
        top = sorted(found, key=lambda f: -f[0])[:count]
        table = pd.DataFrame([{"image": stem, "touching same-class pairs": pairs,
                               "thing instances": sum(map(self._instance, self.truths[stem]))}
                              for pairs, stem in top])
        samples = [self.sample(stem, f"{pairs} touching same-class pairs") for pairs, stem in top]
        return [s for s in samples if s is not None], table


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
    names = [c["name"] for c in categories]
    validation = Validation(params, categories)
    crowded, report.crowded = validation.crowded(params.report.num_samples)
    figures = {
        "training_curves": plots.training_curves(_read_csv(out.TRAIN_LOG), dpi),
        "per_class_iou": plots.per_class_iou(_read_csv(out.SEMANTIC_PER_CLASS), dpi),
        "confusion": plots.confusion_heatmap(_read_csv(out.SEMANTIC_CONFUSION), dpi),
        "overlays": plots.overlays(validation.spread(params.report.num_samples), names, dpi),
        "overlapping": plots.overlays(crowded, names, dpi),
        "class_legend": plots.class_legend(names, dpi),
    }
    report.figures = {k: v for k, v in figures.items() if v is not None}
    try:
        report.runs = runs_table(params, max_runs=params.report.max_runs)
    except MlflowException as exc:  # an unreachable server must not cost the report
        report.notes.append(f"earlier runs unavailable: {exc}")
    if run_id and not report.runs.empty:
        report.runs.insert(0, "this", np.where(report.runs["run_id"] == run_id, "◀", ""))
    report.environment = environment(params, run_id)
    report.environment["weights"] = weights_origin(params)
    if params.init.model_file:  # said at the top too: these numbers are not this pipeline's training
        report.notes.insert(0, f"weights: {report.environment['weights']}")
    report.paper = dict(params.report.paper)
    return report


def weights_origin(params: Params) -> str:
    """Where the model's weights came from: trained here (from model.weights), fine-tuned from a model
    file, or a model file evaluated as it is (init:, as the model file records it)."""
    import torch

    if not out.MODEL.exists():
        return "no model yet"
    init = torch.load(out.MODEL, map_location="cpu", weights_only=True).get("init")
    if init is None:
        return f"trained here from {params.model.weights or 'scratch'}"
    origin = f"{init['source']} ({init['format']}, sha256 {init['sha256'][:12]})"
    if not params.init.train:
        return f"{origin}, evaluated as imported: not trained here"
    restarted = f"; re-initialised: {', '.join(init['reinitialised'])}" if init["reinitialised"] else ""
    return f"fine-tuned from {origin}{restarted}"
