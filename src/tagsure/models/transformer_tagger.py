"""Transformer tagger from scratch: word + casing (+ character CNN) features, positions, N
pre-norm self-attention blocks, and a CRF or softmax head.

It compiles into one graph and exports to ONNX: padding is masked with tensor operations only
(see ``layers/attention.py``) and no lengths are needed on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tagsure.errors import ConfigError, InputError
from tagsure.layers.attention import TransformerBlocks, sinusoidal_positions
from tagsure.models.features import WordFeatureConfig, WordFeatureFrame
from tagsure.models.frame import Inputs
from tagsure.models.registry import register

ARCHITECTURE = "tagsure.Transformer.v1"


@dataclass
class TransformerConfig(WordFeatureConfig):
    settings_name = "transformer"

    # char_encoder: "cnn" or "none" (the char LSTM packs sequences: not graph-safe)
    hidden_size: int = 128  # model width D
    heads: int = 4
    layers: int = 2
    ff_size: int = 256
    positions: str = "sinusoidal"  # or "learned" (then at most max_positions tokens)
    max_positions: int = 512
    dropout: float = 0.1
    word_dropout: float = 0.05
    head: str = "crf"  # "crf" or "softmax"
    lowercase_words: bool = True


@register(ARCHITECTURE, kind="transformer")
class TransformerTagger(WordFeatureFrame):
    config_class = TransformerConfig
    char_encoders = ("cnn", "none")  # the char LSTM packs sequences: not graph-safe
    char_encoder_owner = " for the transformer"

    def build(self, config: TransformerConfig) -> int:
        features = self.build_word_features(config)
        if config.positions not in ("sinusoidal", "learned"):
            raise ConfigError(f"unknown positions {config.positions!r}; 'sinusoidal' or 'learned'")
        self.positions = (
            nn.Embedding(config.max_positions, config.hidden_size)
            if config.positions == "learned"
            else None
        )
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(features, config.hidden_size)
        self.encoder = TransformerBlocks(
            config.hidden_size, config.heads, config.ff_size, config.layers, config.dropout
        )
        return config.hidden_size

    def features(self, inputs: Inputs) -> torch.Tensor:
        x = self.project(self.dropout(torch.cat(self.word_features(inputs), dim=2)))  # (B, T, D)
        width = inputs["words"].shape[1]
        if self.positions is not None:
            return x + self.positions(torch.arange(width, device=x.device))
        return x + sinusoidal_positions(width, x.shape[2]).to(x.device)

    def body(self, x: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        return self.dropout(self.encoder(self.dropout(x), inputs["mask"]))  # (B, T, D)

    def batch_inputs(self, batch: Any) -> dict[str, torch.Tensor]:
        width = batch.words.shape[1]
        if self.positions is not None and width > self.config.max_positions:
            raise InputError(
                f"a sentence of {width} tokens is longer than this model's learned positions "
                f"(max_positions={self.config.max_positions}); split it, or train with "
                "positions = 'sinusoidal'"
            )
        return super().batch_inputs(batch)
