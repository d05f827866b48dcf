"""BiLSTM-CRF tagger: word + casing + character features, a BiLSTM, and a CRF or softmax head.

The architecture follows Lample et al. (2016) and Ma & Hovy (2016), with contextual string
embeddings from character language models as an option (Akbik et al., 2018). Everything the
network needs to rebuild itself is in :class:`BiLSTMConfig`, including the head's output size
and the language models' own configs and character dictionaries, so a reloaded model can never
come back with a head of another size or without its language models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tagsure.config_dict import JsonConfig
from tagsure.data.batching import Batch, EncodedSentences, Encoder, bucketed_batches
from tagsure.data.features import CASING_CLASSES
from tagsure.encoders.bilstm import BiLSTMEncoder
from tagsure.encoders.char_lm import (
    CharLMConfig,
    ContextualStringEmbeddings,
    SentenceChars,
    pooled_by_word,
)
from tagsure.encoders.chars import build_char_encoder
from tagsure.encoders.words import LockedDropout, WordDropout, read_word_vectors
from tagsure.heads.crf import CRF
from tagsure.heads.softmax import Softmax
from tagsure.models.graph_inputs import LM_POOLED, lm_input_names

if TYPE_CHECKING:
    from tagsure.data.conll import Corpus
    from tagsure.data.schemes import TagScheme
    from tagsure.models.registry import Constraints
    from tagsure.training.config import TrainConfig

ARCHITECTURE = "tagsure.BiLSTMCRF.v1"
DATA_DERIVED = ("num_words", "num_chars", "num_labels", "char_lms")
# Training-only setting: LM files whose configs and weights are copied into the tagger.
CHAR_LM_FILES = "char_language_models"
LM_FEATURE_BATCH = 64  # sentences per LM pass when computing a corpus's features once


@dataclass
class BiLSTMConfig(JsonConfig):
    settings_name = "BiLSTM"
    data_derived = DATA_DERIVED

    num_words: int
    num_chars: int
    num_labels: int
    word_dim: int = 100
    casing_dim: int = 16
    char_encoder: str = "cnn"  # "cnn" or "lstm"
    char_dim: int = 32
    char_size: int = 64  # CNN filters, or LSTM hidden size per direction
    hidden_size: int = 256
    layers: int = 1
    dropout: float = 0.5
    word_dropout: float = 0.05
    head: str = "crf"  # "crf" or "softmax"
    lowercase_words: bool = True
    char_lms: list[dict[str, Any]] = field(default_factory=list)  # CharLMConfig dicts
    char_lm_fine_tune: bool = False
    # "mean": add each word's mean LM vector over its occurrences so far in the input (pooled
    # contextual embeddings); needs frozen LMs, as it is computed over a whole input at once
    char_lm_pooling: str = "none"

    @classmethod
    def user_settings(cls) -> list[str]:
        return super().user_settings() + [CHAR_LM_FILES]


class BiLSTMTagger(nn.Module):
    architecture = ARCHITECTURE

    def __init__(
        self,
        config: BiLSTMConfig,
        allowed_transitions: list[tuple[int, int]] | None = None,
        allowed_starts: list[int] | None = None,
        allowed_ends: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.words = nn.Embedding(config.num_words, config.word_dim, padding_idx=0)
        self.casing = nn.Embedding(len(CASING_CLASSES), config.casing_dim, padding_idx=0)
        self.chars = build_char_encoder(
            config.char_encoder, config.num_chars, config.char_dim, config.char_size
        )
        self.char_lm = (
            ContextualStringEmbeddings(
                [CharLMConfig.from_dict(c) for c in config.char_lms], config.char_lm_fine_tune
            )
            if config.char_lms
            else None
        )
        self.word_dropout = WordDropout(config.word_dropout)
        self.dropout = LockedDropout(config.dropout)
        features = config.word_dim + config.casing_dim + self.chars.output_dim
        if config.char_lm_pooling not in ("none", "mean"):
            raise ValueError(
                f"char_lm_pooling must be 'none' or 'mean', not {config.char_lm_pooling!r}"
            )
        self.pooled = config.char_lm_pooling != "none"
        if self.pooled and config.char_lm_fine_tune:
            raise ValueError(
                "pooled char-LM embeddings need frozen LMs (char_lm_fine_tune = false)"
            )
        if self.char_lm is not None:
            features += self.char_lm.output_dim * (2 if self.pooled else 1)
        self.encoder = BiLSTMEncoder(features, config.hidden_size, config.layers, config.dropout)
        self.emission = nn.Linear(self.encoder.output_dim, config.num_labels)
        if config.head == "crf":
            self.head: CRF | Softmax = CRF(
                config.num_labels, allowed_transitions, allowed_starts, allowed_ends
            )
        elif config.head == "softmax":
            self.head = Softmax(config.num_labels)
        else:
            raise ValueError(f"unknown head {config.head!r}; choose 'crf' or 'softmax'")

    def emissions(self, batch: Batch) -> torch.Tensor:
        """Per-token label scores (B, T, K) before the head's decoding."""
        words = self.word_embeddings(batch)  # (B, T, word_dim + casing_dim)
        chars = self.chars(batch.chars)[batch.char_index]  # (U, C) -> (B, T, C)
        parts = [words, chars]
        if self.char_lm is not None:
            # (B, T, sum of LM hidden sizes); cached per corpus when the LMs are frozen
            parts.append(
                batch.features if batch.features is not None else self.char_lm(batch.tokens)
            )
        x = self.dropout(torch.cat(parts, dim=2))
        h = self.dropout(self.encoder(x, batch.lengths))  # (B, T, 2H)
        return self.emission(h)

    def graph_outputs(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Emissions (and, pooled, the LM features) from the named tensors of
        :mod:`tagsure.models.graph_inputs`; the character LMs run inside, on their inputs."""
        mask = inputs["mask"]
        batch = Batch(
            inputs["words"],
            inputs["cases"],
            inputs["chars"],
            inputs["char_index"],
            mask,
            mask.sum(dim=1),
            None,
            np.empty(0),
            [],
        )
        if self.char_lm is None:
            return (self.emissions(batch),)
        lm_inputs = [
            SentenceChars(inputs[ids], inputs[positions])
            for ids, positions in map(lm_input_names, range(len(self.char_lm.lms)))
        ]
        lm = self.char_lm.embed(lm_inputs)  # (B, T, D)
        if not self.pooled:
            batch.features = lm
            return (self.emissions(batch),)
        batch.features = torch.cat([lm, inputs[LM_POOLED]], dim=2)
        return self.emissions(batch), lm

    @torch.no_grad()
    def frozen_features(self, data: EncodedSentences) -> torch.Tensor | None:
        """(tokens, D) character-LM features of a whole corpus, when the LMs are frozen.

        A trainer computes them once and reuses them every epoch: frozen LMs give the same
        vectors each time, and the LMs are most of the cost of a step.
        """
        if self.char_lm is None or self.char_lm.fine_tune:
            return None
        self.char_lm.eval()
        out = torch.empty(data.num_tokens, self.char_lm.output_dim)
        for ids in bucketed_batches(data.lengths, LM_FEATURE_BATCH):
            batch = data.batch(ids)
            features = self.char_lm(batch.tokens)  # (B, T, D)
            for row, i in enumerate(ids):
                start, n = int(data.offsets[i]), int(data.lengths[i])
                out[start : start + n] = features[row, :n]
        if self.pooled:
            out = torch.cat([out, pooled_by_word(out, data.type_ids)], dim=1)
        return out

    def word_embeddings(self, batch: Batch) -> torch.Tensor:
        words = self.words(self.word_dropout(batch.words))
        return torch.cat([words, self.casing(batch.cases)], dim=2)

    def loss(self, batch: Batch) -> torch.Tensor:
        assert batch.tags is not None, "training batches carry tags"
        return self.head.loss(self.emissions(batch), batch.tags, batch.mask)

    def decode(self, batch: Batch) -> torch.Tensor:
        return self.head.decode(self.emissions(batch), batch.mask)


def build(config: BiLSTMConfig, constraints: Constraints) -> BiLSTMTagger:
    return BiLSTMTagger(config, constraints.transitions, constraints.starts, constraints.ends)


def prepare(
    config: TrainConfig, corpus: Corpus, labels: list[str], scheme: TagScheme
) -> tuple[Encoder, BiLSTMTagger]:
    """Vocabularies from the training corpus and a network sized to them (and word vectors)."""
    from tagsure.models.registry import Constraints
    from tagsure.storage.lm_file import load_lm

    settings = {k: v for k, v in config.model.items() if k != "architecture"}
    lms = [load_lm(path) for path in settings.pop(CHAR_LM_FILES, [])]
    encoder = Encoder.from_corpus(
        corpus, labels, bool(settings.get("lowercase_words", True)), config.data.min_word_count
    )
    model_config = BiLSTMConfig(
        num_words=len(encoder.words),
        num_chars=len(encoder.chars),
        num_labels=len(labels),
        char_lms=[lm.config.to_dict() for lm in lms],
        **settings,
    )
    model = build(model_config, Constraints.of(labels, scheme))
    if model.char_lm is not None:  # the tagger owns copies of the LMs: their file isn't needed
        for target, lm in zip(model.char_lm.lms, lms, strict=True):
            target.load_state_dict(lm.state_dict(), strict=True)
    if config.data.word_vectors:
        vectors, _ = read_word_vectors(
            config.data.word_vectors, encoder.words, model_config.word_dim, encoder.lowercase
        )
        with torch.no_grad():
            model.words.weight.copy_(vectors)
    return encoder, model
