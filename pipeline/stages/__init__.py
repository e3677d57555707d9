"""The stages of dvc.yaml: one plain function each, run from the command line by the shared runner."""

STAGES: dict[str, str] = {
    "download": "fetch, verify and extract the chosen data source (or generate the synthetic set)",
    "preprocess": "convert the downloaded source into the canonical layout under data/processed/",
    "train": "train MaskFormer (or the per-pixel baseline) on the processed data; resumes from checkpoints",
    "evaluate_semantic": "mIoU/fwIoU/mACC/pACC of the trained model on the validation split",
    "evaluate_instance": "COCO mask AP and panoptic PQ of the trained model on the validation split",
    "report": "HTML + Markdown report (metrics, plots, overlays, earlier runs), logged with the MLflow run",
}
