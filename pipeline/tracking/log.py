"""What stages log into the execution's MLflow run: data set, step metrics, metric files, artifacts."""

from __future__ import annotations

import csv
import json
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from maskformer.data.layout import CanonicalLayout
from pipeline.outputs import metric_values, processed_dir
from pipeline.params import Params
from pipeline.tracking.identity import data_hash

METRIC_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def log_dataset(params: Params) -> None:
    """Log the processed data set (its manifest's split table) as the run's input, tagged with its hash."""
    manifest_path = CanonicalLayout(processed_dir(params.data)).manifest
    if not manifest_path.exists():
        return
    manifest = json.loads(manifest_path.read_text())
    rows = [{"split": split, **{k: v for k, v in info.items() if not isinstance(v, list)}}
            for split, info in manifest["splits"].items()]
    digest = data_hash(params) or ""
    with warnings.catch_warnings():  # MLflow's hints about ambiguous local sources and int columns
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(pd.DataFrame(rows), source=str(manifest_path.parent.resolve()),
                                          name=params.data.dataset, digest=digest.split(":")[-1][:36])
        mlflow.log_input(dataset, context="training",
                         tags={"data_hash": digest, "num_classes": str(manifest["num_classes"])})


def log_step_metrics(step: int, metrics: dict[str, float]) -> None:
    """Log one training step's metrics under the names of metrics/train_log.csv."""
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)


def log_metrics_file(path: str | Path) -> dict[str, float]:
    """Log a metrics JSON's values as metrics under their `<section>/<key>` names (sem_seg/mIoU); its
    top-level text (a note) as tags."""
    content = json.loads(Path(path).read_text())
    metrics = {k: float(v) for k, v in metric_values(content).items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    mlflow.log_metrics(metrics)
    mlflow.set_tags({f"{Path(path).stem}/{k}": v for k, v in content.items() if isinstance(v, str)})
    return metrics


def log_tags(tags: dict[str, str]) -> None:
    """Tags of the execution's run (e.g. where the model's weights came from)."""
    mlflow.set_tags(tags)


def log_train_log(path: str | Path) -> None:
    """Log every row of a train_log.csv as per-step metrics (for a run whose train stage DVC skipped)."""
    with Path(path).open(newline="") as f:
        log_train_rows(list(csv.DictReader(f)))


def log_train_rows(rows: list[dict[str, Any]]) -> None:
    """Log rows of a train log (`step` and metric columns, as text or numbers) in batches."""
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(row["step"])) for row in rows for k, v in row.items()
               if k != "step" and v]
    run_id = mlflow.active_run().info.run_id
    for i in range(0, len(metrics), METRIC_BATCH):
        MlflowClient().log_batch(run_id, metrics=metrics[i:i + METRIC_BATCH])


def log_artifacts(paths: Iterable[str | Path], artifact_path: str | None = None) -> None:
    """Log existing files and folders (missing ones are skipped: an optional output)."""
    for path in map(Path, paths):
        if path.is_dir():
            mlflow.log_artifacts(str(path), f"{artifact_path}/{path.name}" if artifact_path else path.name)
        elif path.is_file():
            mlflow.log_artifact(str(path), artifact_path)


def run_location(run_id: str) -> str:
    """Where to look at a run: its URL on a server, or the sqlite file and the `mlflow ui` command."""
    uri, run = mlflow.get_tracking_uri(), MlflowClient().get_run(run_id)
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
    return f"run {run_id} in {uri} (view: mlflow ui --backend-store-uri {uri} --host 127.0.0.1)"

