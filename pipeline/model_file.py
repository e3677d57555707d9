"""The model file (models/model.pt and imported ones): weights, config, classes, params, read as data."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import torch
from torch import nn

from maskformer import MaskFormerConfig, build_model


def read_model(source: str | Path | BinaryIO, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """The model (eval mode) and its record, loaded with weights_only: a pickle naming code is refused.
    A record whose category list and class count disagree is a ValueError naming the source."""
    record = torch.load(source, map_location="cpu", weights_only=True)
    config = MaskFormerConfig.from_dict({**record["config"], "weights": None})  # the state dict holds them
    if len(record["categories"]) != config.num_classes:
        raise ValueError(f"{source}: {len(record['categories'])} categories but a model of "
                         f"{config.num_classes} classes")
    model = build_model(config)
    model.load_state_dict(record["model"])
    return model.to(device).eval(), record
