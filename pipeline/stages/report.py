"""Stage `report`: reports/report.html (self-contained) and reports/report.md for this pipeline execution.

The last stage: it logs the report, its plots and anything that stages skipped by DVC did not log (training
curves, metrics, the model) to the execution's MLflow run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow

from pipeline import outputs as out
from pipeline import tracking
from pipeline.params import Params
from pipeline.report.content import build_report
from pipeline.report.render import render_html, render_markdown
from pipeline.stages.runner import run_stage


def report(params: Params, run_id: str | None = None) -> Path:
    """Write reports/report.html, reports/report.md and reports/plots/*.png; return the HTML path."""
    title = mlflow.get_run(run_id).info.run_name if run_id else None
    content = build_report(params, run_id, title)
    out.REPORT_PLOTS.mkdir(parents=True, exist_ok=True)
    for old in out.REPORT_PLOTS.glob("*.png"):
        old.unlink()
    for name, png in content.figures.items():
        (out.REPORT_PLOTS / f"{name}.png").write_bytes(png)
    out.REPORT_HTML.write_text(render_html(content), encoding="utf-8")
    out.REPORT_MD.write_text(render_markdown(content, out.REPORT_HTML.name), encoding="utf-8")
    return out.REPORT_HTML


def _backfill(params: Params) -> None:
    """Log what stages skipped by `dvc repro` (unchanged, so not run) would have logged into this run."""
    run = mlflow.get_run(mlflow.active_run().info.run_id)
    if "loss" not in run.data.metrics and out.TRAIN_LOG.exists():
        tracking.log_train_log(out.TRAIN_LOG)
        tracking.log_artifacts([out.TRAIN_LOG], "metrics")
    for path, tables in ((out.SEMANTIC_METRICS, [out.SEMANTIC_PER_CLASS, out.SEMANTIC_CONFUSION]),
                         (out.INSTANCE_METRICS, [out.AP_PER_CLASS, out.PQ_PER_CLASS])):
        if path.exists() and not set(out.metric_values(json.loads(path.read_text()))) & set(run.data.metrics):
            tracking.log_metrics_file(path)
            tracking.log_artifacts([path, *tables], "metrics")
    if params.tracking.log_model and "model_uri" not in run.data.tags and out.MODEL.exists():
        tracking.log_model(out.MODEL, params)


def _run(params: Params, run: Any) -> str:
    _backfill(params)
    path = report(params, run.info.run_id)
    tracking.log_artifacts([out.REPORT_HTML, out.REPORT_MD, out.REPORT_PLOTS], "report")
    return f"{path.resolve()} (summary: {out.REPORT_MD})\nMLflow {tracking.run_location(run.info.run_id)}"


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline report [--params params.yaml]`."""
    return run_stage("report", __doc__, params_path, argv, _run)
