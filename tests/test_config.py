"""MaskFormerConfig: paper defaults, unknown keys and impossible values rejected."""

import pytest

from maskformer import MaskFormerConfig


def test_defaults_are_the_official_ade20k_r50_config():
    cfg = MaskFormerConfig()
    assert (cfg.backbone, cfg.num_classes, cfg.num_queries, cfg.hidden_dim) == ("resnet50", 150, 100, 256)
    assert (cfg.nheads, cfg.dim_feedforward, cfg.dec_layers, cfg.dropout) == (8, 2048, 6, 0.1)
    assert (cfg.conv_dim, cfg.mask_dim, cfg.pre_norm, cfg.deep_supervision) == (256, 256, False, True)
    assert (cfg.no_object_weight, cfg.mask_weight, cfg.dice_weight, cfg.class_weight) == (0.1, 20.0, 1.0, 1.0)
    assert (cfg.object_mask_threshold, cfg.overlap_threshold) == (0.8, 0.8)


def test_unknown_field_is_an_error_naming_it():
    with pytest.raises(TypeError, match="num_querys"):
        MaskFormerConfig(num_querys=10)
    with pytest.raises(ValueError, match="num_querys"):
        MaskFormerConfig.from_dict({"num_querys": 10})


@pytest.mark.parametrize(
    "change,key",
    [
        ({"backbone": "vgg16"}, "backbone"),
        ({"num_classes": 0}, "num_classes"),
        ({"dropout": 1.5}, "dropout"),
        ({"hidden_dim": 30}, "hidden_dim"),
        ({"pixel_decoder": "aspp"}, "pixel_decoder"),
    ],
)
def test_impossible_values_name_the_field(change, key):
    with pytest.raises(ValueError, match=key):
        MaskFormerConfig(**change)


def test_round_trip_and_replace():
    cfg = MaskFormerConfig(num_classes=19)
    assert MaskFormerConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(backbone="swin_t").backbone == "swin_t"
