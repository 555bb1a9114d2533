"""The tagging head: label queries attend to image tokens (cross-attention + feed-forward only).

Module names follow the official checkpoints (a BERT encoder with its self-attention removed),
so ``tagging_head.encoder.layer.N.crossattention.self.query.weight`` loads without renaming.
Tags never attend to each other, so any subset of tags can be scored alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ram_model.config import HeadConfig


class _CrossAttentionProjections(nn.Module):
    def __init__(self, hidden: int, encoder_width: int) -> None:
        super().__init__()
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(encoder_width, hidden)
        self.value = nn.Linear(encoder_width, hidden)


class _AddNorm(nn.Module):
    """``LayerNorm(residual + dense(x))`` (BERT's ``*Output`` blocks)."""

    def __init__(self, in_features: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(in_features, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(x))


class _CrossAttention(nn.Module):
    def __init__(self, config: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.self = _CrossAttentionProjections(config.hidden_size, encoder_width)
        self.output = _AddNorm(config.hidden_size, config.hidden_size, config.layer_norm_eps)

    def forward(self, queries: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        batch, num_tags, hidden = queries.shape
        heads, head_dim = self.num_heads, hidden // self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, -1, heads, head_dim).transpose(1, 2)

        q = split(self.self.query(queries))
        k = split(self.self.key(image_tokens))
        v = split(self.self.value(image_tokens))
        context = F.scaled_dot_product_attention(q, k, v)
        context = context.transpose(1, 2).reshape(batch, num_tags, hidden)
        return self.output(context, queries)


class _Intermediate(nn.Module):
    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, config: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.crossattention = _CrossAttention(config, encoder_width)
        self.intermediate = _Intermediate(config)
        self.output = _AddNorm(config.intermediate_size, config.hidden_size, config.layer_norm_eps)

    def forward(self, queries: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        h = self.crossattention(queries, image_tokens)
        return self.output(self.intermediate(h), h)


class _Encoder(nn.Module):
    def __init__(self, config: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config, encoder_width) for _ in range(config.num_hidden_layers))


class TaggingHead(nn.Module):
    """Maps label queries ``[B, T, hidden]`` and image tokens ``[B, N, width]`` to ``[B, T, hidden]``."""

    def __init__(self, config: HeadConfig, encoder_width: int) -> None:
        super().__init__()
        self.encoder = _Encoder(config, encoder_width)

    def forward(self, queries: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        h = queries
        for layer in self.encoder.layer:
            h = layer(h, image_tokens)
        return h
