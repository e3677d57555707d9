"""Commands beside the stages (run the flow, serve it, sweep, compare, demo): pipeline.commands.<name>."""

COMMANDS: dict[str, str] = {
    "run": "run the whole pipeline (dvc.yaml) as a Prefect flow; --set key=value overrides params",
    "serve": "serve the pipeline as a Prefect deployment (typed parameter form in the UI, one run at a time)",
    "sweep": "a grid of experiments through DVC's queue, N at a time, compared from MLflow with a plot",
    "demo": "a 15-second smoke test: a tiny MaskFormer overfits two generated images (no data)",
    "compare": "a table of all MLflow runs of an experiment (differing params, headline metrics)",
}
