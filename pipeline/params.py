"""The only reader of params.yaml: pydantic models that validate every section and name bad keys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from maskformer.config import MaskFormerConfig
from maskformer.engine.config import TrainConfig
from maskformer.evaluation.config import InferenceConfig
from pipeline.data.sources import SOURCES
from pipeline.data.sources._custom import CustomParams
from pipeline.data.sources.synthetic import SyntheticParams


class ParamsError(ValueError):
    """A params file that cannot be read or does not validate; the message names file and dotted key."""


class _Section(BaseModel):
    """Base of every section: unknown keys are an error, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")


class SourceParams(_Section):
    """Per-source settings: URL overrides (mirror or local archive path) and a local folder/archive."""

    urls: dict[str, str] = Field(default_factory=dict, description="archive file name -> URL or local path")
    checksums: dict[str, str | None] = Field(
        default_factory=dict, description="archive file name -> 'algo:hex' (repacked mirror); null = unknown"
    )
    local_path: str | None = Field(None, description="a folder or archive the user already has")


class DownloadParams(_Section):
    """HTTP behaviour of the download stage."""

    retries: int = Field(5, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    chunk_bytes: int = Field(1 << 20, gt=0)


class DataParams(_Section):
    """The `data:` section: which source to use and how to download and preprocess it (where the data
    lives is fixed by pipeline.outputs, as dvc.yaml names it: no preset can move it behind DVC's back)."""

    dataset: str = "synthetic"
    seed: int = 0
    num_workers: int = Field(2, ge=0)
    skip_bad_files: bool = False
    max_images_per_split: int | None = Field(None, gt=0)
    check_image_counts: bool = Field(
        True, description="a real source must have the official image count per split (a partial copy is an "
        "error); false for a subset you made on purpose"
    )
    synthetic: SyntheticParams = Field(default_factory=SyntheticParams)
    custom: CustomParams = Field(default_factory=CustomParams)
    sources: dict[str, SourceParams] = Field(default_factory=dict)
    download: DownloadParams = Field(default_factory=DownloadParams)

    # keys that change how the data is obtained, not what it is: no stage depends on them (dvc.yaml)
    RUNTIME_KEYS: ClassVar[tuple[str, ...]] = ("num_workers", "download")

    def data_dump(self) -> dict[str, Any]:
        """The keys that define the data (what the manifest records)."""
        return self.model_dump(mode="json", exclude=set(self.RUNTIME_KEYS))

    def source(self, name: str | None = None) -> SourceParams:
        """Settings of one source (the chosen dataset by default); empty settings when not given."""
        return self.sources.get(name or self.dataset, SourceParams())


class InputParams(_Section):
    """The `input:` section: what training sees of each image (detectron2's INPUT: targets, crop, colour)."""

    task: Literal["panoptic", "semantic"] = Field(
        "panoptic",
        description="panoptic: stuff per class + things per instance; semantic: one mask per class",
    )
    crop_size: int | tuple[int, int] = Field(
        128, description="random-crop size of training images: a side, or [height, width] (Cityscapes)"
    )
    min_scale: float = Field(0.5, gt=0, description="smallest training resize, shortest edge x crop side")
    max_scale: float = Field(2.0, gt=0, description="largest training resize, shortest edge x crop side")
    color_aug_ssd: bool = Field(True, description="the official ColorAugSSD colour augmentation in training")
    mapper: Literal["semantic", "detr_panoptic"] = Field(
        "semantic", description="semantic: the official mapper (crop_size, min/max_scale, color_aug_ssd); "
        "detr_panoptic: DETR's COCO panoptic mapper (min_size_train, max_size_train)",
    )
    min_size_train: list[int] = Field(
        default_factory=lambda: list(range(480, 801, 32)), min_length=1,
        description="detr_panoptic: shortest-edge sizes drawn from (INPUT.MIN_SIZE_TRAIN)",
    )
    max_size_train: int = Field(1333, ge=32,
                                description="detr_panoptic: longest edge at most (INPUT.MAX_SIZE_TRAIN)")

    @model_validator(mode="after")
    def _scale_order(self) -> InputParams:
        sides = self.crop_size if isinstance(self.crop_size, tuple) else (self.crop_size,)
        if min(sides) < 32:
            raise ValueError(f"input.crop_size={self.crop_size}: every side must be >= 32")
        if self.min_scale > self.max_scale:
            raise ValueError(f"input.min_scale={self.min_scale} must be <= input.max_scale={self.max_scale}")
        if any(size < 1 for size in self.min_size_train):
            raise ValueError(f"input.min_size_train={self.min_size_train}: every size must be a positive int")
        return self


# The library's dataclasses are the one definition of the model, train and evaluate fields; pydantic adds
# type checks and key-naming errors on top of their own validation (unknown fields, impossible values).
_Strict = ConfigDict(extra="forbid")
ModelConfig = pydantic.dataclasses.dataclass(MaskFormerConfig, config=_Strict, frozen=True)
TrainParams = pydantic.dataclasses.dataclass(TrainConfig, config=_Strict)


@pydantic.dataclasses.dataclass(config=_Strict, frozen=True)
class EvaluateParams(InferenceConfig):
    """The `evaluate:` section: the library's InferenceConfig (test sizes, TTA) and where to run it."""

    device: Literal["auto", "cpu", "cuda"] = "auto"


class InitParams(_Section):
    """The `init:` section: start from a model file's weights (a released checkpoint, import_weights' output)
    instead of training from model.weights alone; or evaluate it as it is."""

    model_file: str | None = Field(None, description="a model file (relative: to the project root) whose "
                                   "weights start training; a class head of another class count restarts")
    train: bool = Field(True, description="false: no training, the model file is the pipeline's model")

    @model_validator(mode="after")
    def _needs_a_file(self) -> InitParams:
        if not self.train and self.model_file is None:
            raise ValueError("init.train: false needs init.model_file (the model to evaluate)")
        return self


class ReportParams(_Section):
    """The `report:` section: how much the HTML/Markdown report shows."""

    num_samples: int = Field(4, ge=0, le=32,
                             description="validation images drawn as instance overlays (+ most-overlapping)")
    max_runs: int = Field(20, ge=1, description="earlier runs of the experiment in the comparison table")
    dpi: int = Field(90, ge=30, le=300, description="resolution of the embedded plots")
    paper: dict[str, float] = Field(default_factory=dict, description="metric (e.g. sem_seg/mIoU) -> the "
                                    "paper's number, shown beside this run's")


class TrackingParams(_Section):
    """The `tracking:` section: where MLflow runs go (env MLFLOW_TRACKING_URI overrides `uri`)."""

    uri: str | None = Field(None, description="null: sqlite:///<project root>/mlflow.db; or a server URL")
    experiment: str = Field("maskformer", min_length=1, description="MLflow experiment name")
    log_model: bool = Field(True, description="log the trained model as an MLflow pyfunc model")
    register_as: str | None = Field(None, min_length=1,
                                    description="also register it as a new version of this registered model")
    alias: str | None = Field("champion", min_length=1,
                              description="alias the registered version takes (moved from the previous one)")


class Params(_Section):
    """All of params.yaml."""

    preset: str | None = Field(None, description="name of an entry of `presets` merged over the sections")
    presets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    data: DataParams = Field(default_factory=DataParams)
    input: InputParams = Field(default_factory=InputParams)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainParams = Field(default_factory=TrainParams)
    init: InitParams = Field(default_factory=InitParams)
    evaluate: EvaluateParams = Field(default_factory=EvaluateParams)
    report: ReportParams = Field(default_factory=ReportParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)

    @model_validator(mode="before")
    @classmethod
    def _fixed_by_the_pipeline(cls, raw: Any) -> Any:
        """The class count comes from the data set's manifest and the checkpoint folder from the run key."""
        fixed = {("model", "num_classes"): "is taken from the data set",
                 ("train", "checkpoint_dir"): "is fixed by the pipeline (models/checkpoints/<run key>)"}
        for (section, key), why in fixed.items():
            if isinstance(raw, dict) and isinstance(raw.get(section), dict) and key in raw[section]:
                raise ValueError(f"{section}.{key} {why}; remove it")
        return raw


def _format_errors(path: Path, err: ValidationError) -> str:
    """One line per problem: 'file: dotted.key: message'."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        # the library dataclasses name their field as `TrainConfig.max_iters=...`: use the dotted key
        if match := re.match(r"\w+(?:Config|Spec)\.(\w+)", msg):
            key = f"{key}.{match.group(1)}"
            msg = msg[match.end() :].lstrip("=")
        lines.append(f"{path}: {key}: {msg}")
    return "\n".join(lines)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raises ParamsError naming the file and key on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"{path}: cannot read params: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: the top level must be a mapping")
    raw = apply_preset(path, raw)
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_format_errors(path, exc)) from None
    _check_sources(path, params.data)
    return params


def _merge(base: dict, override: dict) -> dict:
    """Nested dict update: override's leaves win."""
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def apply_preset(path: Path, raw: dict) -> dict:
    """Merge `presets[preset]` over the file's sections (a preset is a named set of section values; one
    may name a `base` preset it extends, whose values it overrides)."""
    name = raw.get("preset")
    if name is None:
        return raw
    return _merge(raw, resolve_preset(path, raw.get("presets") or {}, name))


def resolve_preset(path: Path, presets: dict, name: str, chain: tuple[str, ...] = ()) -> dict:
    """A preset's section values with its `base` chain merged under them."""
    if name not in presets:
        where = f"presets.{chain[-1]}.base" if chain else "preset"
        raise ParamsError(f"{path}: {where}: unknown preset {name!r} (known: {', '.join(sorted(presets))})")
    if name in chain:
        raise ParamsError(f"{path}: presets: base cycle {' -> '.join((*chain, name))}")
    values = dict(presets[name])
    base = values.pop("base", None)
    return _merge(resolve_preset(path, presets, base, (*chain, name)), values) if base else values


def _check_sources(path: Path, data: DataParams) -> None:
    """The dataset and the keys of data.sources must be registered sources."""
    known = ", ".join(sorted(SOURCES))
    if data.dataset not in SOURCES:
        raise ParamsError(f"{path}: data.dataset: unknown source {data.dataset!r} (known: {known})")
    for name in data.sources:
        if name not in SOURCES:
            raise ParamsError(f"{path}: data.sources.{name}: unknown source (known: {known})")
