"""Stage `report`: reports/report.html (self-contained) and reports/report.md for this pipeline execution.

The last stage: it logs the report, its plots and anything that stages skipped by DVC did not log (training
curves, metrics, the model) to the execution's MLflow run, then ends that run FINISHED.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlflow

from pipeline import run_info, tracking
from pipeline.params import Params, load_params
from pipeline.report import build_report, render_html, render_markdown
from pipeline.stages import evaluate_instance as inst
from pipeline.stages import evaluate_semantic as sem
from pipeline.stages.train import MODEL_PATH, TRAIN_LOG, load_trained

REPORT_HTML = Path("reports/report.html")
REPORT_MD = Path("reports/report.md")
PLOTS = Path("reports/plots")


def report(params: Params, run_id: str | None = None) -> Path:
    """Write reports/report.html, reports/report.md and reports/plots/*.png; return the HTML path."""
    title = mlflow.get_run(run_id).info.run_name if run_id else None
    content = build_report(params, run_id, title)
    PLOTS.mkdir(parents=True, exist_ok=True)
    for old in PLOTS.glob("*.png"):
        old.unlink()
    for name, png in content.figures.items():
        (PLOTS / f"{name}.png").write_bytes(png)
    REPORT_HTML.write_text(render_html(content), encoding="utf-8")
    REPORT_MD.write_text(render_markdown(content, REPORT_HTML.name), encoding="utf-8")
    return REPORT_HTML


def _backfill(params: Params) -> None:
    """Log what stages skipped by `dvc repro` (unchanged, so not run) would have logged into this run."""
    run = mlflow.get_run(mlflow.active_run().info.run_id)
    if "loss" not in run.data.metrics and TRAIN_LOG.exists():
        tracking.log_train_log(TRAIN_LOG)
        tracking.log_artifacts([TRAIN_LOG], "metrics")
    for path, tables in ((sem.METRICS, [sem.PER_CLASS, sem.CONFUSION]),
                         (inst.METRICS, [inst.AP_PER_CLASS, inst.PQ_PER_CLASS])):
        names = run_info.flatten(json.loads(path.read_text()), sep="/") if path.exists() else {}
        if names and not set(names) & set(run.data.metrics):
            tracking.log_metrics_file(path)
            tracking.log_artifacts([path, *tables], "metrics")
    if params.tracking.log_model and "model_uri" not in run.data.tags and MODEL_PATH.exists():
        tracking.log_model(load_trained(MODEL_PATH)[0])


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline report [--params params.yaml]`."""
    argparse.ArgumentParser(prog="python -m pipeline report", description=__doc__).parse_args(argv)
    params = load_params(params_path)
    with tracking.stage_run("report", params) as run:
        _backfill(params)
        path = report(params, run.info.run_id)
        tracking.log_artifacts([REPORT_HTML, REPORT_MD, PLOTS], "report")
        location = tracking.run_location(run.info.run_id)
    print(f"report: {path.resolve()} (summary: {REPORT_MD})")
    print(f"report: MLflow {location}")
    return 0
