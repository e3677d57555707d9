"""Commands beside the stages (run the flow, serve it, sweep, compare, demo): pipeline.commands.<name>."""

COMMANDS: dict[str, str] = {
    "run": "the pipeline as a Prefect flow in its own workspace, saved as a DVC experiment; --set, --apply",
    "serve": "serve the pipeline and the sweep as Prefect deployments (typed forms in the UI, --limit N)",
    "sweep": "a grid of experiments through DVC's queue, N at a time, compared from MLflow with a plot",
    "compare_architectures": "MaskFormer vs the per-pixel baseline, trained alike, on the same images",
    "demo": "a 15-second smoke test: a tiny MaskFormer overfits two generated images (no data)",
    "compare": "a table of all MLflow runs of an experiment (differing params, headline metrics)",
    "import_weights": "released weights (detectron2 .pkl or a transformers folder) -> a model file",
    "predict": "a trained model on new images: semantic/panoptic PNGs, COCO JSON, overlays",
}
