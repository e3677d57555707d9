"""The experiment pipeline around the `maskformer` library: params, outputs, the stages of dvc.yaml, data,
orchestration (Prefect, DVC), tracking (MLflow), the report and the commands."""
