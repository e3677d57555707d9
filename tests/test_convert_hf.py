"""transformers' MaskFormer (config.json + safetensors / .bin) imported without transformers, equal logits."""

import json

import pytest
import torch

from maskformer.convert_hf import build_from_hf, config_from_hf, hf_to_ours, read_safetensors
from pipeline.__main__ import main as cli
from pipeline.commands.import_weights import categories
from pipeline.model_file import read_model

transformers = pytest.importorskip("transformers")
TOLERANCE = 1e-4

KNOWN = {  # transformers' names (as save_pretrained writes them) -> ours
    "model.pixel_level_module.encoder.embedder.embedder.convolution.weight": "backbone.stem.0.weight",
    "model.pixel_level_module.encoder.encoder.stages.2.layers.5.layer.2.normalization.running_var":
        "backbone.res4.5.bn3.running_var",
    "model.pixel_level_module.encoder.encoder.stages.0.layers.0.shortcut.convolution.weight":
        "backbone.res2.0.downsample.0.weight",
    "model.pixel_level_module.encoder.model.encoder.layers.2.blocks.3.attention.self.key.bias":
        "backbone.features.5.3.attn.qkv.bias[1]",
    "model.pixel_level_module.encoder.model.encoder.layers.0.blocks.1.output.dense.weight":
        "backbone.features.1.1.mlp.3.weight",
    "model.pixel_level_module.encoder.model.encoder.layers.1.downsample.reduction.weight":
        "backbone.features.4.reduction.weight",
    "model.pixel_level_module.encoder.hidden_states_norms.3.bias": "backbone.norms.3.bias",
    "model.pixel_level_module.decoder.fpn.stem.1.weight": "pixel_decoder.top_conv.1.weight",
    "model.pixel_level_module.decoder.fpn.layers.0.proj.0.weight": "pixel_decoder.lateral_convs.2.0.weight",
    "model.pixel_level_module.decoder.fpn.layers.2.block.1.bias": "pixel_decoder.output_convs.0.1.bias",
    "model.pixel_level_module.decoder.mask_projection.weight": "pixel_decoder.mask_features.weight",
    "model.transformer_module.decoder.layers.1.encoder_attn.v_proj.weight":
        "predictor.transformer_decoder.layers.1.cross_attn.in_proj_weight[2]",
    "model.transformer_module.decoder.layers.0.self_attn.out_proj.bias":
        "predictor.transformer_decoder.layers.0.self_attn.out_proj.bias",
    "model.transformer_module.decoder.layers.0.self_attn.o_proj.bias":
        "predictor.transformer_decoder.layers.0.self_attn.out_proj.bias",
    "model.transformer_module.decoder.layers.3.fc1.weight":
        "predictor.transformer_decoder.layers.3.ffn.linear1.weight",
    "model.transformer_module.decoder.layers.3.mlp.fc2.bias":
        "predictor.transformer_decoder.layers.3.ffn.linear2.bias",
    "model.transformer_module.decoder.layers.2.final_layer_norm.weight":
        "predictor.transformer_decoder.layers.2.norm3.weight",
    "model.transformer_module.decoder.layernorm.bias": "predictor.transformer_decoder.norm.bias",
    "model.transformer_module.queries_embedder.weight": "predictor.query_embed.weight",
    "class_predictor.weight": "predictor.class_embed.weight",
    "mask_embedder.2.0.bias": "predictor.mask_embed.layers.2.bias",
}


def test_transformers_names_map_to_ours():
    assert {name: hf_to_ours(name) for name in KNOWN} == KNOWN
    with pytest.raises(ValueError, match="unknown transformers MaskFormer parameter 'model.head.weight'"):
        hf_to_ours("model.head.weight")


def _hf_model(backbone: str, dec_layers: int) -> torch.nn.Module:
    """transformers' MaskFormer, tiny heads, every weight and BN statistic random (nothing left at 0 / 1)."""
    from transformers import (
        MaskFormerConfig,
        MaskFormerForInstanceSegmentation,
        MaskFormerSwinConfig,
        ResNetConfig,
    )

    stages = {"out_features": ["stage1", "stage2", "stage3", "stage4"]}
    if backbone == "resnet50":  # R50's depths at a quarter of its width
        bb = ResNetConfig(depths=[3, 4, 6, 3], hidden_sizes=[64, 128, 256, 512], embedding_size=16, **stages)
    elif backbone == "resnet18":
        bb = ResNetConfig(depths=[2, 2, 2, 2], hidden_sizes=[16, 32, 64, 128], embedding_size=16,
                          layer_type="basic", **stages)
    else:  # Swin-T: ours is torchvision's, which fixes the shape
        bb = MaskFormerSwinConfig(**stages)
    decoder = {"model_type": "detr", "d_model": 64, "decoder_layers": dec_layers, "decoder_ffn_dim": 96,
               "decoder_attention_heads": 4, "num_queries": 7}
    config = MaskFormerConfig(backbone_config=bb, num_labels=11, fpn_feature_size=64, mask_feature_size=32,
                              decoder_config=decoder, id2label={i: f"thing{i}" for i in range(11)})
    torch.manual_seed(dec_layers)
    model = MaskFormerForInstanceSegmentation(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.1 if p.dim() == 1 else 0.02))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) + 0.5)
    return model


# 256 px for Swin: every stage is larger than its 7x7 window (smaller maps: test_swin_differs_...)
CONFIGS = {"r50-2dec": ("resnet50", 2, 64), "r18-1dec": ("resnet18", 1, 64),
           "swin_t-3dec": ("swin_t", 3, 256)}
_SAVED: dict[str, tuple] = {}


def _saved(key: str, tmp_path_factory) -> tuple:
    """(transformers model, its save_pretrained folder, an image batch, its class and mask logits), once."""
    if key not in _SAVED:
        backbone, dec_layers, size = CONFIGS[key]
        model = _hf_model(backbone, dec_layers)
        folder = tmp_path_factory.mktemp(key)
        model.save_pretrained(folder)
        images = torch.randn(1, 3, size, size)
        with torch.no_grad():
            out = model(pixel_values=images)
        _SAVED[key] = model, folder, images, out.class_queries_logits, out.masks_queries_logits
    return _SAVED[key]


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def saved(request, tmp_path_factory):
    return _saved(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def r50(tmp_path_factory):
    return _saved("r50-2dec", tmp_path_factory)


def _diffs(ours: torch.nn.Module, saved: tuple) -> tuple[float, float]:
    """Max abs differences of our class and mask logits from transformers' on the saved image (fp32)."""
    _, _, images, logits, masks = saved
    with torch.no_grad():
        out = ours.eval()(images)
    assert out["pred_logits"].shape == logits.shape and out["pred_masks"].shape == masks.shape
    return (out["pred_logits"] - logits).abs().max().item(), (out["pred_masks"] - masks).abs().max().item()


def test_imported_model_gives_transformers_logits(saved):
    ours = build_from_hf(saved[1])
    diffs = _diffs(ours, saved)
    print(f"{ours.config.backbone} dec_layers={ours.config.dec_layers}: max abs diff class, mask {diffs}")
    assert max(diffs) < TOLERANCE and saved[4].std() > 0.5  # non-trivial mask logits


def test_swin_differs_where_a_stage_fits_one_window(tmp_path_factory):
    """torchvision skips the shifted window on a map no larger than the window; transformers (and the
    official Swin) shift it: at 64 px, Swin's stride-32 map is 2x2, and the outputs part."""
    hf_model, folder, *_ = _saved("swin_t-3dec", tmp_path_factory)
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        theirs = hf_model(pixel_values=images).masks_queries_logits
        ours = build_from_hf(folder).eval()(images)["pred_masks"]
    assert (ours - theirs).abs().max() > TOLERANCE


def test_config_is_read_from_config_json(saved):
    folder = saved[1]
    config = json.loads((folder / "config.json").read_text())
    cfg = config_from_hf(config)
    assert (cfg.num_classes, cfg.num_queries, cfg.hidden_dim, cfg.nheads, cfg.dim_feedforward) == (
        11, 7, 64, 4, 96)
    assert (cfg.conv_dim, cfg.mask_dim, cfg.no_object_weight, cfg.mask_weight) == (64, 32, 0.1, 20.0)
    assert cfg.backbone_width == (64 if cfg.backbone == "swin_t" else 16)
    with pytest.raises(ValueError, match="window_size"):
        config_from_hf({**config, "backbone_config": {"model_type": "swin", "window_size": 12}})
    with pytest.raises(ValueError, match="none of swin_t/s/b"):
        config_from_hf({**config, "backbone_config": {"model_type": "swin", "embed_dim": 192}})
    with pytest.raises(ValueError, match="not a .width-scaled. resnet18"):
        config_from_hf({**config, "backbone_config": {"model_type": "resnet", "depths": [1, 1, 1, 1]}})


def test_pytorch_model_bin_and_config_json_paths(r50, tmp_path):
    folder = r50[1]
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    torch.save(read_safetensors(folder / "model.safetensors"), tmp_path / "pytorch_model.bin")
    assert max(_diffs(build_from_hf(tmp_path / "config.json"), r50)) < TOLERANCE
    assert max(_diffs(build_from_hf(folder / "model.safetensors"), r50)) < TOLERANCE


def test_bad_folders_are_named(r50, tmp_path):
    folder = r50[1]
    with pytest.raises(ValueError, match=r"config.json: no such file"):
        build_from_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "detr"}))
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"config.json: model_type 'detr', not 'maskformer'"):
        build_from_hf(tmp_path)
    state = read_safetensors(folder / "model.safetensors")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    torch.save({**state, "model.extra.weight": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match="model.bin: unknown transformers MaskFormer parameter .model.extra"):
        build_from_hf(tmp_path / "pytorch_model.bin")
    missing = {k: v for k, v in state.items() if not k.startswith("class_predictor.")}
    torch.save(missing, tmp_path / "pytorch_model.bin")
    with pytest.raises(ValueError, match=r"missing \['predictor.class_embed.bias'"):
        build_from_hf(tmp_path / "pytorch_model.bin")


def test_import_weights_command_reads_a_transformers_folder(r50, tmp_path, monkeypatch, capsys):
    folder = r50[1]
    monkeypatch.chdir(tmp_path)
    assert cli(["import_weights", str(folder), "--out", "x.pt"]) == 0
    assert "11 classes" in capsys.readouterr().out
    loaded, record = read_model(tmp_path / "x.pt")
    assert record["format"] == "transformers" and record["source"] == str(folder)
    assert [c["name"] for c in record["categories"]][:2] == ["thing0", "thing1"]
    assert {c["isthing"] for c in record["categories"]} == {0}  # 11 classes: no data set's list to match
    assert max(_diffs(loaded, r50)) < TOLERANCE
    assert cli(["import_weights", str(tmp_path / "nowhere"), "--out", "y.pt"]) == 2
    assert "nowhere: no such file" in capsys.readouterr().out


def test_id2label_names_take_ids_and_isthing_from_a_data_set_of_that_count():
    ade = categories("ade20k", 150)
    named = categories("ade20k", 150, [f"n{i}" for i in range(150)])
    assert [c["name"] for c in named][:2] == ["n0", "n1"]
    assert [(c["id"], c["isthing"]) for c in named] == [(c["id"], c["isthing"]) for c in ade]
    assert categories(None, 2, ["a", "b"]) == [{"id": 1, "name": "a", "isthing": 0},
                                                {"id": 2, "name": "b", "isthing": 0}]
