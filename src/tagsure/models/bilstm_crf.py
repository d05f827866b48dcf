"""BiLSTM-CRF tagger: word + casing + character features, a BiLSTM, and a CRF or softmax head.

The architecture follows Lample et al. (2016) and Ma & Hovy (2016), with contextual string
embeddings from character language models as an option (Akbik et al., 2018).
:class:`BiLSTMConfig` holds the head's size and the LMs' configs and dictionaries, so a reloaded
model can never come back with a head of another size or without its language models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from tagsure.data.batching import EncodedSentences, bucketed_batches
from tagsure.errors import ConfigError
from tagsure.layers.bilstm import BiLSTM
from tagsure.layers.char_lm import (
    CharLMConfig,
    ContextualStringEmbeddings,
    SentenceChars,
    pooled_by_word,
)
from tagsure.layers.words import LockedDropout
from tagsure.models.features import WordFeatureConfig, WordFeatureFrame
from tagsure.models.frame import Inputs, Resources
from tagsure.models.graph_inputs import LM_POOLED, WORD_INPUTS, lm_input_names, pooled
from tagsure.models.registry import register

ARCHITECTURE = "tagsure.BiLSTMCRF.v1"
DATA_DERIVED = ("num_words", "num_chars", "num_labels", "char_lms")
# Training-only setting: LM files whose configs and weights are copied into the tagger.
CHAR_LM_FILES = "char_language_models"
LM_FEATURE_BATCH = 64  # sentences per LM pass when computing a corpus's features once
CHAR_LM_FEATURES = "char_lm_features"  # (B, T, D) an eager batch's LM vectors (and pooled)


@dataclass
class BiLSTMConfig(WordFeatureConfig):
    settings_name = "BiLSTM"
    data_derived = DATA_DERIVED

    # char_encoder: "cnn" or "lstm"
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


@register(ARCHITECTURE, kind="bilstm")
class BiLSTMTagger(WordFeatureFrame):
    config_class = BiLSTMConfig
    resources = ("char_lms",)
    group_ratio = 0.4  # 32-document batches: 0.7 23-24k, 0.5 27k, 0.4 28.5k words/s (2 threads)

    def build(self, config: BiLSTMConfig) -> int:
        features = self.build_word_features(config)
        self.char_lm = (
            ContextualStringEmbeddings(
                [CharLMConfig.from_dict(c) for c in config.char_lms], config.char_lm_fine_tune
            )
            if config.char_lms
            else None
        )
        self.dropout = LockedDropout(config.dropout)
        if config.char_lm_pooling not in ("none", "mean"):
            raise ConfigError(
                f"char_lm_pooling must be 'none' or 'mean', not {config.char_lm_pooling!r}"
            )
        self.pooled = config.char_lm_pooling != "none"
        if self.pooled and config.char_lm_fine_tune:
            raise ConfigError(
                "pooled char-LM embeddings need frozen LMs (char_lm_fine_tune = false)"
            )
        if self.char_lm is not None:
            features += self.char_lm.output_dim * (2 if self.pooled else 1)
        self.encoder = BiLSTM(features, config.hidden_size, config.layers, config.dropout)
        return self.encoder.output_dim

    @classmethod
    def graph_input_names(cls, config: BiLSTMConfig) -> list[str]:
        names = list(WORD_INPUTS)
        for i in range(len(config.char_lms)):
            names += lm_input_names(i)
        return names + ([LM_POOLED] if pooled(config) else [])

    @classmethod
    def graph_output_names(cls, config: BiLSTMConfig) -> list[str]:
        return super().graph_output_names(config) + (["lm_features"] if pooled(config) else [])

    @property
    def features_graph_safe(self) -> bool:
        return super().features_graph_safe and self.char_lm is None

    @property
    def body_graph_safe(self) -> bool:
        return False  # nn.LSTM is not traced by Dynamo

    def features(self, inputs: Inputs) -> torch.Tensor:
        parts = self.word_features(inputs)  # (B, T, E) each
        if self.char_lm is not None:
            # (B, T, sum of LM hidden sizes); cached per corpus when the LMs are frozen
            parts.append(inputs[CHAR_LM_FEATURES])
        return self.dropout(torch.cat(parts, dim=2))

    def body(self, x: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        return self.dropout(self.encoder(x, inputs["mask"].sum(dim=1)))  # (B, T, 2H)

    def batch_inputs(self, batch: Any) -> dict[str, torch.Tensor]:
        inputs = {name: getattr(batch, name) for name in WORD_INPUTS}
        if self.char_lm is not None:
            lm = batch.features if batch.features is not None else self.char_lm(batch.tokens)
            b, t = batch.mask.shape  # a padded batch (compiled) is wider than its tokens
            inputs[CHAR_LM_FEATURES] = F.pad(lm, (0, 0, 0, t - lm.shape[1], 0, b - lm.shape[0]))
        return inputs

    def graph_outputs(self, inputs: Inputs) -> tuple[torch.Tensor, ...]:
        """Emissions (and, pooled, the LM features); the character LMs run inside, on their
        inputs (see :mod:`tagsure.models.graph_inputs`)."""
        if self.char_lm is None:
            return super().graph_outputs(inputs)
        lm_inputs = [
            SentenceChars(inputs[ids], inputs[positions])
            for ids, positions in map(lm_input_names, range(len(self.char_lm.lms)))
        ]
        lm = self.char_lm.embed(lm_inputs)  # (B, T, D)
        features = torch.cat([lm, inputs[LM_POOLED]], dim=2) if self.pooled else lm
        emissions = self.emission(self.hidden({**inputs, CHAR_LM_FEATURES: features}))
        return (emissions, lm) if self.pooled else (emissions,)

    @torch.no_grad()
    def frozen_features(self, data: EncodedSentences) -> torch.Tensor | None:
        """(tokens, D) character-LM features of a whole corpus, when the LMs are frozen: the
        same vectors every epoch, so computed once (the LMs are most of the cost of a step)."""
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

    @classmethod
    def derived_settings(cls, resources: Resources) -> dict[str, Any]:
        return {"char_lms": [lm.config.to_dict() for lm in resources.char_lms]}

    def adopt(self, resources: Resources) -> None:
        if self.char_lm is not None:  # the tagger owns copies of the LMs: their file isn't needed
            for target, lm in zip(self.char_lm.lms, resources.char_lms, strict=True):
                target.load_state_dict(lm.state_dict(), strict=True)
