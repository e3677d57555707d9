"""Backbones give res2..res5 at strides 4-32; parameter counts match the paper."""

import pytest
import torch

from maskformer import MaskFormerConfig, build_model
from maskformer.backbone import build_backbone

CHANNELS = {
    "resnet18": [64, 128, 256, 512],
    "resnet34": [64, 128, 256, 512],
    "resnet50": [256, 512, 1024, 2048],
    "resnet101": [256, 512, 1024, 2048],
    "swin_t": [96, 192, 384, 768],
    "swin_s": [96, 192, 384, 768],
    "swin_b": [128, 256, 512, 1024],
}


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_feature_shapes(name):
    backbone = build_backbone(name).eval()
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 64, 96))
    assert list(features) == ["res2", "res3", "res4", "res5"]
    assert backbone.out_channels == CHANNELS[name]
    for (_, f), c, s in zip(features.items(), CHANNELS[name], (4, 8, 16, 32), strict=True):
        assert tuple(f.shape) == (1, c, 64 // s, 96 // s)


def test_resnet_batchnorm_is_frozen():
    from torchvision.ops.misc import FrozenBatchNorm2d

    backbone = build_backbone("resnet18")
    norms = [m for m in backbone.modules() if "Norm" in type(m).__name__]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)


def test_imagenet_weight_names_pick_torchvisions_entries_without_downloading():
    from torchvision.models import ResNet50_Weights, Swin_T_Weights

    from maskformer.backbone import imagenet_weights

    assert imagenet_weights("resnet50", "imagenet_v1") is ResNet50_Weights.IMAGENET1K_V1  # the paper's
    assert imagenet_weights("resnet50", "imagenet_v2") is ResNet50_Weights.IMAGENET1K_V2
    assert imagenet_weights("resnet50", "imagenet") is ResNet50_Weights.IMAGENET1K_V2  # the default
    assert imagenet_weights("swin_t", "imagenet_v1") is Swin_T_Weights.IMAGENET1K_V1
    with pytest.raises(ValueError, match="swin_t has \\['IMAGENET1K_V1'\\]"):
        imagenet_weights("swin_t", "imagenet_v2")


def test_weights_from_a_local_state_dict(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    torch.nn.init.constant_(reference.layer4[1].conv2.weight, 0.125)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    backbone = build_backbone("resnet18", weights=str(path))
    assert torch.equal(backbone.res5[1].conv2.weight, reference.layer4[1].conv2.weight)
    torch.save({"nonsense": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="r18.pth"):
        build_backbone("resnet18", weights=str(path))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_backbone("resnet18", weights=str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("backbone,paper,tolerance", [("resnet50", 41e6, 0.02), ("swin_t", 42e6, 0.03)])
def test_parameter_count_matches_the_paper(backbone, paper, tolerance):
    model = build_model(MaskFormerConfig(backbone=backbone, num_classes=150))
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - paper) / paper < tolerance, count


def test_trainable_batchnorm_option_for_training_from_scratch():
    backbone = build_backbone("resnet18", norm="bn")
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.weight.requires_grad for m in norms)


def test_fused_frozen_batchnorm_equals_torchvisions():
    from torchvision.ops.misc import FrozenBatchNorm2d as Reference

    from maskformer.backbone import FrozenBatchNorm2d

    ours, reference = FrozenBatchNorm2d(8), Reference(8)
    gen = torch.Generator().manual_seed(0)
    for name in ("weight", "bias", "running_mean"):
        getattr(reference, name).copy_(torch.randn(8, generator=gen))
    reference.running_var.copy_(torch.rand(8, generator=gen) + 0.1)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 5, 5, generator=gen)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def test_reduced_width_resnet_halves_every_stage():
    """backbone_width 32: torchvision's blocks at half the channels (a quarter of the conv weights)."""
    full, narrow = build_backbone("resnet18", norm="bn"), build_backbone("resnet18", norm="bn", width=32)
    assert narrow.out_channels == [32, 64, 128, 256]
    features = narrow(torch.randn(2, 3, 64, 64))
    shapes = [(32, 16, 16), (64, 8, 8), (128, 4, 4), (256, 2, 2)]
    assert [tuple(f.shape[1:]) for f in features.values()] == shapes
    ratio = sum(p.numel() for p in narrow.parameters()) / sum(p.numel() for p in full.parameters())
    assert 0.24 < ratio < 0.26
    conv = narrow.res3[0].conv1.weight  # torchvision's init, kaiming normal over fan-out
    assert abs(conv.std().item() - (2 / (conv.shape[0] * 9)) ** 0.5) < 0.01


def test_width_needs_a_from_scratch_resnet():
    with pytest.raises(ValueError, match="backbone_width=32.*swin_t"):
        build_backbone("swin_t", width=32)
    with pytest.raises(ValueError, match="weights='imagenet'"):
        build_backbone("resnet18", weights="imagenet", width=32)
