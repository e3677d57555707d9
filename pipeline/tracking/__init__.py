"""MLflow tracking: the run lifecycle across stage processes, what stages log, and what identifies a run."""

from pipeline.tracking.log import (
    log_artifacts,
    log_dataset,
    log_metrics_file,
    log_step_metrics,
    log_tags,
    log_train_log,
    log_train_rows,
    run_location,
)
from pipeline.tracking.pyfunc import log_model
from pipeline.tracking.run import ENV_TAGS, StageInterrupted, setup, stage_run, tracking_uri

__all__ = [
    "ENV_TAGS",
    "StageInterrupted",
    "log_artifacts",
    "log_dataset",
    "log_metrics_file",
    "log_model",
    "log_step_metrics",
    "log_tags",
    "log_train_log",
    "log_train_rows",
    "run_location",
    "setup",
    "stage_run",
    "tracking_uri",
]
