"""Word + casing (+ character) features, shared by the bodies that read word ids.

A body on :class:`WordFeatureFrame` gets the vocabularies, their embeddings and their place in
the model document, and builds only what comes after (a BiLSTM, attention blocks, a GRU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from tagsure.config_dict import JsonConfig
from tagsure.data.batching import Vectorizer
from tagsure.data.features import CASING_CLASSES
from tagsure.errors import ConfigError
from tagsure.layers.chars import CharCNN, CharLSTM, build_char_encoder
from tagsure.layers.lookup import take_rows
from tagsure.layers.words import WordDropout
from tagsure.models.frame import Constraints, Inputs, Resources, TaggerFrame


@dataclass
class WordFeatureConfig(JsonConfig):
    """The config fields of the word features, first in every word-feature body's config."""

    data_derived: ClassVar[tuple[str, ...]] = ("num_words", "num_chars", "num_labels")

    num_words: int
    num_chars: int
    num_labels: int
    word_dim: int = 100
    casing_dim: int = 16
    char_encoder: str = "cnn"  # "cnn", "lstm" or "none", as the body allows
    char_dim: int = 32
    char_size: int = 64  # CNN filters, or LSTM hidden size per direction


def char_features(
    kind: str, num_chars: int, dim: int, size: int, allowed: tuple[str, ...], owner: str = ""
) -> CharCNN | CharLSTM | None:
    """The character encoder ``kind`` names (None for "none"), if this body allows it."""
    if kind not in allowed:
        choices = " or ".join(repr(k) for k in allowed)
        raise ConfigError(f"unknown character encoder {kind!r}{owner}; choose {choices}")
    return None if kind == "none" else build_char_encoder(kind, num_chars, dim, size)


class WordFeatureFrame(TaggerFrame):
    """A frame whose features are word, casing and (optionally) character vectors."""

    char_encoders: tuple[str, ...] = ("cnn", "lstm")  # what the config's char_encoder may say
    char_encoder_owner = ""  # " for the transformer": names the body in the error

    def build_word_features(self, config: Any) -> int:
        """Create ``words``, ``casing`` and ``chars``; return the width of their vectors."""
        self.words = nn.Embedding(config.num_words, config.word_dim, padding_idx=0)
        self.casing = nn.Embedding(len(CASING_CLASSES), config.casing_dim, padding_idx=0)
        self.chars = char_features(
            config.char_encoder,
            config.num_chars,
            config.char_dim,
            config.char_size,
            self.char_encoders,
            self.char_encoder_owner,
        )
        self.word_dropout = WordDropout(config.word_dropout)
        chars = self.chars.output_dim if self.chars is not None else 0
        return int(config.word_dim + config.casing_dim + chars)

    def word_features(self, inputs: Inputs) -> list[torch.Tensor]:
        """[words (B, T, E), casing (B, T, E_c), characters (B, T, C)]; concatenate them."""
        parts = [self.words(self.word_dropout(inputs["words"])), self.casing(inputs["cases"])]
        if self.chars is not None:
            chars = self.chars(inputs["chars"])  # (U, C): each distinct word of the batch
            parts.append(take_rows(chars, inputs["char_index"]))  # (B, T, C)
        return parts

    @property
    def features_graph_safe(self) -> bool:
        return self.config.char_encoder != "lstm"  # the char LSTM packs sequences

    def part_names(self) -> tuple[str, str]:
        chars = {"cnn": ", char CNN", "lstm": ", char LSTM"}.get(self.config.char_encoder, "")
        return "embeddings, casing" + chars, type(self).__name__

    @classmethod
    def prepare(
        cls, settings: dict[str, Any], resources: Resources
    ) -> tuple[Vectorizer, TaggerFrame]:
        """Vocabularies from the training corpus and a network sized to them."""
        labels, lowercase = resources.labels, bool(settings.get("lowercase_words", True))
        vectors = resources.word_vectors
        vectorizer = Vectorizer.from_corpus(
            resources.corpus,
            labels,
            lowercase,
            resources.min_word_count,
            vectors.words if vectors is not None else (),
        )
        config = cls.config_class(
            num_words=len(vectorizer.words),
            num_chars=len(vectorizer.chars),
            num_labels=len(labels),
            **cls.derived_settings(resources),
            **settings,
        )
        model = cls(config, Constraints.of(labels, resources.scheme))
        model.adopt(resources)
        return vectorizer, model

    @classmethod
    def derived_settings(cls, resources: Resources) -> dict[str, Any]:
        """Config fields that come from the resources (the character LMs' configs)."""
        return {}

    def adopt(self, resources: Resources) -> None:
        """Copy weights from the resources into the network (the character LMs)."""

    @classmethod
    def vectorizer_to_document(cls, vectorizer: Vectorizer) -> dict[str, Any]:
        return {"vocabularies": {"words": vectorizer.words.items, "chars": vectorizer.chars.items}}

    @classmethod
    def vectorizer_from_document(
        cls, document: dict[str, Any], config: Any, labels: list[str]
    ) -> Vectorizer:
        return Vectorizer.from_document(document, labels, config.lowercase_words)
