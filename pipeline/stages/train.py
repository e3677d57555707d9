"""Stage `train`: train MaskFormer (or the per-pixel baseline) on the canonical data; write models/model.pt.

Resume state lives in <project>/models/checkpoints/<run key>/ (a folder DVC does not cache, shared by every
run's workspace), keyed by the params that define the run, so a killed run resumes with the same params and
a changed param starts fresh; two runs of the same params at once take turns on it (a file lock).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torchvision.transforms import v2

from maskformer import build_model
from maskformer.data import (
    CanonicalDataset,
    CanonicalLayout,
    build_detr_train_transforms,
    build_train_transforms,
    collate_fn,
)
from maskformer.engine import atomic_save, is_main_process, list_checkpoints, seed_everything, train
from maskformer.finetune import load_pretrained
from pipeline import outputs as out
from pipeline.locks import exclusive
from pipeline.model_file import read_model
from pipeline.outputs import MODEL, TRAIN_LOG, MissingInputError, checkpoint_dir, processed_dir, resume_log
from pipeline.params import InputParams, Params
from pipeline.project import project_root
from pipeline.stages.runner import run_stage

log = logging.getLogger(__name__)


class TrainLog:
    """Per-step metrics as CSV in the checkpoint folder; on resume, rows past the checkpoint are dropped."""

    def __init__(self, path: Path, resume_iteration: int) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            with path.open(newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_iteration]

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        self.rows.append({"step": step, **metrics})
        names = list(dict.fromkeys(k for row in self.rows for k in row))
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)


def train_model(params: Params, callback: Callable[[int, dict[str, float]], None] | None = None,
                on_resume: Callable[[list[dict[str, Any]]], None] | None = None) -> Path:
    """Train from params (resuming if a checkpoint of the same run exists) and write models/model.pt.

    `callback` gets every logged step's metrics; on a resume, `on_resume` first gets the log rows up to
    the checkpoint, so a tracker that starts with the resumed process still holds the whole curve."""
    layout = CanonicalLayout(processed_dir(params.data))
    if not layout.manifest.exists():
        raise MissingInputError(f"{layout.manifest} not found: run `python -m pipeline preprocess` first")
    transforms = train_transforms(params.input)
    dataset = CanonicalDataset(layout.root, "train", task=params.input.task, transforms=transforms)
    checkpoints = checkpoint_dir(params)
    waiting = f"train: another run trains these params into {checkpoints}: waiting for it to end"
    with exclusive(out.lock_file(checkpoints), waiting) if os.environ.get("RANK", "0") == "0" \
            else contextlib.nullcontext():  # under torchrun rank 0 holds it for all
        return _train(params, dataset, checkpoints, callback, on_resume)


def _train(params: Params, dataset: CanonicalDataset, checkpoints: Path,
           callback: Callable[[int, dict[str, float]], None] | None,
           on_resume: Callable[[list[dict[str, Any]]], None] | None) -> Path:
    cfg = params.model.replace(num_classes=dataset.num_classes)
    seed_everything(params.train.seed)  # reproducible initial weights
    model = build_model(cfg.replace(weights=None) if params.init.model_file else cfg)
    init = start_from(params.init.model_file, model) if params.init.model_file else None
    if init is not None and not params.init.train:
        if init["reinitialised"]:
            raise ValueError(f"init.train: false: {init['model_file']} has another class count than the "
                             f"data ({dataset.num_classes}): fine-tune it (init.train: true) or use its data")
        return _write_model(model, cfg, dataset, params, 0, init, "step\n")
    checkpoints.mkdir(parents=True, exist_ok=True)
    saved = list_checkpoints(checkpoints)  # (iteration, path): the name tells, no need to load the file
    if saved:
        log.info("resuming from iteration %d (%s)", saved[-1][0], saved[-1][1])
    train_log = TrainLog(resume_log(params), saved[-1][0] if saved else 0)
    if train_log.rows and on_resume is not None:
        on_resume(train_log.rows)

    def on_step(step: int, metrics: dict[str, float]) -> None:
        train_log(step, metrics)
        if callback is not None:
            callback(step, metrics)

    engine = dataclasses.replace(params.train, checkpoint_dir=str(checkpoints))
    model = train(model, dataset, engine, collate_fn, callback=on_step)
    if not is_main_process():  # under torchrun only rank 0 writes
        return MODEL
    log_text = train_log.path.read_text() if train_log.path.exists() else "step\n"
    _write_model(model, cfg, dataset, params, engine.max_iters, init, log_text)
    shutil.rmtree(checkpoints)  # the run is complete: its resume state would only pile up on disk
    return MODEL


def _write_model(model: torch.nn.Module, cfg: Any, dataset: CanonicalDataset, params: Params, iteration: int,
                 init: dict | None, log_text: str) -> Path:
    """models/model.pt (weights, config, classes, params, where the weights started) and the train log."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = {"model": state, "config": cfg.to_dict(), "categories": dataset.categories,
              "iteration": iteration, "params": params.model_dump(mode="json"), "init": init}
    atomic_save(record, MODEL)
    TRAIN_LOG.parent.mkdir(parents=True, exist_ok=True)
    TRAIN_LOG.write_text(log_text)
    return MODEL


def start_from(model_file: str, model: torch.nn.Module) -> dict:
    """Load init.model_file's weights into `model`; returns what the record and the run say about it
    (file, sha256, format, source, re-initialised tensors). Errors name the key and the file."""
    path = Path(model_file) if Path(model_file).is_absolute() else project_root() / model_file
    if not path.is_file():
        raise MissingInputError(f"init.model_file: {path}: no such model file (make one with "
                                "`python -m pipeline import_weights`)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        reinitialised = load_pretrained(model, record["model"])
    except Exception as exc:  # noqa: BLE001 - a foreign pickle, another architecture: say which file
        raise ValueError(f"init.model_file: {path}: {type(exc).__name__}: {exc}") from None
    if reinitialised:
        log.warning("init.model_file %s: %d classes, the data has %d: re-initialised %s", path,
                    len(record.get("categories", [])), model.num_classes, ", ".join(reinitialised))
    return {"model_file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "format": record.get("format", "this project"), "source": record.get("source", str(path)),
            "reinitialised": reinitialised}


def train_transforms(input_params: InputParams) -> v2.Compose:
    """The training mapper `input.mapper` names: the official semantic one or DETR's COCO panoptic one."""
    if input_params.mapper == "detr_panoptic":
        return build_detr_train_transforms(input_params.min_size_train, input_params.max_size_train)
    return build_train_transforms(input_params.crop_size, (input_params.min_scale, input_params.max_scale),
                                  input_params.color_aug_ssd)


def load_trained(path: Path = MODEL, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The trained model (eval mode) and its checkpoint record (config, categories, params)."""
    if not path.exists():
        raise MissingInputError(f"{path} not found: run `python -m pipeline train` first")
    return read_model(path, device)


def _run(params: Params, run: Any) -> str:
    from pipeline import tracking  # here: importing the stage stays free of MLflow

    tracked = run is not None  # under torchrun only rank 0 tracks
    path = train_model(params, callback=tracking.log_step_metrics if tracked else None,
                       on_resume=tracking.log_train_rows if tracked else None)
    if tracked:
        init = torch.load(path, map_location="cpu", weights_only=True)["init"]
        if init is not None:  # where the weights came from, in the run's tags
            tracking.log_tags({f"init/{k}": v if isinstance(v, str) else ",".join(v) for k, v in init.items()}
                              | {"init/trained": str(params.init.train).lower()})
        if params.tracking.log_model:
            tracking.log_model(path, params)
        tracking.log_artifacts([TRAIN_LOG], "metrics")
    return f"wrote {path}"


def main(params_path: str, argv: list[str]) -> int:
    """CLI entry: `python -m pipeline train [--params params.yaml]`."""
    from maskformer.engine import TrainingInterruptedError

    return run_stage("train", __doc__, params_path, argv, _run, interrupted=(TrainingInterruptedError,))
