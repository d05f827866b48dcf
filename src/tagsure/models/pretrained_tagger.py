"""Pretrained-transformer tagger: a Hugging Face encoder, optional character features, a linear or
CRF head.

The transformer's config and tokenizer are in the model file, so a saved tagger rebuilds from
it alone (``AutoModel.from_config``). The head is a plain ``nn.Linear`` the size of the label
dictionary, never a model class's task head that a library could swap for another.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from tagsure.config_dict import JsonConfig
from tagsure.data.subwords import SubwordBatch, SubwordSettings, SubwordVectorizer
from tagsure.data.vocab import Vocabulary
from tagsure.errors import ModelFileError
from tagsure.layers.lookup import take_rows
from tagsure.layers.pretrained import PretrainedTransformer
from tagsure.models.features import char_features
from tagsure.models.frame import Constraints, Inputs, Resources, TaggerFrame
from tagsure.models.graph_inputs import SUBWORD_INPUTS
from tagsure.models.registry import register

ARCHITECTURE = "tagsure.PretrainedTransformer.v1"
DATA_DERIVED = ("num_labels", "num_chars", "transformer")


@dataclass
class PretrainedConfig(JsonConfig):
    settings_name = "pretrained-tagger"
    data_derived = DATA_DERIVED
    # Hugging Face's fine-tuning recipe (see docs/pretrained.md): at the BiLSTM's 2e-3 the
    # encoder's weights are wrecked in the first steps and dev F1 stays at 0
    training_defaults: ClassVar[dict[str, Any]] = {
        "learning_rate": 5e-5,
        "warmup_fraction": 0.1,
        "head_learning_rate": 1e-3,
        "clip_grad_norm": 1.0,
        "batch_size": 16,
        "group_by_length": False,
        "loss_average": "token",
    }

    num_labels: int
    transformer: dict[str, Any] = field(default_factory=dict)  # the HF config.json, as a dict
    pretrained: str = ""  # the directory training started from (provenance only; never read)
    pooling: str = "first"  # "first", "last", "mean" or "first_last" subword of each word
    layer_mix: bool = False  # learned softmax-weighted sum of all layers instead of the last
    frozen: bool = False  # keep the transformer's weights fixed
    max_subwords: int = 0  # subwords per window, specials included; 0: the model's limit
    dropout: float = 0.1  # on word vectors, before the head
    head: str = "softmax"  # "softmax" (linear) or "crf"
    char_encoder: str = "none"  # "none", "cnn" or "lstm": character features beside the words
    num_chars: int = 0
    char_dim: int = 32
    char_size: int = 64


@dataclass
class PretrainedSource:
    """A Hugging Face model directory, already read (by ``tagsure.interop.huggingface``)."""

    directory: Path
    transformer: dict[str, Any]  # config.json without the task-head fields
    tokenizer_json: str
    subwords: SubwordSettings  # at the model's own window limit
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # the bare transformer's


@register(ARCHITECTURE, kind="pretrained")
class PretrainedTagger(TaggerFrame):
    config_class = PretrainedConfig
    resources = ("pretrained",)

    def build(self, config: PretrainedConfig) -> int:
        self.encoder = PretrainedTransformer(config.transformer, config.pooling, config.layer_mix)
        if config.frozen:
            self.encoder.freeze()
        self.chars = char_features(
            config.char_encoder,
            config.num_chars,
            config.char_dim,
            config.char_size,
            ("none", "cnn", "lstm"),
        )
        self.dropout = nn.Dropout(config.dropout)
        return self.encoder.output_dim + (int(self.chars.output_dim) if self.chars else 0)

    def part_names(self) -> tuple[str, str]:
        return "the transformer, pooling", "characters"

    def init_emission(self, emission: nn.Linear) -> None:
        # As transformers initialises its classifiers: small weights keep the first steps'
        # gradients from scrambling the pretrained layers.
        nn.init.normal_(emission.weight, std=self.config.transformer.get("initializer_range", 0.02))
        nn.init.zeros_(emission.bias)

    @classmethod
    def graph_input_names(cls, config: PretrainedConfig) -> list[str]:
        chars = ["chars", "char_index"] if config.char_encoder != "none" else []
        return SUBWORD_INPUTS + chars

    @property
    def body_graph_safe(self) -> bool:
        return self.config.char_encoder != "lstm"  # the char LSTM packs sequences

    def features(self, inputs: Inputs) -> torch.Tensor:
        # All windows in one pass: a graph can't split them into groups (batch_hidden does).
        layers = self.encoder.subword_states(inputs["input_ids"], inputs["attention_mask"])
        return self.encoder.pool(layers, inputs)  # (B, T, H)

    def body(self, x: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        if self.chars is not None:
            chars = take_rows(
                self.chars(inputs["chars"]), inputs["char_index"]
            )  # (U, C) -> (B, T, C)
            x = torch.cat([x, chars], dim=2)
        return self.dropout(x)  # (B, T, H [+ C])

    def batch_hidden(self, batch: SubwordBatch) -> torch.Tensor:
        return self.body(self.encoder(batch), vars(batch))

    def parameter_groups(
        self, lr: float, layer_decay: float = 1.0, head_lr: float | None = None
    ) -> list[dict[str, Any]]:
        """Optimizer groups: transformer layer i of L gets ``lr * layer_decay ** (L - i)``
        (embeddings count as layer 0); everything above it (layer mix, characters, head, CRF)
        gets ``head_lr``, or ``lr``."""
        top = self.encoder.layers + 1
        groups: dict[float, list[nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            if name.startswith("encoder.model."):
                depth = self.encoder.layer_of(name.removeprefix("encoder.model."))
                rate = lr * layer_decay ** max(top - depth, 0)
            else:
                rate = head_lr if head_lr is not None else lr
            groups.setdefault(rate, []).append(parameter)
        return [{"params": params, "lr": rate} for rate, params in groups.items()]

    @classmethod
    def prepare(
        cls, settings: dict[str, Any], resources: Resources
    ) -> tuple[SubwordVectorizer, PretrainedTagger]:
        """The tokenizer and transformer of ``resources.pretrained``; a head for the labels."""
        source: PretrainedSource = resources.pretrained
        settings = {**settings, "pretrained": str(source.directory)}
        chars = None
        if settings.get("char_encoder", "none") != "none":
            counts: dict[str, int] = {}
            for sentence in resources.corpus.sentences:
                for token in sentence.tokens:
                    for c in token:
                        counts[c] = counts.get(c, 0) + 1
            chars = Vocabulary.from_counts(counts)
        config = PretrainedConfig(
            num_labels=len(resources.labels),
            transformer=source.transformer,
            num_chars=len(chars) if chars else 0,
            **settings,
        )
        subwords = source.subwords
        if config.max_subwords:
            subwords = replace(subwords, max_length=min(subwords.max_length, config.max_subwords))
        vectorizer = SubwordVectorizer(source.tokenizer_json, subwords, resources.labels, chars)
        model = cls(config, Constraints.of(resources.labels, resources.scheme))
        try:
            model.encoder.model.load_state_dict(source.weights, strict=True)
        except RuntimeError as err:
            raise ModelFileError(
                f"{source.directory}: the weights don't fit the transformer its config.json "
                f"describes: {err}"
            ) from None
        return vectorizer, model

    @classmethod
    def vectorizer_to_document(cls, vectorizer: SubwordVectorizer) -> dict[str, Any]:
        document: dict[str, Any] = {
            "subwords": {
                "tokenizer_json": vectorizer.tokenizer_json,
                **vectorizer.settings.to_dict(),
            }
        }
        if vectorizer.chars is not None:
            document["vocabularies"] = {"chars": vectorizer.chars.items}
        return document

    @classmethod
    def vectorizer_from_document(
        cls, document: dict[str, Any], config: PretrainedConfig, labels: list[str]
    ) -> SubwordVectorizer:
        return SubwordVectorizer.from_document(document, labels, config.char_encoder != "none")
