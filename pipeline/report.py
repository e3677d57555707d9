"""The run report: headline metrics, per-class tables, plots, overlays, earlier runs and the environment,
rendered as one self-contained HTML page (figures as base64 data URIs) and a Markdown summary."""

from __future__ import annotations

import base64
import datetime
import html
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

from pipeline import report_plots, run_info, tracking
from pipeline.params import Params
from pipeline.report_runs import runs_table
from pipeline.stages import evaluate_instance as inst
from pipeline.stages import evaluate_semantic as sem
from pipeline.stages.train import TRAIN_LOG

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
    for path in (sem.METRICS, inst.METRICS):
        if not path.exists():
            notes.append(f"{path} is missing: its stage has not run")
            continue
        content = json.loads(path.read_text())
        sections |= {k: v for k, v in content.items() if isinstance(v, dict)}
        if content.get("note"):
            notes.append(f"{path.name}: {content['note']}")
    log = _read_csv(TRAIN_LOG)
    if not log.empty:
        last = log.iloc[-1]
        sections["train"] = {"step": float(last["step"]), "loss": float(last["loss"])}
    first = {"sem_seg": sem.HEADLINE, "segm": inst.SEGM_KEYS, "panoptic_seg": ("PQ", "SQ", "RQ")}
    return {s: {k: sections[s][k] for k in _ordered(sections[s], first.get(s, ()))}
            for s in _ordered(sections, HEADLINE_ORDER)}


def _ordered(keys: Iterable[str], first: Iterable[str]) -> list[str]:
    """`first` (those present) in its order, then the rest sorted."""
    keys = list(keys)
    return [k for k in first if k in keys] + sorted(k for k in keys if k not in first)


def _samples(params: Params, count: int) -> list[report_plots.Sample]:
    """`count` validation images spread over the split, with ground truth and whatever predictions exist."""
    root = params.data.processed_path()
    truths = sorted((root / "semantic" / "val").glob("*.png"))
    spread = np.linspace(0, len(truths) - 1, min(count, len(truths))) if truths else []
    picks = [truths[int(i)] for i in spread]
    samples = []
    for truth in picks:
        image = next((root / "images" / "val").glob(f"{truth.stem}.*"), None)
        if image is None:
            continue
        sem_pred, pan_pred = sem.PREDICTIONS / truth.name, inst.PANOPTIC_PNG / truth.name
        panoptic = None
        if pan_pred.exists():
            rgb = np.asarray(Image.open(pan_pred).convert("RGB")).astype(np.int64)
            panoptic = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]  # COCO panoptic id encoding
        samples.append(report_plots.Sample(
            truth.stem, np.asarray(Image.open(image).convert("RGB")), np.asarray(Image.open(truth)),
            np.asarray(Image.open(sem_pred)) if sem_pred.exists() else None, panoptic))
    return samples


def environment(params: Params, run_id: str | None) -> dict[str, str]:
    """Versions, device, git commit, data hash and MLflow run: what is needed to reproduce the numbers."""
    import torch

    from maskformer.engine import resolve_device

    env = {"generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "git commit": run_info.git_commit() or "unknown (not a git checkout)",
           "python": platform.python_version(), "platform": platform.platform()}
    for package in PACKAGES:
        try:
            env[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            env[package] = "not installed"
    device = resolve_device(params.evaluate.device)
    env["device"] = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    env["data"] = f"{params.data.dataset}: {run_info.data_hash(params) or 'not preprocessed'}"
    if run_id:
        env["MLflow run"] = f"{run_id} ({tracking.tracking_uri(params)})"
    return env


def build_report(params: Params, run_id: str | None = None, title: str | None = None) -> Report:
    """Collect metrics, per-class tables, figures, earlier runs and the environment of the current outputs."""
    model = params.model
    report = Report(title or f"{params.data.dataset} / {model.architecture} {model.backbone}", {})
    report.headline = _headline(report.notes)
    dpi = params.report.dpi
    for caption, path in (("semantic segmentation per class", sem.PER_CLASS),
                          ("panoptic quality per class", inst.PQ_PER_CLASS),
                          ("mask AP per thing class", inst.AP_PER_CLASS)):
        table = _read_csv(path)
        if not table.empty:
            report.tables[caption] = table
    categories = json.loads((params.data.processed_path() / "manifest.json").read_text())["categories"] \
        if (params.data.processed_path() / "manifest.json").exists() else []
    figures = {
        "training_curves": report_plots.training_curves(_read_csv(TRAIN_LOG), dpi),
        "per_class_iou": report_plots.per_class_iou(_read_csv(sem.PER_CLASS), dpi),
        "confusion": report_plots.confusion_heatmap(_read_csv(sem.CONFUSION), dpi),
        "overlays": report_plots.overlays(_samples(params, params.report.num_samples), len(categories), dpi),
        "class_legend": report_plots.class_legend([c["name"] for c in categories], dpi),
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


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}img{max-width:100%;display:block;margin:.5em 0}
.note{color:#a55}nav a{margin-right:1em}details{margin:.5em 0}"""
_FIGURE_SECTIONS = {"training": ("Training curves", ["training_curves"]),
                    "per-class": ("Per-class results", ["per_class_iou"]),
                    "confusion": ("Confusion matrix", ["confusion"]),
                    "samples": ("Validation samples", ["overlays", "class_legend"])}


def _img(png: bytes, alt: str) -> str:
    """An <img> with the PNG inline, so the page needs no other file."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _number(value: float) -> str:
    """Two decimals, whole numbers (steps, counts) without."""
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.2f}"


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=_number, na_rep="–", border=0)


def _headline_frame(headline: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Rows: section/metric, value (the names of the metrics JSON and of the MLflow metrics)."""
    rows = [{"metric": f"{s}/{k}", "value": v} for s, metrics in headline.items() for k, v in metrics.items()]
    return pd.DataFrame(rows, columns=["metric", "value"])


def render_html(report: Report) -> str:
    """The report as one HTML page with inline CSS and figures (no external files or requests)."""
    parts = [f"<h1>MaskFormer run report: {html.escape(report.title)}</h1>",
             "<nav>" + "".join(f'<a href="#{key}">{title}</a>' for key, title in
                               [("metrics", "Metrics"), *[(k, t) for k, (t, _) in _FIGURE_SECTIONS.items()],
                                ("runs", "Earlier runs"), ("environment", "Environment")]) + "</nav>",
             '<section id="metrics"><h2>Headline metrics</h2>', _html_table(_headline_frame(report.headline))]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in report.notes]
    parts.append("</section>")
    for key, (title, names) in _FIGURE_SECTIONS.items():
        parts.append(f'<section id="{key}"><h2>{title}</h2>')
        shown = [_img(report.figures[n], n) for n in names if n in report.figures]
        parts += shown or ['<p class="note">nothing to show (the stage has not run)</p>']
        if key == "per-class":
            parts += [f"<details open><summary>{html.escape(c)}</summary>{_html_table(t)}</details>"
                      for c, t in report.tables.items()]
        parts.append("</section>")
    runs = _html_table(report.runs) if not report.runs.empty else "<p>no runs recorded yet</p>"
    parts.append(f'<section id="runs"><h2>Earlier runs (MLflow)</h2>{runs}</section>')
    env = pd.DataFrame(list(report.environment.items()), columns=["item", "value"])
    parts.append(f'<section id="environment"><h2>Environment</h2>{_html_table(env)}</section>')
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(report.title)}'
            f"</title><style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _md_table(frame: pd.DataFrame) -> str:
    """A pipe table (no tabulate needed); floats with two decimals."""
    def cell(v: object) -> str:
        text = "–" if v is None or (isinstance(v, float) and np.isnan(v)) else \
            _number(v) if isinstance(v, float) else str(v)
        return text.replace("|", "\\|")
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(report: Report, html_name: str = "report.html") -> str:
    """A short summary (headline metrics, weakest classes, earlier runs, environment) for MLflow/Prefect."""
    parts = [f"# MaskFormer run report: {report.title}", "", _md_table(_headline_frame(report.headline)), ""]
    parts += [f"> {n}" for n in report.notes]
    semantic = report.tables.get("semantic segmentation per class")
    if semantic is not None:
        parts += ["", "## Weakest classes (IoU)", "", _md_table(semantic.nsmallest(5, "IoU"))]
    if not report.runs.empty:
        runs = report.runs.drop(columns=["run_id"]).head(10)
        parts += ["", "## Earlier runs", "", _md_table(runs)]
    parts += ["", "## Environment", "", _md_table(pd.DataFrame(list(report.environment.items()),
                                                                 columns=["item", "value"]))]
    parts += ["", f"Plots, per-class tables and sample overlays: {html_name}", ""]
    return "\n".join(parts)
