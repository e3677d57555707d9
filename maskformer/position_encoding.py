"""Sine positional encoding of a feature map (DETR's PositionEmbeddingSine, normalised)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    """Fixed 2-D sine/cosine encoding with `num_pos_feats` channels per axis (2x in total)."""

    def __init__(
        self, num_pos_feats: int = 128, temperature: float = 10000.0, normalize: bool = True
    ) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi

    def forward(self, x: Tensor) -> Tensor:
        """Args: x [B, C, H, W] (only shape, device, dtype used). Returns [B, 2*num_pos_feats, H, W]."""
        b, _, h, w = x.shape
        ones = torch.ones((h, w), device=x.device, dtype=torch.float32)
        y_embed = ones.cumsum(0)
        x_embed = ones.cumsum(1)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[-1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = x_embed[:, :, None] / dim_t
        pos_y = y_embed[:, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, 0::2].sin(), pos_x[:, :, 1::2].cos()), dim=3).flatten(2)
        pos_y = torch.stack((pos_y[:, :, 0::2].sin(), pos_y[:, :, 1::2].cos()), dim=3).flatten(2)
        pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)
        return pos.unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)
