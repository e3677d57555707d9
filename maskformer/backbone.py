"""Torchvision ResNet / Swin backbones returning the four feature maps res2..res5 (strides 4-32)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import StochasticDepth, misc

from maskformer.config import RESNETS, SWINS

FEATURE_NAMES = ("res2", "res3", "res4", "res5")
FEATURE_STRIDES = (4, 8, 16, 32)


class FrozenBatchNorm2d(misc.FrozenBatchNorm2d):
    """torchvision's frozen BN computed by one fused eval-mode batch_norm kernel instead of two passes."""

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its classifier; BatchNorm frozen as detectron2 does."""

    def __init__(self, body: torchvision.models.ResNet) -> None:
        super().__init__()
        self.stem = nn.Sequential(body.conv1, body.bn1, body.relu, body.maxpool)
        self.res2, self.res3, self.res4, self.res5 = body.layer1, body.layer2, body.layer3, body.layer4
        last_block = body.layer1[-1]
        width = (
            last_block.conv3.out_channels if hasattr(last_block, "conv3") else last_block.conv2.out_channels
        )
        self.out_channels = [width * 2**i for i in range(4)]
        self.strides = list(FEATURE_STRIDES)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem(x)
        out = OrderedDict()
        for name in FEATURE_NAMES:
            x = getattr(self, name)(x)
            out[name] = x
        return out


class SwinBackbone(nn.Module):
    """A torchvision Swin Transformer; each stage output gets a LayerNorm, as the official MaskFormer."""

    def __init__(self, body: torchvision.models.SwinTransformer) -> None:
        super().__init__()
        self.features = body.features  # [patch embed, stage1, merge, stage2, merge, stage3, merge, stage4]
        dim = body.features[0][0].out_channels
        self.out_channels = [dim * 2**i for i in range(4)]
        self.strides = list(FEATURE_STRIDES)
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in self.out_channels)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = OrderedDict()
        stage = 0
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i % 2 == 1:  # the end of a stage (odd indices), before the next patch merging
                out[FEATURE_NAMES[stage]] = self.norms[stage](x).permute(0, 3, 1, 2).contiguous()
                stage += 1
        return out


# ImageNet weight names -> torchvision's: "imagenet" is torchvision's default (IMAGENET1K_V2 for
# ResNet-50/101, 80.9% top-1); the paper's R-50.pkl corresponds to IMAGENET1K_V1 (76.1%), its presets' choice
IMAGENET_WEIGHTS = {"imagenet": "DEFAULT", "imagenet_v1": "IMAGENET1K_V1", "imagenet_v2": "IMAGENET1K_V2"}


def imagenet_weights(name: str, weights: str) -> torchvision.models.WeightsEnum:
    """torchvision's weights entry of backbone `name` for an ImageNet weight name; a clear error when the
    model has no such weights (e.g. Swin has V1 only)."""
    enum = torchvision.models.get_model_weights(name)
    try:
        return enum.DEFAULT if IMAGENET_WEIGHTS[weights] == "DEFAULT" else enum[IMAGENET_WEIGHTS[weights]]
    except KeyError:
        raise ValueError(f"weights={weights!r}: {name} has {[w.name for w in enum]} (torchvision)") from None


TORCHVISION_WIDTH = 64  # channels of a torchvision ResNet's stem and res2 planes


def _set_width(model: torchvision.models.ResNet, width: int) -> None:
    """Rebuild a from-scratch torchvision ResNet with `width` stem/res2 channels (doubling per stage),
    initialised as torchvision initialises its own: the same blocks, 1/(64/width)^2 of the FLOPs."""
    block = type(model.layer1[0])
    depths = [len(getattr(model, f"layer{i}")) for i in range(1, 5)]
    model.inplanes, norm = width, model._norm_layer
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = norm(width)
    for i, depth in enumerate(depths):
        layer = model._make_layer(block, width * 2**i, depth, stride=1 if i == 0 else 2)
        setattr(model, f"layer{i + 1}", layer)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _torchvision_model(
    name: str, weights: str | None, drop_path_rate: float, norm: str, width: int = TORCHVISION_WIDTH
) -> nn.Module:
    """The full torchvision classifier, with ImageNet weights, a local state dict, or from scratch."""
    kwargs = (
        {"norm_layer": FrozenBatchNorm2d if norm == "frozen_bn" else nn.BatchNorm2d}
        if name in RESNETS
        else {}
    )
    if width != TORCHVISION_WIDTH and (name not in RESNETS or weights is not None):
        raise ValueError(
            f"backbone_width={width}: only a from-scratch ResNet (weights null) can change width, "
            f"got backbone={name!r}, weights={weights!r}"
        )
    builder = getattr(torchvision.models, name)
    pretrained = imagenet_weights(name, weights) if weights in IMAGENET_WEIGHTS else None
    model = builder(weights=pretrained, **kwargs)
    if width != TORCHVISION_WIDTH:
        _set_width(model, width)
    if name in SWINS:
        _set_drop_path(model, drop_path_rate)
    if weights is not None and weights not in IMAGENET_WEIGHTS:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
        missing, unexpected = model.load_state_dict(state, strict=False)
        # A classifier head may be absent from a backbone-only file; anything else means a wrong file.
        missing = [k for k in missing if not k.startswith(("fc.", "head."))]
        if missing or unexpected:
            raise ValueError(
                f"{path}: state dict does not fit {name} (missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
    return model


def _set_drop_path(model: nn.Module, rate: float) -> None:
    """Rescale torchvision's fixed stochastic-depth schedule (linear over blocks) to end at `rate`."""
    layers = [m for m in model.modules() if isinstance(m, StochasticDepth)]
    top = max(m.p for m in layers)
    for m in layers:
        m.p = m.p / top * rate


def build_backbone(
    name: str,
    weights: str | None = None,
    drop_path_rate: float = 0.3,
    norm: str = "frozen_bn",
    width: int = TORCHVISION_WIDTH,
) -> nn.Module:
    """Build a backbone by torchvision name; it has `out_channels` and `strides` for res2..res5.

    ResNets use frozen BatchNorm (detectron2's choice for pretrained weights); `norm="bn"` trains it,
    which a from-scratch backbone needs (frozen statistics of a random init are the identity). `width`
    narrows a from-scratch ResNet (32: a quarter of the FLOPs, for CPU training).
    """
    body = _torchvision_model(name, weights, drop_path_rate, norm, width)
    if name in RESNETS:
        return ResNetBackbone(body)
    if name in SWINS:
        return SwinBackbone(body)
    raise ValueError(f"unknown backbone {name!r}; choose one of {RESNETS + SWINS}")
