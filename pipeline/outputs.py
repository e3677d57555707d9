"""Every path that dvc.yaml names, the training run's resume folder and the run name: one place.

dvc.yaml spells the same paths (a test checks that the two agree); stages, the flow, the report and the
tracking import them from here. Paths are relative to the workspace, where every stage runs; what parallel
runs share (archives, resume state) sits in the project root above a run's workspace in .dvc/tmp/.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.params import DataParams, Params
from pipeline.project import project_root  # here too: what parallel runs share sits there


class MissingInputError(FileNotFoundError):
    """A stage's input that an earlier stage writes is not there; the message names it and the stage."""


PARAMS = Path("params.yaml")  # what dvc.yaml's stages read

RAW_DATA = Path("data/raw")  # <dataset>/: what the download stage writes (one DVC out for every dataset)
PROCESSED_DATA = Path("data/processed")  # <dataset>/: the canonical layout, one DVC out
DOWNLOADS = Path("data/downloads")  # <dataset>/: archives as fetched (project root, shared; no DVC out)

MODEL = Path("models/model.pt")  # the final checkpoint: weights, config, classes, resolved params
CHECKPOINT_ROOT = Path("models/checkpoints")  # resume state of unfinished runs (project root; not a DVC out)
TRAIN_LOG = Path("metrics/train_log.csv")

PREDICTIONS = Path("predictions")  # every prediction, in the standard formats (the report reads them)

SEMANTIC_METRICS = Path("metrics/semantic.json")
SEMANTIC_PER_CLASS = Path("metrics/semantic_per_class.csv")
SEMANTIC_CONFUSION = Path("metrics/semantic_confusion.csv")
SEMANTIC_PREDICTIONS = PREDICTIONS / "semantic"  # <stem>.png: class index per pixel

INSTANCE_METRICS = Path("metrics/instance.json")
AP_PER_CLASS = Path("metrics/instance_per_class.csv")
PQ_PER_CLASS = Path("metrics/panoptic_per_class.csv")
INSTANCE_RESULTS = PREDICTIONS / "instances_val_results.json"  # COCO results, RLE
PANOPTIC_JSON = PREDICTIONS / "panoptic_val.json"  # COCO panoptic
PANOPTIC_PREDICTIONS = PREDICTIONS / "panoptic"  # <stem>.png, COCO panoptic colour code

# the headline keys of the metrics files, in the order people read them (detectron2's names, percent)
SEMANTIC_HEADLINE = ("mIoU", "fwIoU", "mACC", "pACC")
SEGM_HEADLINE = ("AP", "AP50", "AP75", "APs", "APm", "APl")
PANOPTIC_HEADLINE = ("PQ", "SQ", "RQ")
METRICS_FILES = (SEMANTIC_METRICS, INSTANCE_METRICS)  # what the evaluation stages conclude, in that order

RUN_WORKSPACES = Path(".dvc/tmp/runs")  # <run name>/: a flow run's git worktree (DVC ignores .dvc/tmp)
COMPARISONS = Path("comparisons")  # <name>.html/.md: MaskFormer vs the per-pixel baseline (no DVC out)
SWEEPS = Path("sweeps")  # <sweep>.png: a sweep's headline metric per swept key (no DVC out: sweeps add up)

REPORTS = Path("reports")
REPORT_HTML = REPORTS / "report.html"
REPORT_MD = REPORTS / "report.md"
REPORT_PLOTS = REPORTS / "plots"


def metric_values(content: dict[str, Any]) -> dict[str, Any]:
    """A metrics file's section values under their one name, `<section>/<key>` (sem_seg/mIoU,
    panoptic_seg/PQ): MLflow's metric, the flow's table row, the comparison's column. Text (a note) and
    sections that did not run (None) have no values."""
    return {f"{section}/{key}": value for section, values in content.items() if isinstance(values, dict)
            for key, value in values.items()}


def raw_dir(data: DataParams) -> Path:
    """data/raw/<dataset>: the download stage's output (extracted archives or the generated set)."""
    return RAW_DATA / data.dataset


def download_dir(data: DataParams) -> Path:
    """<project>/data/downloads/<dataset>: verified archives as fetched, kept across reruns and shared by
    every run's workspace (not a DVC out)."""
    return project_root() / DOWNLOADS / data.dataset


def processed_dir(data: DataParams) -> Path:
    """data/processed/<dataset>: the canonical layout that training and evaluation read."""
    return PROCESSED_DATA / data.dataset


def _digest(content: object, length: int) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:length]


def params_hash(params: Params) -> str:
    """A short hash of all params: names a run and tells a stale tracking state file from this one's."""
    return _digest(params.model_dump(mode="json"), 8)


def run_key(params: Params) -> str:
    """A short hash of what defines a training run (the data, input, model, train and init sections)."""
    return _digest(params.model_dump(mode="json", include={"data", "input", "model", "train", "init"}), 12)


def checkpoint_dir(params: Params) -> Path:
    """<project>/models/checkpoints/<run key>: a killed run resumes here, from whichever workspace the
    next run with the same params uses; changed params start a fresh folder."""
    return project_root() / CHECKPOINT_ROOT / run_key(params)


def lock_file(folder: Path) -> Path:
    """`<folder>.lock`, beside the folder it guards (so removing the folder keeps the lock)."""
    return folder.with_name(folder.name + ".lock")


def resume_log(params: Params) -> Path:
    """The train log that grows in the checkpoint folder while training runs (read for progress)."""
    return checkpoint_dir(params) / "train_log.csv"


def run_name(params: Params, unique: str = "") -> str:
    """`<dataset>-<backbone>-<params hash>[-<unique>]`: the Prefect flow run and its MLflow run."""
    stem = f"{params.data.dataset}-{params.model.backbone}-{params_hash(params)}"
    return f"{stem}-{unique}" if unique else stem
