"""Masked multi-head self-attention and pre-norm transformer encoder blocks, graph-safe.

Graph-safe means that padding is handled with tensor arithmetic only: no Python ``if`` on a
tensor value, no data-dependent shapes, so that ``torch.compile(fullgraph=True)`` and ONNX
export see one graph for every batch. Padded keys get a large *finite* negative score before
the softmax (not ``-inf``): a query whose keys are all padding (a fully padded row) then gets
a uniform, finite distribution instead of ``0/0 = NaN``, and a real query gives exactly zero
weight to padding, so a sentence's outputs don't depend on how much padding its batch has.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from tagsure.errors import ConfigError

MASKED = -1e9  # exp(MASKED - max) underflows to exactly 0 in float32 and float16


def sinusoidal_positions(steps: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s fixed position encodings (T, dim), computed for any length."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * rate  # (T, ceil(dim / 2))
    # Interleave sin and cos without in-place writes, which keeps the export graph simple.
    table = torch.stack([angles.sin(), angles.cos()], dim=2).flatten(1)  # (T, 2 * ceil(dim/2))
    return table[:, :dim]


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"hidden_size {dim} must be a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.attention_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D), mask: (B, T) True on real tokens -> (B, T, D)
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)  # (B,T,H,Dh)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, Dh)
        scores = q @ k.transpose(2, 3) / math.sqrt(d // self.heads)  # (B, H, T, T)
        # Replace (not add) the scores of padded keys, so no real score can overflow to -inf.
        scores = scores.masked_fill(~mask[:, None, None, :], MASKED)
        weights = self.attention_dropout(F.softmax(scores, dim=3))  # (B, H, T, T)
        h = (weights @ v).transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.out(h)


class EncoderBlock(nn.Module):
    """Pre-norm block (x + attn(norm(x)), then x + ffn(norm(x))): trains without warm-up
    tricks at the small depths a tagger uses."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadSelfAttention(dim, heads, dropout)
        self.ff_norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        x = x + self.dropout(self.attention(self.attention_norm(x), mask))
        return x + self.dropout(self.ff(self.ff_norm(x)))


class TransformerBlocks(nn.Module):
    def __init__(self, dim: int, heads: int, ff_dim: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, heads, ff_dim, dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.output_dim = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)
