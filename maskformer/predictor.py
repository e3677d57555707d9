"""The Transformer predictor: N learned queries -> class logits and mask embeddings per decoder layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from maskformer.position_encoding import PositionEmbeddingSine
from maskformer.transformer import TransformerDecoder, TransformerDecoderLayer


class MLP(nn.Module):
    """A plain multi-layer perceptron with ReLU between layers (DETR's MLP)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(i, o) for i, o in zip(dims, dims[1:] + [output_dim], strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class TransformerPredictor(nn.Module):
    """Decodes queries against the stride-32 features; heads give classes (K+1) and mask embeddings."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        mask_dim: int = 256,
        num_queries: int = 100,
        hidden_dim: int = 256,
        nheads: int = 8,
        dim_feedforward: int = 2048,
        dec_layers: int = 6,
        dropout: float = 0.1,
        pre_norm: bool = False,
        enforce_input_proj: bool = False,
        deep_supervision: bool = True,
    ) -> None:
        super().__init__()
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        layer = TransformerDecoderLayer(hidden_dim, nheads, dim_feedforward, dropout, pre_norm)
        self.transformer_decoder = TransformerDecoder(layer, dec_layers)
        for p in self.transformer_decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        if in_channels != hidden_dim or enforce_input_proj:
            self.input_proj: nn.Module = nn.Conv2d(in_channels, hidden_dim, kernel_size=1)
            nn.init.kaiming_uniform_(self.input_proj.weight, a=1)
            nn.init.zeros_(self.input_proj.bias)
        else:
            self.input_proj = nn.Identity()
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self.deep_supervision = deep_supervision

    def forward(self, memory: Tensor, mask_features: Tensor) -> dict:
        """Args: memory [B, C, h, w] (stride 32), mask_features [B, D, H/4, W/4] per-pixel embeddings.
        Returns pred_logits [B, Q, K+1], pred_masks [B, Q, H/4, W/4], aux_outputs (earlier layers) and
        the same for every layer stacked, layer_logits [B, L, Q, K+1] and layer_masks [B, L, Q, H/4, W/4]
        (views, no copy), which the criterion takes as they are."""
        pos = self.pe_layer(memory).flatten(2).transpose(1, 2)
        src = self.input_proj(memory).flatten(2).transpose(1, 2)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(src.shape[0], -1, -1)
        tgt = torch.zeros_like(query_pos)  # zero input queries; the learned embeddings act as positions
        layers = self.transformer_decoder(tgt, src, pos=pos, query_pos=query_pos)
        if not (self.deep_supervision and self.training):  # aux outputs only feed the training loss
            layers = layers[-1:]
        hs = torch.stack(layers)  # [L, B, Q, C]
        logits = self.class_embed(hs)
        masks = torch.einsum("lbqc,bchw->lbqhw", self.mask_embed(hs), mask_features)
        aux = [{"pred_logits": a, "pred_masks": b} for a, b in zip(logits[:-1], masks[:-1], strict=True)]
        return {
            "pred_logits": logits[-1],
            "pred_masks": masks[-1],
            "aux_outputs": aux,
            "layer_logits": logits.transpose(0, 1),
            "layer_masks": masks.transpose(0, 1),
        }
