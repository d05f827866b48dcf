"""Tagger architectures by versioned name: what a model file's ``architecture`` resolves to.

Each architecture names its config dataclass, how to build the network from that config and the
label set, and how its input encoder (vocabularies, or a subword tokenizer) is written into and
read back from the model file. A training config chooses one by its short ``kind``
(``[model] architecture = "bilstm"``); the model file records the versioned ``name``, so an old
file keeps loading after a new version of an architecture is added.

Every network has the same surface, which is all the tagger, trainer and storage rely on:
``config`` (with ``num_labels`` and ``to_dict``), ``head`` (``decode``/``marginals``/``loss``),
``emissions(batch)``, ``loss(batch)`` and ``decode(batch)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from tagsure.data.batching import Encoder
from tagsure.data.schemes import TagScheme, allowed_ends, allowed_starts, allowed_transitions
from tagsure.data.vocab import Vocabulary

if TYPE_CHECKING:
    from tagsure.data.conll import Corpus
    from tagsure.training.config import TrainConfig


class ModelConfig(Protocol):
    num_labels: int

    def to_dict(self) -> dict[str, Any]: ...


class TaggerNetwork(Protocol):
    """What every tagsure network provides (an ``nn.Module``)."""

    config: Any
    head: Any

    def emissions(self, batch: Any) -> torch.Tensor: ...

    def loss(self, batch: Any) -> torch.Tensor: ...

    def decode(self, batch: Any) -> torch.Tensor: ...


@dataclass(frozen=True)
class Constraints:
    """CRF transition constraints that follow from the label set and its tag scheme."""

    transitions: list[tuple[int, int]]
    starts: list[int]
    ends: list[int]

    @classmethod
    def of(cls, labels: list[str], scheme: TagScheme) -> Constraints:
        return cls(
            allowed_transitions(labels, scheme),
            allowed_starts(labels, scheme),
            allowed_ends(labels, scheme),
        )


@dataclass(frozen=True)
class Architecture:
    name: str  # versioned, stored in model files: "tagsure.BiLSTMCRF.v1"
    kind: str  # what a training config says: "bilstm"
    config_from_dict: Callable[[dict[str, Any]], Any]
    build: Callable[[Any, Constraints], torch.nn.Module]
    # (train config, corpus, labels) -> (input encoder, network), sized to the data
    prepare: Callable[[TrainConfig, Corpus, list[str], TagScheme], tuple[Any, torch.nn.Module]]
    # input encoder <-> the JSON fields of the model document that describe it
    encoder_to_document: Callable[[Any], dict[str, Any]]
    encoder_from_document: Callable[[dict[str, Any], Any, list[str]], Any]
    settings: Callable[[], list[str]]  # the [model] settings a user may give


def word_char_encoder_to_document(encoder: Encoder) -> dict[str, Any]:
    return {"vocabularies": {"words": encoder.words.items, "chars": encoder.chars.items}}


def word_char_encoder_from_document(
    document: dict[str, Any], config: Any, labels: list[str]
) -> Encoder:
    vocabularies = document["vocabularies"]
    return Encoder(
        Vocabulary(vocabularies["words"]),
        Vocabulary(vocabularies["chars"]),
        labels,
        config.lowercase_words,
    )


def _bilstm() -> Architecture:
    from tagsure.models import bilstm_crf

    return Architecture(
        name=bilstm_crf.ARCHITECTURE,
        kind="bilstm",
        config_from_dict=bilstm_crf.BiLSTMConfig.from_dict,
        build=bilstm_crf.build,
        prepare=bilstm_crf.prepare,
        encoder_to_document=word_char_encoder_to_document,
        encoder_from_document=word_char_encoder_from_document,
        settings=bilstm_crf.BiLSTMConfig.user_settings,
    )


def _pretrained() -> Architecture:
    from tagsure.models import pretrained_tagger

    return Architecture(
        name=pretrained_tagger.ARCHITECTURE,
        kind="pretrained",
        config_from_dict=pretrained_tagger.PretrainedConfig.from_dict,
        build=pretrained_tagger.build,
        prepare=pretrained_tagger.prepare,
        encoder_to_document=pretrained_tagger.encoder_to_document,
        encoder_from_document=pretrained_tagger.encoder_from_document,
        settings=pretrained_tagger.PretrainedConfig.user_settings,
    )


def _transformer() -> Architecture:
    from tagsure.models import transformer_tagger

    return Architecture(
        name=transformer_tagger.ARCHITECTURE,
        kind="transformer",
        config_from_dict=transformer_tagger.TransformerConfig.from_dict,
        build=transformer_tagger.build,
        prepare=transformer_tagger.prepare,
        encoder_to_document=word_char_encoder_to_document,
        encoder_from_document=word_char_encoder_from_document,
        settings=transformer_tagger.TransformerConfig.user_settings,
    )


# kind -> factory; factories import lazily so optional dependencies load only when used.
_FACTORIES: dict[str, Callable[[], Architecture]] = {
    "bilstm": _bilstm,
    "transformer": _transformer,
    "pretrained": _pretrained,
}
DEFAULT_KIND = "bilstm"


def kinds() -> list[str]:
    return list(_FACTORIES)


def by_kind(kind: str) -> Architecture:
    try:
        return _FACTORIES[kind]()
    except KeyError:
        raise ValueError(f"unknown architecture {kind!r}; choose one of {kinds()}") from None


def by_name(name: str) -> Architecture | None:
    """The architecture a model file names, or None if this tagsure doesn't know it."""
    for factory in _FACTORIES.values():
        architecture = factory()
        if architecture.name == name:
            return architecture
    return None


def architecture_of(model: torch.nn.Module) -> Architecture:
    name = getattr(model, "architecture", None)
    architecture = by_name(str(name))
    if architecture is None:
        raise ValueError(f"{type(model).__name__} is not a registered tagsure architecture")
    return architecture
