"""The parameters of a pipeline run as a typed form (Prefect UI, API): each field maps to params.yaml keys.

A served deployment fills the form with the values params.yaml holds when it starts serving, so a user sees
what a run would use; an emptied field keeps params.yaml's value."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from maskformer.config import ARCHITECTURES, BACKBONES
from pipeline.data.sources import SOURCES
from pipeline.params import Params

Dataset = Literal[tuple(sorted(SOURCES))]  # type: ignore[valid-type]
Backbone = Literal[BACKBONES]  # type: ignore[valid-type]
Architecture = Literal[ARCHITECTURES]  # type: ignore[valid-type]

# form field -> the params.yaml keys it sets
FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "preset": ("preset",),
    "dataset": ("data.dataset",),
    "max_images_per_split": ("data.max_images_per_split",),
    "architecture": ("model.architecture",),
    "backbone": ("model.backbone",),
    "num_queries": ("model.num_queries",),
    "max_iters": ("train.max_iters",),
    "batch_size": ("train.batch_size",),
    "lr": ("train.lr",),
    "device": ("train.device", "evaluate.device"),
}


class RunSettings(BaseModel):
    """What to change in params.yaml for one run; an empty field keeps the value in params.yaml."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(
        None, description="a named entry of params.yaml's presets, merged over the sections (preset)")
    dataset: Dataset | None = Field(None, description="data set to train and evaluate on (data.dataset)")
    max_images_per_split: int | None = Field(
        None, ge=1, le=10**6, description="at most this many images per split (data.max_images_per_split)")
    architecture: Architecture | None = Field(
        None, description="MaskFormer or the paper's per-pixel baseline (model.architecture)")
    backbone: Backbone | None = Field(None, description="ResNet or Swin backbone (model.backbone)")
    num_queries: int | None = Field(None, ge=1, le=1000, description="object queries (model.num_queries)")
    max_iters: int | None = Field(None, ge=1, le=10**7, description="training iterations (train.max_iters)")
    batch_size: int | None = Field(None, ge=1, le=4096, description="images per iteration (train.batch_size)")
    lr: float | None = Field(None, gt=0, le=1, description="AdamW learning rate (train.lr)")
    device: Literal["auto", "cpu", "cuda"] | None = Field(
        None, description="where to train and evaluate (train.device and evaluate.device)")
    extra: dict[str, Any] = Field(
        default_factory=dict, description='any other params as dotted keys, e.g. {"model.hidden_dim": 128}')

    @classmethod
    def from_params(cls, params: Params) -> RunSettings:
        """The form filled with the values `params` holds (as written, before any preset is merged)."""
        raw = params.model_dump(mode="json")
        values = {}
        for name, keys in FIELD_KEYS.items():
            node: Any = raw
            for part in keys[0].split("."):
                node = node[part]
            values[name] = node
        return cls.model_validate(values)

    def overrides(self) -> dict[str, Any]:
        """The dotted params.yaml keys this run sets (form fields first, then `extra`)."""
        values: dict[str, Any] = {}
        for name, keys in FIELD_KEYS.items():
            value = getattr(self, name)
            if value is not None:
                values.update(dict.fromkeys(keys, value))
        return {**values, **self.extra}
