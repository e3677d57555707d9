"""Released detectron2 MaskFormer weights (the official model zoo's model_final_*.pkl) -> this library.

`load_detectron2_pkl` reads the pickle without running code: only numpy arrays, numpy scalars and plain
containers are accepted (anything else a pickle could name, e.g. os.system, is refused). `from_detectron2`
renames the official module names to ours and infers the MaskFormerConfig from the weights' shapes.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maskformer.config import MaskFormerConfig
from maskformer.model import build_model

_ALLOWED = {  # what numpy arrays pickle as, and nothing else
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)  # detectron2's PIXEL_MEAN of every official config
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


class _DataOnly(pickle.Unpickler):
    """An unpickler that resolves only numpy array reconstruction and ordered dicts."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused {module}.{name}: a weights file holds only arrays")
        return super().find_class(module, name)


def load_detectron2_pkl(path: str | Path) -> dict[str, np.ndarray]:
    """The `model` state (name -> array) of a detectron2 .pkl, refusing anything but data."""
    path = Path(path)
    try:
        content = _DataOnly(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not a detectron2 weights pickle ({error})") from None
    state = content.get("model", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        kind = type(content).__name__
        raise ValueError(f"{path}: expected a dict of numpy arrays (under 'model'), got {kind}")
    return state


def _swin_block(m: re.Match) -> str:
    """layers.<i>.blocks.<j>.<rest> -> torchvision's features.<2i+1>.<j> (MLP fc1/fc2 are mlp.0/mlp.3)."""
    rest = m[3].replace("mlp.fc1.", "mlp.0.").replace("mlp.fc2.", "mlp.3.")
    return f"backbone.features.{2 * int(m[1]) + 1}.{m[2]}.{rest}"


def _fpn(kind: str, conv_or_norm: int):
    """adapter_<i> / layer_<i> (res2 = 1) -> our lateral_convs / output_convs[i - 1], conv 0 or norm 1."""
    return lambda m: f"pixel_decoder.{kind}.{int(m[1]) - 1}.{conv_or_norm}.{m[2]}"


_PD, _DEC = r"sem_seg_head\.pixel_decoder\.", r"sem_seg_head\.predictor\.transformer\.decoder\."
_RULES = [  # (official name pattern, ours); applied in order, the first match wins
    (r"backbone\.stem\.conv1\.norm\.(.+)", r"backbone.stem.1.\1"),
    (r"backbone\.stem\.conv1\.weight", r"backbone.stem.0.weight"),
    (r"backbone\.(res\d)\.(\d+)\.conv(\d)\.norm\.(.+)", r"backbone.\1.\2.bn\3.\4"),
    (r"backbone\.(res\d)\.(\d+)\.conv(\d)\.weight", r"backbone.\1.\2.conv\3.weight"),
    (r"backbone\.(res\d)\.(\d+)\.shortcut\.norm\.(.+)", r"backbone.\1.\2.downsample.1.\3"),
    (r"backbone\.(res\d)\.(\d+)\.shortcut\.weight", r"backbone.\1.\2.downsample.0.weight"),
    (r"backbone\.patch_embed\.proj\.(.+)", r"backbone.features.0.0.\1"),
    (r"backbone\.patch_embed\.norm\.(.+)", r"backbone.features.0.2.\1"),
    (r"backbone\.layers\.(\d)\.blocks\.(\d+)\.(.+)", _swin_block),
    (r"backbone\.layers\.(\d)\.downsample\.(.+)", lambda m: f"backbone.features.{2 * int(m[1]) + 2}.{m[2]}"),
    (r"backbone\.norm(\d)\.(.+)", r"backbone.norms.\1.\2"),
    (_PD + r"adapter_(\d)\.norm\.(.+)", _fpn("lateral_convs", 1)),
    (_PD + r"adapter_(\d)\.(weight)", _fpn("lateral_convs", 0)),
    (_PD + r"layer_4\.norm\.(.+)", r"pixel_decoder.top_conv.1.\1"),
    (_PD + r"layer_4\.weight", r"pixel_decoder.top_conv.0.weight"),
    (_PD + r"layer_(\d)\.norm\.(.+)", _fpn("output_convs", 1)),
    (_PD + r"layer_(\d)\.(weight)", _fpn("output_convs", 0)),
    (_PD + r"transformer\.encoder\.layers\.(\d+)\.linear(\d)\.(.+)",
     r"pixel_decoder.encoder.layers.\1.ffn.linear\2.\3"),
    (_PD + r"transformer\.encoder\.(.+)", r"pixel_decoder.encoder.\1"),
    (_PD + r"(mask_features|input_proj)\.(.+)", r"pixel_decoder.\1.\2"),
    (_DEC + r"layers\.(\d+)\.multihead_attn\.(.+)", r"predictor.transformer_decoder.layers.\1.cross_attn.\2"),
    (_DEC + r"layers\.(\d+)\.linear(\d)\.(.+)", r"predictor.transformer_decoder.layers.\1.ffn.linear\2.\3"),
    (_DEC + r"(.+)", r"predictor.transformer_decoder.\1"),
    (r"sem_seg_head\.predictor\.(.+)", r"predictor.\1"),
]
_SKIPPED = re.compile(r"^(pixel_mean|pixel_std|criterion\..*|.*relative_position_index|.*attn_mask)$")


def apply_rules(rules: list, name: str) -> str | None:
    """The replacement of the first (pattern, replacement) rule whose pattern matches all of `name`."""
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, name)
        if match:
            return replacement(match) if callable(replacement) else match.expand(replacement)
    return None


def official_to_ours(name: str) -> str:
    """Our parameter name for an official detectron2 MaskFormer one (a ValueError names an unknown one)."""
    full = name
    if name.startswith("sem_seg_head.") and not name.startswith(("sem_seg_head.predictor.",
                                                                 "sem_seg_head.pixel_decoder.")):
        full = name.replace("sem_seg_head.", "sem_seg_head.pixel_decoder.", 1)  # pre-v2 checkpoints
    renamed = apply_rules(_RULES, full)
    if renamed is None:
        raise ValueError(f"unknown official parameter {name!r}")
    return renamed


def _count(keys: list[str], pattern: str) -> int:
    """How many distinct indices the first group of `pattern` takes over `keys`."""
    return len({m[1] for k in keys if (m := re.fullmatch(pattern, k))})


def infer_config(state: dict[str, np.ndarray], **overrides: Any) -> MaskFormerConfig:
    """The MaskFormerConfig the official weights fit, read from their names and shapes (nheads, dropout
    and inference thresholds are not in the weights: the official 8, 0.1, 0.8/0.8 unless overridden)."""
    keys = list(state)
    fields: dict[str, Any] = {"weights": None, "backbone_norm": "frozen_bn"}
    if "backbone.patch_embed.proj.weight" in state:
        dim = state["backbone.patch_embed.proj.weight"].shape[0]
        deep = _count(keys, r"backbone\.layers\.2\.blocks\.(\d+)\..+") == 18
        fields["backbone"] = {96: "swin_s" if deep else "swin_t", 128: "swin_b"}.get(dim)
    else:
        blocks = _count(keys, r"backbone\.res4\.(\d+)\..+")
        bottleneck = any(".conv3." in k for k in keys if k.startswith("backbone.res2."))
        fields["backbone"] = {(6, True): "resnet50", (23, True): "resnet101", (6, False): "resnet34",
                              (2, False): "resnet18"}.get((blocks, bottleneck))
    if fields["backbone"] is None:
        raise ValueError("the weights' backbone is none of resnet18/34/50/101, swin_t/s/b")
    head = "sem_seg_head.predictor."
    fields["mask_dim"] = state["sem_seg_head.pixel_decoder.mask_features.weight"].shape[0]
    fields["conv_dim"] = state["sem_seg_head.pixel_decoder.layer_4.weight"].shape[0]
    encoder = _count(keys, r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\..+")
    fields["pixel_decoder"] = "transformer_encoder" if encoder else "fpn"
    fields["encoder_layers"] = encoder or 6
    if f"{head}weight" in state:  # the per-pixel baseline's 1x1 classifier
        fields.update(architecture="per_pixel_baseline", num_classes=state[f"{head}weight"].shape[0])
    else:
        queries, hidden = state[f"{head}query_embed.weight"].shape
        fields.update(architecture="maskformer", num_classes=state[f"{head}class_embed.weight"].shape[0] - 1,
                      num_queries=queries, hidden_dim=hidden,
                      dec_layers=_count(keys, rf"{re.escape(head)}transformer\.decoder\.layers\.(\d+)\..+"),
                      dim_feedforward=state[f"{head}transformer.decoder.layers.0.linear1.weight"].shape[0],
                      enforce_input_proj=f"{head}input_proj.weight" in state
                      and state[f"{head}input_proj.weight"].shape[1] == hidden)
    return MaskFormerConfig.from_dict({**fields, **overrides})


def from_detectron2(state: dict[str, np.ndarray], **overrides: Any) -> tuple[MaskFormerConfig, dict]:
    """(config, our state dict) of official weights; the input normalisation must be ImageNet's."""
    for name, expected in (("pixel_mean", IMAGENET_MEAN_255), ("pixel_std", IMAGENET_STD_255)):
        if name in state and not np.allclose(state[name].ravel(), expected, atol=1e-3):
            got = state[name].ravel().tolist()
            raise ValueError(f"{name}={got}: this library normalises with {expected}")
    cfg = infer_config(state, **overrides)
    ours = {official_to_ours(k): torch.from_numpy(np.array(v)) for k, v in state.items()
            if not _SKIPPED.match(k)}
    return cfg, ours


_DERIVED = ("relative_position_index", "num_batches_tracked", "empty_weight")  # buffers the model makes


def build_from_detectron2(state: dict[str, np.ndarray], **overrides: Any) -> nn.Module:
    """Our model holding the official weights: every parameter filled, every name and shape checked."""
    return build_checked(*from_detectron2(state, **overrides))


def build_checked(cfg: MaskFormerConfig, ours: dict[str, torch.Tensor]) -> nn.Module:
    """build_model(cfg) filled with `ours`: unexpected, missing (but derived) and misshapen names named."""
    model = build_model(cfg)
    expected = model.state_dict()
    unexpected = sorted(set(ours) - set(expected))
    missing = sorted(k for k in set(expected) - set(ours) if not k.endswith(_DERIVED))
    if unexpected or missing:
        raise ValueError(f"weights do not fit {cfg.architecture} {cfg.backbone}: unexpected "
                         f"{unexpected[:5]}, missing {missing[:5]}")
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in ours.items()
             if v.shape != expected[k].shape]
    if wrong:
        raise ValueError(f"weights do not fit the inferred config: {wrong[:5]}")
    model.load_state_dict({**expected, **ours})
    return model
