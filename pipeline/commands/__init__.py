"""Commands that are not DVC stages (run the flow, serve the deployment, compare runs): each is a
module `pipeline.commands.<name>` with `main(params_path, argv)`."""

COMMANDS: dict[str, str] = {
    "run": "run the whole pipeline (dvc.yaml) as a Prefect flow; --set key=value overrides params",
    "serve": "serve the pipeline as a Prefect deployment (typed parameter form in the UI, one run at a time)",
    "demo": "a 15-second smoke test: a tiny MaskFormer overfits two generated images (no data)",
    "compare": "a table of all MLflow runs of an experiment (differing params, headline metrics)",
}
