"""Transformer tagger from scratch: word + casing (+ character CNN) features, positions, N
pre-norm self-attention blocks, and a CRF or softmax head.

The network is written to compile into one graph and to export to ONNX: :meth:`forward`
takes plain tensors (no batch object, no lengths on the CPU), and padding is masked with tensor
operations only (see ``encoders/attention.py``). Everything needed to rebuild it is in
:class:`TransformerConfig`, stored as JSON in the model file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from tagsure.config_dict import JsonConfig
from tagsure.data.batching import Batch, Encoder
from tagsure.data.features import CASING_CLASSES
from tagsure.encoders.attention import TransformerEncoder, sinusoidal_positions
from tagsure.encoders.chars import CharCNN
from tagsure.encoders.words import WordDropout, read_word_vectors
from tagsure.heads.crf import CRF
from tagsure.heads.softmax import Softmax
from tagsure.models.graph_inputs import WORD_INPUTS

if TYPE_CHECKING:
    from tagsure.data.conll import Corpus
    from tagsure.data.schemes import TagScheme
    from tagsure.models.registry import Constraints
    from tagsure.training.config import TrainConfig

ARCHITECTURE = "tagsure.Transformer.v1"
DATA_DERIVED = ("num_words", "num_chars", "num_labels")


@dataclass
class TransformerConfig(JsonConfig):
    settings_name = "transformer"
    data_derived = DATA_DERIVED

    num_words: int
    num_chars: int
    num_labels: int
    word_dim: int = 100
    casing_dim: int = 16
    char_encoder: str = "cnn"  # "cnn" or "none" (the char LSTM packs sequences: not graph-safe)
    char_dim: int = 32
    char_size: int = 64  # CNN filters
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


class TransformerTagger(nn.Module):
    architecture = ARCHITECTURE

    def __init__(
        self,
        config: TransformerConfig,
        allowed_transitions: list[tuple[int, int]] | None = None,
        allowed_starts: list[int] | None = None,
        allowed_ends: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.words = nn.Embedding(config.num_words, config.word_dim, padding_idx=0)
        self.casing = nn.Embedding(len(CASING_CLASSES), config.casing_dim, padding_idx=0)
        features = config.word_dim + config.casing_dim
        self.chars: CharCNN | None = None
        if config.char_encoder == "cnn":
            self.chars = CharCNN(config.num_chars, config.char_dim, config.char_size)
            features += self.chars.output_dim
        elif config.char_encoder != "none":
            raise ValueError(
                f"unknown character encoder {config.char_encoder!r} for the transformer; "
                "choose 'cnn' or 'none'"
            )
        if config.positions not in ("sinusoidal", "learned"):
            raise ValueError(f"unknown positions {config.positions!r}; 'sinusoidal' or 'learned'")
        self.positions = (
            nn.Embedding(config.max_positions, config.hidden_size)
            if config.positions == "learned"
            else None
        )
        self.word_dropout = WordDropout(config.word_dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.project = nn.Linear(features, config.hidden_size)
        self.encoder = TransformerEncoder(
            config.hidden_size, config.heads, config.ff_size, config.layers, config.dropout
        )
        self.emission = nn.Linear(config.hidden_size, config.num_labels)
        if config.head == "crf":
            self.head: CRF | Softmax = CRF(
                config.num_labels, allowed_transitions, allowed_starts, allowed_ends
            )
        elif config.head == "softmax":
            self.head = Softmax(config.num_labels)
        else:
            raise ValueError(f"unknown head {config.head!r}; choose 'crf' or 'softmax'")

    def forward(
        self,
        words: torch.Tensor,  # (B, T)
        cases: torch.Tensor,  # (B, T)
        chars: torch.Tensor,  # (U, L)
        char_index: torch.Tensor,  # (B, T)
        mask: torch.Tensor,  # (B, T) bool
    ) -> torch.Tensor:
        """Per-token label scores (B, T, K) from tensors only: the compiled/exported graph."""
        parts = [self.words(self.word_dropout(words)), self.casing(cases)]  # (B, T, E) each
        if self.chars is not None:
            parts.append(self.chars(chars)[char_index])  # (U, C) -> (B, T, C)
        x = self.project(self.dropout(torch.cat(parts, dim=2)))  # (B, T, D)
        steps = torch.arange(words.shape[1], device=words.device)  # (T,)
        if self.positions is not None:
            x = x + self.positions(steps)
        else:
            x = x + sinusoidal_positions(words.shape[1], x.shape[2]).to(x.device)
        h = self.dropout(self.encoder(self.dropout(x), mask))  # (B, T, D)
        return self.emission(h)

    def graph_outputs(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Emissions from the named tensors of :mod:`tagsure.models.graph_inputs`."""
        return (self(*(inputs[name] for name in WORD_INPUTS)),)

    def emissions(self, batch: Batch) -> torch.Tensor:
        """Per-token label scores (B, T, K) before the head's decoding."""
        width = batch.words.shape[1]
        if self.positions is not None and width > self.config.max_positions:
            raise ValueError(
                f"a sentence of {width} tokens is longer than this model's learned positions "
                f"(max_positions={self.config.max_positions}); split it, or train with "
                "positions = 'sinusoidal'"
            )
        return self(batch.words, batch.cases, batch.chars, batch.char_index, batch.mask)

    def loss(self, batch: Batch) -> torch.Tensor:
        assert batch.tags is not None, "training batches carry tags"
        return self.head.loss(self.emissions(batch), batch.tags, batch.mask)

    def decode(self, batch: Batch) -> torch.Tensor:
        return self.head.decode(self.emissions(batch), batch.mask)


def build(config: TransformerConfig, constraints: Constraints) -> TransformerTagger:
    return TransformerTagger(config, constraints.transitions, constraints.starts, constraints.ends)


def prepare(
    config: TrainConfig, corpus: Corpus, labels: list[str], scheme: TagScheme
) -> tuple[Encoder, TransformerTagger]:
    """Vocabularies from the training corpus and a network sized to them (and word vectors)."""
    from tagsure.models.registry import Constraints

    settings = {k: v for k, v in config.model.items() if k != "architecture"}
    encoder = Encoder.from_corpus(
        corpus, labels, bool(settings.get("lowercase_words", True)), config.data.min_word_count
    )
    model_config = TransformerConfig(
        num_words=len(encoder.words),
        num_chars=len(encoder.chars),
        num_labels=len(labels),
        **settings,
    )
    model = build(model_config, Constraints.of(labels, scheme))
    if config.data.word_vectors:
        vectors, _ = read_word_vectors(
            config.data.word_vectors, encoder.words, model_config.word_dim, encoder.lowercase
        )
        with torch.no_grad():
            model.words.weight.copy_(vectors)
    return encoder, model
