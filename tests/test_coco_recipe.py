"""The COCO panoptic recipe in params: input.mapper / min_size_train / max_size_train, train.lr_scheduler /
steps / gamma, the paper_coco_panoptic_* presets, and every preset of params.yaml validating."""

from pathlib import Path

import pytest
import torch
import yaml
from torchvision import tv_tensors

from pipeline.params import ParamsError, load_params
from pipeline.stages.train import train_transforms

PARAMS = Path(__file__).parents[1] / "params.yaml"
COCO_SIZES = [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800]


def _with_preset(tmp_path: Path, preset: str):
    text = PARAMS.read_text().replace("preset: null", f"preset: {preset}")
    (tmp_path / "params.yaml").write_text(text)
    return load_params(tmp_path / "params.yaml")


def _load(tmp_path: Path, text: str):
    (tmp_path / "params.yaml").write_text(text)
    return load_params(tmp_path / "params.yaml")


def test_every_preset_of_params_yaml_validates(tmp_path):
    presets = yaml.safe_load(PARAMS.read_text())["presets"]
    assert {"paper_coco_panoptic_r50", "paper_coco_panoptic_r101", "paper_coco_panoptic_swin_t",
            "paper_coco_panoptic_swin_s"} <= set(presets)
    for name in presets:
        params = _with_preset(tmp_path, name)
        assert params.preset == name
        if name.startswith(("paper_", "released_")):  # the dense mask loss, not the CPU default's points
            assert params.model.num_points == 0, name


def test_defaults_keep_the_semantic_mapper_and_poly():
    params = load_params(PARAMS)
    assert (params.input.mapper, params.input.min_size_train, params.input.max_size_train) == (
        "semantic", COCO_SIZES, 1333)
    assert (params.train.lr_scheduler, params.train.steps, params.train.gamma) == ("poly", [], 0.1)


def test_paper_coco_panoptic_r50_is_the_official_recipe(tmp_path):
    p = _with_preset(tmp_path, "paper_coco_panoptic_r50")
    assert (p.data.dataset, p.input.task, p.input.mapper, p.input.min_size_train, p.input.max_size_train) == (
        "coco_panoptic", "panoptic", "detr_panoptic", COCO_SIZES, 1333)
    m = p.model
    assert (m.backbone, m.weights, m.backbone_norm, m.pixel_decoder, m.encoder_layers) == (
        "resnet50", "imagenet_v1", "frozen_bn", "transformer_encoder", 6)
    assert (m.transformer_in_feature, m.conv_dim, m.mask_dim, m.num_queries, m.hidden_dim, m.dec_layers) == (
        "res5", 256, 256, 100, 256, 6)
    assert (m.object_mask_threshold, m.overlap_threshold, m.dropout) == (0.8, 0.8, 0.1)
    t = p.train
    assert (t.max_iters, t.batch_size, t.lr, t.weight_decay, t.backbone_multiplier, t.clip_grad_norm) == (
        554400, 64, 1e-4, 1e-4, 0.1, 0.01)
    assert (t.lr_scheduler, t.steps, t.gamma, t.warmup_iters, t.warmup_factor) == (
        "multistep", [369600], 0.1, 10, 1.0)
    e = p.evaluate
    assert (e.test_size, e.max_size, e.size_divisibility, e.scales, e.flip, e.amp) == (
        800, 1333, 1, (1.0,), False, False)


@pytest.mark.parametrize(("preset", "expected"), [
    ("paper_coco_panoptic_r101", {"model.backbone": "resnet101", "model.pixel_decoder": "transformer_encoder",
                                  "train.steps": [369600], "input.mapper": "detr_panoptic"}),
    ("paper_coco_panoptic_swin_t", {"model.backbone": "swin_t", "model.pixel_decoder": "fpn",
                                    "model.enforce_input_proj": True, "model.drop_path_rate": 0.3,
                                    "train.lr": 6e-5, "train.weight_decay": 0.01, "train.warmup_iters": 1500,
                                    "train.warmup_factor": 1e-6, "train.backbone_multiplier": 1.0,
                                    "train.lr_scheduler": "multistep", "evaluate.test_size": 800}),
    ("paper_coco_panoptic_swin_s", {"model.backbone": "swin_s", "model.pixel_decoder": "fpn",
                                    "train.lr": 6e-5}),
])
def test_coco_presets_extend_the_r50_recipe(tmp_path, preset, expected):
    params = _with_preset(tmp_path, preset)
    for dotted, value in expected.items():
        section, key = dotted.split(".")
        assert getattr(getattr(params, section), key) == value, dotted
    train = params.train
    assert (train.max_iters, train.batch_size, params.data.dataset) == (554400, 64, "coco_panoptic")


@pytest.mark.parametrize(("text", "message"), [
    ("input: {min_size_train: []}", "input.min_size_train: List should have at least 1 item"),
    ("input: {min_size_train: [480, 0]}", "input.min_size_train=[480, 0]: every size must be a positive"),
    ("input: {min_size_train: [480.5]}", "input.min_size_train.0: "),
    ("input: {mapper: detr}", "input.mapper: Input should be 'semantic' or 'detr_panoptic'"),
    ("input: {max_size_train: 0}", "input.max_size_train: "),
    ("train: {lr_scheduler: multistep, max_iters: 100, steps: [50, 200]}",
     "train.steps: [50, 200]: must increase"),
    ("train: {lr_scheduler: multistep}", "train.steps: []: lr_scheduler multistep needs at least one step"),
    ("train: {steps: [10]}", "train.steps: [10]: only lr_scheduler multistep uses steps"),
])
def test_bad_keys_are_named(tmp_path, text, message):
    with pytest.raises(ParamsError) as err:
        _load(tmp_path, text + "\n")
    assert message in str(err.value), str(err.value)


def test_the_train_stage_builds_the_mapper_input_names(tmp_path):
    image = tv_tensors.Image(torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.ones(1, 300, 400, dtype=torch.int32))
    detr = _load(tmp_path, "input: {mapper: detr_panoptic, min_size_train: [64], max_size_train: 200}\n")
    semantic = _load(tmp_path, "input: {crop_size: 96}\n")
    torch.manual_seed(0)
    for _ in range(6):  # both paths of the DETR mapper end at shortest edge 64; the semantic one crops 96
        out_image, out_mask = train_transforms(detr.input)(image, mask)
        assert min(out_image.shape[-2:]) == 64 and out_mask.shape[-2:] == out_image.shape[-2:]
        assert tuple(train_transforms(semantic.input)(image, mask)[0].shape[-2:]) == (96, 96)
