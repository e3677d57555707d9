"""MaskFormer and the per-pixel baseline: backbone -> pixel decoder -> predictor, with their criterion."""

from __future__ import annotations

from torch import Tensor, nn

from maskformer.backbone import FEATURE_NAMES, build_backbone
from maskformer.config import MaskFormerConfig
from maskformer.criterion import PerPixelCriterion, SetCriterion
from maskformer.matcher import HungarianMatcher
from maskformer.pixel_decoder import BasePixelDecoder, TransformerEncoderPixelDecoder
from maskformer.predictor import TransformerPredictor


def check_images(images: Tensor) -> None:
    """Reject inputs that are not a float batch [B, 3, H, W], naming what was given."""
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a tensor [B, 3, H, W], got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must have rank 4 [B, 3, H, W], got shape {tuple(images.shape)}")
    if images.shape[1] != 3:
        raise ValueError(
            f"images must have 3 channels [B, 3, H, W], got {images.shape[1]} (shape {tuple(images.shape)})"
        )
    if not images.is_floating_point():
        raise ValueError(f"images must be float (normalised), got {images.dtype}")
    if min(images.shape[-2:]) < 32:
        raise ValueError(
            f"images must be at least 32x32 (the backbone's stride), got {tuple(images.shape[-2:])}"
        )


class MaskFormer(nn.Module):
    """Mask classification: N queries each predict a class (K+1) and a binary mask."""

    def __init__(
        self,
        backbone: nn.Module,
        pixel_decoder: BasePixelDecoder,
        predictor: TransformerPredictor,
        criterion: SetCriterion,
        num_classes: int,
        transformer_in_feature: str = "res5",
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.predictor = predictor
        self.transformer_in_feature = transformer_in_feature
        self.criterion = criterion
        self.num_classes = num_classes

    def forward(self, images: Tensor) -> dict:
        """Args: images [B, 3, H, W] normalised. Returns pred_logits [B, Q, K+1], pred_masks [B, Q, H/4, W/4]
        (mask logits), aux_outputs (one dict per earlier decoder layer) and all layers stacked for the
        criterion, layer_logits [B, L, Q, K+1] and layer_masks [B, L, Q, H/4, W/4]."""
        check_images(images)
        features = self.backbone(images)
        mask_features, memory = self.pixel_decoder(list(features.values()))
        if self.transformer_in_feature == "pixel_embedding":
            memory = mask_features
        elif self.transformer_in_feature != "res5":
            memory = features[self.transformer_in_feature]
        return self.predictor(memory, mask_features)


class PerPixelBaseline(nn.Module):
    """The paper's per-pixel classification baseline: same backbone and pixel decoder, a 1x1 classifier."""

    def __init__(
        self,
        backbone: nn.Module,
        pixel_decoder: BasePixelDecoder,
        mask_dim: int,
        criterion: PerPixelCriterion,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.pixel_decoder = pixel_decoder
        self.predictor = nn.Conv2d(mask_dim, num_classes, kernel_size=1)
        # detectron2's c2_msra_fill, as the official per-pixel head: He normal over fan-out, zero bias
        nn.init.kaiming_normal_(self.predictor.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.predictor.bias)
        self.criterion = criterion
        self.num_classes = num_classes

    def forward(self, images: Tensor) -> dict:
        """Args: images [B, 3, H, W]. Returns pred_sem_seg [B, K, H/4, W/4] (per-pixel class logits)."""
        check_images(images)
        mask_features, _ = self.pixel_decoder(list(self.backbone(images).values()))
        return {"pred_sem_seg": self.predictor(mask_features)}


def build_pixel_decoder(cfg: MaskFormerConfig, in_channels: list[int]) -> BasePixelDecoder:
    """The FPN, or the FPN with a Transformer encoder on res5."""
    if cfg.pixel_decoder == "transformer_encoder":
        return TransformerEncoderPixelDecoder(
            in_channels,
            cfg.conv_dim,
            cfg.mask_dim,
            cfg.encoder_layers,
            cfg.nheads,
            cfg.dim_feedforward,
            cfg.dropout,
            cfg.pre_norm,
        )
    return BasePixelDecoder(in_channels, cfg.conv_dim, cfg.mask_dim)


def _memory_channels(cfg: MaskFormerConfig, backbone_channels: list[int]) -> int:
    """Channels of the map the Transformer decoder attends to (`transformer_in_feature`)."""
    if cfg.transformer_in_feature == "pixel_embedding":
        return cfg.mask_dim
    if cfg.transformer_in_feature == "res5":
        return cfg.conv_dim if cfg.pixel_decoder == "transformer_encoder" else backbone_channels[-1]
    return backbone_channels[FEATURE_NAMES.index(cfg.transformer_in_feature)]


def build_criterion(cfg: MaskFormerConfig) -> SetCriterion:
    """The matcher and the set criterion with the paper's weights, repeated for every aux layer."""
    matcher = HungarianMatcher(
        cfg.class_weight, cfg.mask_weight, cfg.dice_weight, cfg.focal_alpha, cfg.focal_gamma
    )
    base = {"loss_ce": cfg.class_weight, "loss_mask": cfg.mask_weight, "loss_dice": cfg.dice_weight}
    weight_dict = dict(base)
    if cfg.deep_supervision:
        for i in range(cfg.dec_layers - 1):
            weight_dict.update({f"{k}_{i}": v for k, v in base.items()})
    return SetCriterion(
        cfg.num_classes,
        matcher,
        weight_dict,
        cfg.no_object_weight,
        cfg.focal_alpha,
        cfg.focal_gamma,
        cfg.num_points,
        cfg.oversample_ratio,
        cfg.importance_sample_ratio,
    )


def build_model(cfg: MaskFormerConfig) -> MaskFormer | PerPixelBaseline:
    """Build the model the config names (`architecture`), with its criterion as `model.criterion`."""
    backbone = build_backbone(
        cfg.backbone, cfg.weights, cfg.drop_path_rate, cfg.backbone_norm, cfg.backbone_width
    )
    pixel_decoder = build_pixel_decoder(cfg, backbone.out_channels)
    if cfg.architecture == "per_pixel_baseline":
        criterion = PerPixelCriterion(cfg.num_classes, cfg.ignore_label)
        model: nn.Module = PerPixelBaseline(backbone, pixel_decoder, cfg.mask_dim, criterion, cfg.num_classes)
    else:
        memory_channels = _memory_channels(cfg, backbone.out_channels)
        predictor = TransformerPredictor(
            memory_channels,
            cfg.num_classes,
            cfg.mask_dim,
            cfg.num_queries,
            cfg.hidden_dim,
            cfg.nheads,
            cfg.dim_feedforward,
            cfg.dec_layers,
            cfg.dropout,
            cfg.pre_norm,
            cfg.enforce_input_proj,
            cfg.deep_supervision,
        )
        criterion = build_criterion(cfg)
        model = MaskFormer(
            backbone, pixel_decoder, predictor, criterion, cfg.num_classes, cfg.transformer_in_feature
        )
    model.config = cfg  # kept for checkpoints and inference defaults
    return model
