"""Official detectron2 MaskFormer weights: names mapped, config inferred, only data unpickled."""

import os
import pickle
import re

import numpy as np
import pytest
import torch

from maskformer import build_model, tiny_config
from maskformer.convert import build_from_detectron2, infer_config, load_detectron2_pkl, official_to_ours
from pipeline.__main__ import main as cli
from pipeline.stages.train import load_trained

KNOWN = {  # official module names (facebookresearch/MaskFormer + detectron2) -> ours
    "backbone.stem.conv1.weight": "backbone.stem.0.weight",
    "backbone.stem.conv1.norm.running_mean": "backbone.stem.1.running_mean",
    "backbone.res3.0.shortcut.norm.running_var": "backbone.res3.0.downsample.1.running_var",
    "backbone.res5.2.conv3.norm.weight": "backbone.res5.2.bn3.weight",
    "backbone.res2.1.conv2.weight": "backbone.res2.1.conv2.weight",
    "backbone.patch_embed.proj.weight": "backbone.features.0.0.weight",
    "backbone.patch_embed.norm.bias": "backbone.features.0.2.bias",
    "backbone.layers.2.blocks.5.mlp.fc2.weight": "backbone.features.5.5.mlp.3.weight",
    "backbone.layers.0.blocks.1.attn.relative_position_bias_table":
        "backbone.features.1.1.attn.relative_position_bias_table",
    "backbone.layers.1.downsample.reduction.weight": "backbone.features.4.reduction.weight",
    "backbone.norm3.bias": "backbone.norms.3.bias",
    "sem_seg_head.pixel_decoder.adapter_1.norm.bias": "pixel_decoder.lateral_convs.0.1.bias",
    "sem_seg_head.adapter_3.weight": "pixel_decoder.lateral_convs.2.0.weight",  # a pre-v2 checkpoint
    "sem_seg_head.pixel_decoder.layer_2.norm.weight": "pixel_decoder.output_convs.1.1.weight",
    "sem_seg_head.pixel_decoder.layer_4.weight": "pixel_decoder.top_conv.0.weight",
    "sem_seg_head.pixel_decoder.mask_features.bias": "pixel_decoder.mask_features.bias",
    "sem_seg_head.pixel_decoder.transformer.encoder.layers.5.linear1.weight":
        "pixel_decoder.encoder.layers.5.ffn.linear1.weight",
    "sem_seg_head.predictor.transformer.decoder.layers.5.multihead_attn.in_proj_weight":
        "predictor.transformer_decoder.layers.5.cross_attn.in_proj_weight",
    "sem_seg_head.predictor.transformer.decoder.layers.0.linear2.bias":
        "predictor.transformer_decoder.layers.0.ffn.linear2.bias",
    "sem_seg_head.predictor.transformer.decoder.norm.weight": "predictor.transformer_decoder.norm.weight",
    "sem_seg_head.predictor.query_embed.weight": "predictor.query_embed.weight",
    "sem_seg_head.predictor.mask_embed.layers.2.weight": "predictor.mask_embed.layers.2.weight",
}


@pytest.mark.parametrize(("official", "ours"), sorted(KNOWN.items()))
def test_official_names_map_to_ours(official, ours):
    assert official_to_ours(official) == ours


def _swin_block(m: re.Match) -> str:
    rest = m[3].replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
    return f"backbone.layers.{(int(m[1]) - 1) // 2}.blocks.{m[2]}.{rest}"


def _official(name: str) -> str:
    """Our name -> the official one (this test's inverse of the mapping, written from the official code)."""
    rules = [
        (r"backbone\.stem\.0\.weight", "backbone.stem.conv1.weight"),
        (r"backbone\.stem\.1\.(.+)", r"backbone.stem.conv1.norm.\1"),
        (r"backbone\.(res\d\.\d+)\.bn(\d)\.(.+)", r"backbone.\1.conv\2.norm.\3"),
        (r"backbone\.(res\d\.\d+)\.downsample\.0\.weight", r"backbone.\1.shortcut.weight"),
        (r"backbone\.(res\d\.\d+)\.downsample\.1\.(.+)", r"backbone.\1.shortcut.norm.\2"),
        (r"pixel_decoder\.lateral_convs\.(\d)\.0\.(.+)", lambda m: f"adapter_{int(m[1]) + 1}.{m[2]}"),
        (r"pixel_decoder\.lateral_convs\.(\d)\.1\.(.+)", lambda m: f"adapter_{int(m[1]) + 1}.norm.{m[2]}"),
        (r"pixel_decoder\.output_convs\.(\d)\.0\.(.+)", lambda m: f"layer_{int(m[1]) + 1}.{m[2]}"),
        (r"pixel_decoder\.output_convs\.(\d)\.1\.(.+)", lambda m: f"layer_{int(m[1]) + 1}.norm.{m[2]}"),
        (r"pixel_decoder\.top_conv\.0\.(.+)", r"layer_4.\1"),
        (r"pixel_decoder\.top_conv\.1\.(.+)", r"layer_4.norm.\1"),
        (r"pixel_decoder\.(.+)", r"\1"),
        (r"predictor\.transformer_decoder\.layers\.(\d+)\.cross_attn\.(.+)",
         r"predictor.transformer.decoder.layers.\1.multihead_attn.\2"),
        (r"predictor\.transformer_decoder\.layers\.(\d+)\.ffn\.(.+)",
         r"predictor.transformer.decoder.layers.\1.\2"),
        (r"predictor\.transformer_decoder\.(.+)", r"predictor.transformer.decoder.\1"),
        (r"predictor\.(.+)", r"predictor.\1"),
        (r"backbone\.features\.0\.0\.(.+)", r"backbone.patch_embed.proj.\1"),
        (r"backbone\.features\.0\.2\.(.+)", r"backbone.patch_embed.norm.\1"),
        (r"backbone\.features\.(\d)\.(\d+)\.(.+)", _swin_block),
        (r"backbone\.features\.(\d)\.(.+)",
         lambda m: f"backbone.layers.{int(m[1]) // 2 - 1}.downsample.{m[2]}"),
        (r"backbone\.norms\.(\d)\.(.+)", r"backbone.norm\1.\2"),
        (r"((backbone|criterion)\..+)", r"\1"),
    ]
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, name)
        if match:
            out = replacement(match) if callable(replacement) else match.expand(replacement)
            if name.startswith("pixel_decoder."):
                return f"sem_seg_head.pixel_decoder.{out}"
            return f"sem_seg_head.{out}" if name.startswith("predictor.") else out
    raise AssertionError(name)


def official_pkl(model: torch.nn.Module, path) -> None:
    """Write `model` as the official model zoo does: {"model": {official name: numpy array}} pickled."""
    state = {_official(k): v.numpy() for k, v in model.state_dict().items()}
    state["pixel_mean"] = np.array([123.675, 116.28, 103.53]).reshape(3, 1, 1)
    path.write_bytes(pickle.dumps({"model": state, "__author__": "test"}))


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    """A tiny-headed MaskFormer R50 for ADE20K's 150 classes, written as an official .pkl (built once)."""
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=150, backbone="resnet50", backbone_norm="frozen_bn",
                                    num_queries=7, nheads=8)).eval()
    path = tmp_path_factory.mktemp("zoo") / "model_final.pkl"
    official_pkl(model, path)
    return model, path


def test_official_weights_load_into_the_model_they_came_from(r50):
    model, path = r50
    state = load_detectron2_pkl(path)
    assert state["backbone.res4.5.conv3.norm.running_var"].shape == (1024,)  # a R50 name, as an array
    cfg = infer_config(state)
    assert (cfg.backbone, cfg.num_classes, cfg.num_queries, cfg.hidden_dim, cfg.dec_layers) == (
        "resnet50", 150, 7, 64, 3)
    imported = build_from_detectron2(state).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = model(images), imported(images)
    assert torch.equal(ours["pred_logits"], theirs["pred_logits"])
    assert torch.equal(ours["pred_masks"], theirs["pred_masks"])


def test_swin_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config(num_classes=19, backbone="swin_t", num_queries=5, nheads=8)).eval()
    official_pkl(model, tmp_path / "swin.pkl")
    state = load_detectron2_pkl(tmp_path / "swin.pkl")
    assert "backbone.layers.2.blocks.5.mlp.fc1.weight" in state and "backbone.norm2.weight" in state
    imported = build_from_detectron2(state).eval()
    assert (imported.config.backbone, imported.config.num_classes) == ("swin_t", 19)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(images)["pred_masks"], imported(images)["pred_masks"])


def test_a_pickle_that_names_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"model": {"backbone.stem.conv1.weight": Payload()}}))
    with pytest.raises(ValueError, match=r"evil.pkl: not a detectron2 weights pickle \(refused .*system"):
        load_detectron2_pkl(path)
    assert not marker.exists()
    (tmp_path / "text.pkl").write_bytes(pickle.dumps({"model": {"a": "not an array"}}))
    with pytest.raises(ValueError, match="text.pkl: expected a dict of numpy arrays"):
        load_detectron2_pkl(tmp_path / "text.pkl")


def test_wrong_normalisation_and_unknown_names_are_named(r50):
    _, path = r50
    state = load_detectron2_pkl(path)
    with pytest.raises(ValueError, match=r"pixel_mean=\[1.0, 2.0, 3.0\]"):
        build_from_detectron2({**state, "pixel_mean": np.array([1.0, 2.0, 3.0])})
    with pytest.raises(ValueError, match="unknown official parameter 'sem_seg_head.extra.weight'"):
        build_from_detectron2({**state, "sem_seg_head.extra.weight": np.zeros(1)})


def test_import_weights_command_writes_a_pipeline_model_file(r50, tmp_path, monkeypatch, capsys):
    model, path = r50
    monkeypatch.chdir(tmp_path)
    assert cli(["import_weights", str(path), "--out", "models/imported.pt"]) == 0
    assert "maskformer resnet50, 150 classes (ade20k)" in capsys.readouterr().out
    loaded, record = load_trained(tmp_path / "models" / "imported.pt")
    assert record["categories"][0]["name"] == "wall" and len(record["categories"]) == 150  # ADE20K's list
    assert record["params"]["input"]["task"] == "semantic"  # what evaluate_instance reads
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(images)["pred_masks"], model(images)["pred_masks"])
    assert cli(["import_weights", "missing.pkl"]) == 2
    assert "missing.pkl: no such file" in capsys.readouterr().out
