"""The comparison of runs: one pandas row per MLflow run of an experiment, from mlflow.search_runs."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.params import Params

HEADLINE = ("sem_seg/mIoU", "sem_seg/pACC", "panoptic_seg/PQ", "segm/AP", "loss")
SHOWN_PARAMS = ("data.dataset", "model.architecture", "model.backbone", "train.max_iters")


def runs_table(params: Params, experiment: str | None = None, max_runs: int | None = None) -> pd.DataFrame:
    """Runs of the experiment, newest first: name, status, start, the key params and those that differ
    between runs, the headline metrics (final loss as logged last). Empty when the experiment is new."""
    mlflow.set_tracking_uri(tracking.tracking_uri(params))
    found = MlflowClient().get_experiment_by_name(experiment or params.tracking.experiment)
    if found is None:
        return pd.DataFrame()
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=max_runs or 100_000)
    if runs.empty:
        return runs
    named = {"run_id": "run_id", "tags.mlflow.runName": "run", "status": "status", "start_time": "start"}
    varying = [c for c in runs if c.startswith("params.") and runs[c].astype(str).nunique() > 1]
    wanted = [*named, *(f"params.{p}" for p in SHOWN_PARAMS), *varying, *(f"metrics.{m}" for m in HEADLINE)]
    table = runs[[c for c in dict.fromkeys(wanted) if c in runs]].rename(columns=named)
    table["start"] = pd.to_datetime(table["start"]).dt.strftime("%Y-%m-%d %H:%M")
    table = table.rename(columns=lambda c: c.removeprefix("params.").removeprefix("metrics."))
    return table.reset_index(drop=True)
