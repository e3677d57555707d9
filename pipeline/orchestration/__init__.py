"""Running the stages: the Prefect flow read from dvc.yaml, its deployment form, DVC's CLI, overrides."""
