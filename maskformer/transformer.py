"""DETR-style Transformer encoder and decoder layers (post-norm by default), batch-first."""

from __future__ import annotations

import copy

from torch import Tensor, nn
from torch.nn import functional as F


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class FeedForward(nn.Module):
    """Linear -> ReLU -> dropout -> Linear, the Transformer's position-wise MLP."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(F.relu(self.linear1(x))))


class TransformerEncoderLayer(nn.Module):
    """Self-attention + FFN over flattened pixels; positions added to queries and keys."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.normalize_before = normalize_before

    def forward(self, src: Tensor, pos: Tensor | None = None) -> Tensor:
        """Args: src [B, HW, C], pos [B, HW, C]. Returns [B, HW, C]."""
        x = self.norm1(src) if self.normalize_before else src
        q = k = _with_pos(x, pos)
        src = src + self.dropout1(self.self_attn(q, k, value=x, need_weights=False)[0])
        if not self.normalize_before:
            src = self.norm1(src)
        x = self.norm2(src) if self.normalize_before else src
        src = src + self.dropout2(self.ffn(x))
        return src if self.normalize_before else self.norm2(src)


class TransformerDecoderLayer(nn.Module):
    """Query self-attention, cross-attention to the image features, then FFN (DETR's decoder layer)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)
        self.norm1, self.norm2, self.norm3 = (
            nn.LayerNorm(d_model),
            nn.LayerNorm(d_model),
            nn.LayerNorm(d_model),
        )
        self.dropout1, self.dropout2, self.dropout3 = (
            nn.Dropout(dropout),
            nn.Dropout(dropout),
            nn.Dropout(dropout),
        )
        self.normalize_before = normalize_before

    def _block(self, tgt: Tensor, norm: nn.LayerNorm, fn) -> Tensor:
        """Residual around fn with pre- or post-normalisation."""
        if self.normalize_before:
            return tgt + fn(norm(tgt))
        return norm(tgt + fn(tgt))

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Tensor | None = None, query_pos: Tensor | None = None
    ) -> Tensor:
        """Args: tgt [B, Q, C] queries, memory [B, HW, C] features, pos [B, HW, C], query_pos [B, Q, C]."""

        def self_attention(x: Tensor) -> Tensor:
            q = k = _with_pos(x, query_pos)
            return self.dropout1(self.self_attn(q, k, value=x, need_weights=False)[0])

        def cross_attention(x: Tensor) -> Tensor:
            out = self.cross_attn(
                _with_pos(x, query_pos), _with_pos(memory, pos), value=memory, need_weights=False
            )[0]
            return self.dropout2(out)

        tgt = self._block(tgt, self.norm1, self_attention)
        tgt = self._block(tgt, self.norm2, cross_attention)
        return self._block(tgt, self.norm3, lambda x: self.dropout3(self.ffn(x)))


class TransformerEncoder(nn.Module):
    """A stack of encoder layers (final LayerNorm only in pre-norm mode, as DETR)."""

    def __init__(self, layer: TransformerEncoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(layer.norm1.normalized_shape) if layer.normalize_before else nn.Identity()

    def forward(self, src: Tensor, pos: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos=pos)
        return self.norm(src)


class TransformerDecoder(nn.Module):
    """A stack of decoder layers returning every layer's output through the shared final LayerNorm."""

    def __init__(self, layer: TransformerDecoderLayer, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.norm = nn.LayerNorm(layer.norm1.normalized_shape)

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Tensor | None = None, query_pos: Tensor | None = None
    ) -> list[Tensor]:
        """Returns a list of [B, Q, C], one per layer (deep supervision needs all of them normed)."""
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos=pos, query_pos=query_pos)
            outputs.append(self.norm(tgt))
        return outputs
