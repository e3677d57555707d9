"""A tiny MaskFormer config for fast CPU tests."""

from maskformer import MaskFormerConfig

TINY = dict(
    backbone="resnet18",
    num_classes=4,
    num_queries=6,
    hidden_dim=32,
    nheads=4,
    dim_feedforward=64,
    dec_layers=2,
    conv_dim=32,
    mask_dim=32,
    encoder_layers=1,
)


def tiny_config(**changes) -> MaskFormerConfig:
    return MaskFormerConfig(**{**TINY, **changes})
