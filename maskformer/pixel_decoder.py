"""Pixel decoders: the official FPN (and its Transformer-encoder variant) giving stride-4 embeddings."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from maskformer.position_encoding import PositionEmbeddingSine
from maskformer.transformer import TransformerEncoder, TransformerEncoderLayer


def conv_norm(in_ch: int, out_ch: int, kernel_size: int, relu: bool) -> nn.Sequential:
    """Conv (no bias) + GroupNorm(32) [+ ReLU], detectron2's Conv2d(norm="GN") with c2_xavier_fill."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False)
    nn.init.kaiming_uniform_(conv.weight, a=1)
    layers: list[nn.Module] = [conv, nn.GroupNorm(32, out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasePixelDecoder(nn.Module):
    """FPN: 3x3 conv on res5, 1x1 laterals, nearest upsampling, 3x3 outputs, 3x3 mask-features conv."""

    def __init__(self, in_channels: list[int], conv_dim: int = 256, mask_dim: int = 256) -> None:
        super().__init__()
        *lateral_in, top_in = in_channels
        self.top_conv = conv_norm(top_in, conv_dim, 3, relu=True)  # res5's output conv (no lateral)
        self.lateral_convs = nn.ModuleList(conv_norm(c, conv_dim, 1, relu=False) for c in lateral_in)
        self.output_convs = nn.ModuleList(conv_norm(conv_dim, conv_dim, 3, relu=True) for _ in lateral_in)
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, 3, padding=1)
        nn.init.kaiming_uniform_(self.mask_features.weight, a=1)
        nn.init.zeros_(self.mask_features.bias)

    def encode_top(self, res5: Tensor) -> tuple[Tensor, Tensor]:
        """The top of the pyramid and the features the Transformer decoder attends to (res5 here)."""
        return self.top_conv(res5), res5

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        """Args: features [res2, res3, res4, res5]. Returns (mask_features [B, mask_dim, H/4, W/4],
        transformer decoder input [B, C, H/32, W/32])."""
        y, memory = self.encode_top(features[-1])
        for idx in range(len(features) - 2, -1, -1):  # top-down: res4, res3, res2
            lateral = self.lateral_convs[idx](features[idx])
            y = lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest")
            y = self.output_convs[idx](y)
        return self.mask_features(y), memory


class TransformerEncoderPixelDecoder(BasePixelDecoder):
    """FPN whose res5 level first goes through a Transformer encoder (the paper's "R50 + 6 Enc")."""

    def __init__(
        self,
        in_channels: list[int],
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_layers: int = 6,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        pre_norm: bool = False,
    ) -> None:
        super().__init__(in_channels, conv_dim, mask_dim)
        self.input_proj = nn.Conv2d(in_channels[-1], conv_dim, 1)
        nn.init.kaiming_uniform_(self.input_proj.weight, a=1)
        nn.init.zeros_(self.input_proj.bias)
        layer = TransformerEncoderLayer(conv_dim, nheads, dim_feedforward, dropout, pre_norm)
        self.encoder = TransformerEncoder(layer, num_layers)
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)
        self.top_conv = conv_norm(conv_dim, conv_dim, 3, relu=True)

    def encode_top(self, res5: Tensor) -> tuple[Tensor, Tensor]:
        x = self.input_proj(res5)
        b, c, h, w = x.shape
        pos = self.pe_layer(x).flatten(2).transpose(1, 2)
        encoded = self.encoder(x.flatten(2).transpose(1, 2), pos=pos).transpose(1, 2).reshape(b, c, h, w)
        return self.top_conv(encoded), encoded
