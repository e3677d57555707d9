"""Hugging Face transformers' MaskFormerForInstanceSegmentation (config.json + weights) -> this library.

No transformers import: config.json is read as JSON, model.safetensors by a small reader of that format
(8-byte little-endian header length, JSON header, raw little-endian tensors), pytorch_model.bin by
torch.load(weights_only=True). `hf_to_ours` renames transformers' modules to ours; a query/key/value
projection maps to its third of our fused in-projection, written "name[i]" (i = 0, 1, 2 for q, k, v).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskformer.config import MaskFormerConfig
from maskformer.convert import apply_rules, build_checked

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_QKV = {"q": 0, "k": 1, "v": 2, "query": 0, "key": 1, "value": 2}


def _res(tail: Any) -> Any:
    """encoder.stages.<i>.layers.<j>.<rest> -> our res<i+2>.<j>.<tail(match)> (stage 0 is res2)."""
    return lambda m: f"backbone.res{int(m[1]) + 2}.{m[2]}.{tail(m)}"


def _swin_block(m: re.Match) -> str:
    """encoder.layers.<i>.blocks.<j>.<HF module> -> torchvision's features.<2i+1>.<j>.<ours>."""
    rest = apply_rules(_SWIN_BLOCK, m[3])
    if rest is None:
        raise ValueError(f"unknown transformers Swin block parameter {m[0]!r}")
    return f"backbone.features.{2 * int(m[1]) + 1}.{m[2]}.{rest}"


def _decoder_layer(m: re.Match) -> str:
    """decoder.layers.<n>.<HF module> -> our transformer_decoder.layers.<n>.<ours>."""
    rest = apply_rules(_DETR_LAYER, m[2])
    if rest is None:
        raise ValueError(f"unknown transformers decoder parameter {m[0]!r}")
    return f"predictor.transformer_decoder.layers.{m[1]}.{rest}"


def _fpn(kind: str) -> Any:
    """fpn.layers.<i> (0 = res4, the top-down order) -> our lateral / output convs [2 - i] (0 = res2)."""
    return lambda m: f"pixel_decoder.{kind}.{2 - int(m[1])}.{m[2]}"


_SWIN_BLOCK = [
    (r"layernorm_(before|after)\.(.+)", lambda m: f"norm{1 if m[1] == 'before' else 2}.{m[2]}"),
    (r"attention\.self\.relative_position_bias_table", "attn.relative_position_bias_table"),
    (r"attention\.self\.(query|key|value)\.(weight|bias)", lambda m: f"attn.qkv.{m[2]}[{_QKV[m[1]]}]"),
    (r"attention\.output\.dense\.(.+)", r"attn.proj.\1"),
    (r"intermediate\.dense\.(.+)", r"mlp.0.\1"),
    (r"output\.dense\.(.+)", r"mlp.3.\1"),
]
_DETR_LAYER = [  # current names (o_proj, mlp.fc1) and the ones save_pretrained writes (out_proj, fc1)
    (r"(self_attn|encoder_attn)\.(q|k|v)_proj\.(weight|bias)",
     lambda m: f"{'self' if m[1] == 'self_attn' else 'cross'}_attn.in_proj_{m[3]}[{_QKV[m[2]]}]"),
    (r"(self_attn|encoder_attn)\.(?:o|out)_proj\.(.+)",
     lambda m: f"{'self' if m[1] == 'self_attn' else 'cross'}_attn.out_proj.{m[2]}"),
    (r"self_attn_layer_norm\.(.+)", r"norm1.\1"),
    (r"encoder_attn_layer_norm\.(.+)", r"norm2.\1"),
    (r"final_layer_norm\.(.+)", r"norm3.\1"),
    (r"(?:mlp\.)?fc(\d)\.(.+)", r"ffn.linear\1.\2"),
]
_ENC, _SWIN = r"model\.pixel_level_module\.encoder\.", r"model\.pixel_level_module\.encoder\.model\."
_PD, _TM = r"model\.pixel_level_module\.decoder\.", r"model\.transformer_module\."
_RES = _ENC + r"encoder\.stages\.(\d)\.layers\.(\d+)\."
_RULES = [  # (transformers name pattern, ours); the first match wins
    (_ENC + r"embedder\.embedder\.convolution\.weight", "backbone.stem.0.weight"),
    (_ENC + r"embedder\.embedder\.normalization\.(.+)", r"backbone.stem.1.\1"),
    (_RES + r"layer\.(\d)\.convolution\.weight", _res(lambda m: f"conv{int(m[3]) + 1}.weight")),
    (_RES + r"layer\.(\d)\.normalization\.(.+)", _res(lambda m: f"bn{int(m[3]) + 1}.{m[4]}")),
    (_RES + r"shortcut\.convolution\.(weight)", _res(lambda m: f"downsample.0.{m[3]}")),
    (_RES + r"shortcut\.normalization\.(.+)", _res(lambda m: f"downsample.1.{m[3]}")),
    (_SWIN + r"embeddings\.patch_embeddings\.projection\.(.+)", r"backbone.features.0.0.\1"),
    (_SWIN + r"embeddings\.norm\.(.+)", r"backbone.features.0.2.\1"),
    (_SWIN + r"encoder\.layers\.(\d)\.blocks\.(\d+)\.(.+)", _swin_block),
    (_SWIN + r"encoder\.layers\.(\d)\.downsample\.(.+)",
     lambda m: f"backbone.features.{2 * int(m[1]) + 2}.{m[2]}"),
    (_ENC + r"hidden_states_norms\.(\d)\.(.+)", r"backbone.norms.\1.\2"),
    (_PD + r"fpn\.stem\.(.+)", r"pixel_decoder.top_conv.\1"),
    (_PD + r"fpn\.layers\.(\d)\.proj\.(.+)", _fpn("lateral_convs")),
    (_PD + r"fpn\.layers\.(\d)\.block\.(.+)", _fpn("output_convs")),
    (_PD + r"mask_projection\.(.+)", r"pixel_decoder.mask_features.\1"),
    (_TM + r"queries_embedder\.weight", "predictor.query_embed.weight"),
    (_TM + r"input_projection\.(.+)", r"predictor.input_proj.\1"),
    (_TM + r"decoder\.layers\.(\d+)\.(.+)", _decoder_layer),
    (_TM + r"decoder\.layernorm\.(.+)", r"predictor.transformer_decoder.norm.\1"),
    (r"class_predictor\.(.+)", r"predictor.class_embed.\1"),
    (r"mask_embedder\.(\d)\.0\.(.+)", r"predictor.mask_embed.layers.\1.\2"),
]
# derived buffers our model rebuilds, and the Swin classifier's final LayerNorm that MaskFormer never runs
SKIPPED = re.compile(r"^(criterion\.empty_weight|.*\.num_batches_tracked|.*\.relative_position_index"
                     r"|model\.pixel_level_module\.encoder\.model\.layernorm\.(weight|bias))$")
RESNET_DEPTHS = {((2, 2, 2, 2), "basic"): "resnet18", ((3, 4, 6, 3), "basic"): "resnet34",
                 ((3, 4, 6, 3), "bottleneck"): "resnet50", ((3, 4, 23, 3), "bottleneck"): "resnet101"}
SWIN_SHAPES = {(96, (2, 2, 6, 2), (3, 6, 12, 24)): "swin_t", (96, (2, 2, 18, 2), (3, 6, 12, 24)): "swin_s",
               (128, (2, 2, 18, 2), (4, 8, 16, 32)): "swin_b"}
# what torchvision's ResNet / Swin fix and transformers' configs may change: (field, the value ours has)
_FIXED = {"resnet": {"downsample_in_first_stage": False, "downsample_in_bottleneck": False,
                     "hidden_act": "relu", "num_channels": 3},
          "swin": {"patch_size": 4, "window_size": 7, "mlp_ratio": 4.0, "qkv_bias": True,
                   "hidden_act": "gelu", "use_absolute_embeddings": False, "layer_norm_eps": 1e-5,
                   "num_channels": 3},
          "detr": {"activation_function": "relu"}}


def hf_to_ours(name: str) -> str:
    """Our parameter name for a transformers MaskFormer one ("name[i]": a third of a fused q/k/v tensor)."""
    renamed = apply_rules(_RULES, name)
    if renamed is None:
        raise ValueError(f"unknown transformers MaskFormer parameter {name!r}")
    return renamed


def _check_fixed(section: dict, kind: str) -> None:
    """A ValueError naming each setting of a sub-config that our (torchvision) modules cannot reproduce."""
    wrong = {k: section[k] for k, v in _FIXED[kind].items() if k in section and section[k] != v}
    if wrong:
        raise ValueError(f"{kind} settings {wrong} are not supported (ours: "
                         f"{ {k: _FIXED[kind][k] for k in wrong} })")


def _backbone_fields(bb: dict) -> dict[str, Any]:
    """MaskFormerConfig backbone fields of transformers' backbone_config (ResNet or MaskFormer-Swin)."""
    kind = bb.get("model_type")
    if kind == "resnet":
        _check_fixed(bb, "resnet")
        depths, layer = tuple(bb.get("depths", (3, 4, 6, 3))), bb.get("layer_type", "bottleneck")
        width = bb.get("embedding_size", 64)
        expansion = 4 if layer == "bottleneck" else 1
        sizes = list(bb.get("hidden_sizes", (256, 512, 1024, 2048)))
        if (depths, layer) not in RESNET_DEPTHS or sizes != [width * expansion * 2**i for i in range(4)]:
            raise ValueError(f"ResNet depths={list(depths)} layer_type={layer!r} hidden_sizes={sizes} "
                             f"embedding_size={width}: not a (width-scaled) resnet18/34/50/101")
        return {"backbone": RESNET_DEPTHS[depths, layer], "backbone_width": width}
    if kind in ("swin", "maskformer-swin"):
        _check_fixed(bb, "swin")
        shape = (bb.get("embed_dim", 96), tuple(bb.get("depths", (2, 2, 6, 2))),
                 tuple(bb.get("num_heads", (3, 6, 12, 24))))
        if shape not in SWIN_SHAPES:
            raise ValueError(f"Swin embed_dim, depths, num_heads {shape}: none of swin_t/s/b")
        return {"backbone": SWIN_SHAPES[shape], "drop_path_rate": bb.get("drop_path_rate", 0.1)}
    raise ValueError(f"backbone model_type {kind!r}: only resnet and (maskformer-)swin are supported")


def config_from_hf(config_json: dict, **overrides: Any) -> MaskFormerConfig:
    """Our MaskFormerConfig of a transformers MaskFormer config.json (a ValueError names what we lack)."""
    if config_json.get("model_type") != "maskformer":
        raise ValueError(f"model_type {config_json.get('model_type')!r}, not 'maskformer'")
    dec = config_json.get("decoder_config") or {}
    if dec.get("model_type", "detr") != "detr":
        raise ValueError(f"decoder model_type {dec.get('model_type')!r}: only detr is supported")
    _check_fixed(dec, "detr")
    num_labels = config_json.get("num_labels") or len(config_json.get("id2label") or {})
    if not num_labels:
        raise ValueError("neither num_labels nor id2label: the class count is unknown")
    fields: dict[str, Any] = {
        **_backbone_fields(config_json.get("backbone_config") or {"model_type": "swin"}),
        "weights": None, "backbone_norm": "frozen_bn", "architecture": "maskformer", "pixel_decoder": "fpn",
        "num_classes": num_labels, "conv_dim": config_json.get("fpn_feature_size", 256),
        "mask_dim": config_json.get("mask_feature_size", 256), "hidden_dim": dec.get("d_model", 256),
        "nheads": dec.get("decoder_attention_heads", 8), "dim_feedforward": dec.get("decoder_ffn_dim", 2048),
        "dec_layers": dec.get("decoder_layers", 6), "num_queries": dec.get("num_queries", 100),
        "dropout": dec.get("dropout", 0.1), "no_object_weight": config_json.get("no_object_weight", 0.1),
        "class_weight": config_json.get("cross_entropy_weight", 1.0),
        "mask_weight": config_json.get("mask_weight", 20.0),
        "dice_weight": config_json.get("dice_weight", 1.0),
        "deep_supervision": config_json.get("use_auxiliary_loss", False),
    }
    return MaskFormerConfig.from_dict({**fields, **overrides})


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """name -> tensor of a .safetensors file (data only; a malformed header is a ValueError naming it)."""
    data = Path(path).read_bytes()
    try:
        (size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + size])
        out = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            start, end = entry["data_offsets"]
            raw = bytearray(data[8 + size + start:8 + size + end])
            out[name] = torch.frombuffer(raw, dtype=_DTYPES[entry["dtype"]]).reshape(entry["shape"]) \
                if raw else torch.zeros(entry["shape"], dtype=_DTYPES[entry["dtype"]])
    except (struct.error, ValueError, KeyError, TypeError, RuntimeError) as error:  # ValueError: bad JSON
        raise ValueError(f"{path}: not a safetensors file ({type(error).__name__}: {error})") from None
    return out


def hf_files(path: str | Path) -> tuple[Path, Path]:
    """(config.json, weights file) of a transformers model folder, its config.json or its weights file."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    if not config.is_file():
        raise ValueError(f"{config}: no such file (a transformers model folder holds config.json)")
    weights = path if path.is_file() and path.suffix in (".safetensors", ".bin") else next(
        (folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    if weights is None:
        raise ValueError(f"{folder}: neither model.safetensors nor pytorch_model.bin")
    return config, weights


def from_hf_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict of a transformers one: names mapped, q/k/v thirds fused, derived buffers dropped."""
    ours: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[int, torch.Tensor]] = {}
    for name, value in state.items():
        if SKIPPED.match(name):
            continue
        renamed = hf_to_ours(name)
        fused = re.fullmatch(r"(.+)\[(\d)\]", renamed)
        if fused:
            parts.setdefault(fused[1], {})[int(fused[2])] = value
        else:
            ours[renamed] = value
    for name, thirds in parts.items():
        if sorted(thirds) != [0, 1, 2]:
            raise ValueError(f"{name}: q/k/v projections {sorted(thirds)} of [0, 1, 2] present")
        ours[name] = torch.cat([thirds[i] for i in range(3)])
    return ours


def load_hf(path: str | Path, **overrides: Any) -> tuple[MaskFormerConfig, dict[str, torch.Tensor]]:
    """(our config, our state dict) of a transformers MaskFormer folder or one of its files."""
    config_path, weights = hf_files(path)
    try:
        config_json = json.loads(config_path.read_text())
        cfg = config_from_hf(config_json, **overrides)
    except (ValueError, AttributeError) as error:  # AttributeError: a JSON that is not an object
        raise ValueError(f"{config_path}: {error}") from None
    if weights.suffix == ".bin":
        state = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        state = read_safetensors(weights)
    try:
        return cfg, from_hf_state(state)
    except ValueError as error:
        raise ValueError(f"{weights}: {error}") from None


def build_from_hf(path: str | Path, **overrides: Any) -> nn.Module:
    """Our model holding a transformers MaskFormer's weights: every name and shape checked."""
    cfg, ours = load_hf(path, **overrides)
    try:
        return build_checked(cfg, ours)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
