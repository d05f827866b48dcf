"""Character language models and the contextual string embeddings they give (Akbik et al., 2018).

A :class:`CharLanguageModel` is an LSTM that reads text one character at a time and predicts the
next one; a backward model reads the text reversed. Once trained, each word of a sentence is
embedded by the forward model's hidden state after the word's last character and the backward
model's state after (reading right to left) the word's first character, so each vector has seen
the whole sentence on one side and the word itself.

:class:`CharLMConfig` holds the character dictionary too and a tagger stores it in its own
config, so loading a tagger never looks for the original LM files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch import nn

from tagsure.layers.bilstm import run_lstm

# The torch-free half (what an LM reads), importable from here as before.
from tagsure.layers.char_text import (  # noqa: F401
    SENTENCE_END,
    SENTENCE_START,
    UNKNOWN,
    CharLMConfig,
    CharLMText,
    build_dictionary,
    sentence_char_arrays,
)


class CharLanguageModel(nn.Module):
    def __init__(self, config: CharLMConfig) -> None:
        super().__init__()
        self.config = config
        self.text = CharLMText(config)
        self.index = self.text.index
        self.embedding = nn.Embedding(config.num_symbols, config.embedding_dim)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden_size, config.num_symbols)

    def encode_text(self, text: str) -> np.ndarray:
        return self.text.encode_text(text)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Hidden states (B, L, H) after each character of ``ids`` (B, L), and the final state."""
        x = self.dropout(self.embedding(ids))  # (B, L, E)
        hidden, state = run_lstm(self.lstm, x, state)  # (B, L, H)
        return hidden, state

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.dropout(hidden))  # (B, L, num_symbols)


@dataclass
class SentenceChars:
    """One LM's view of a batch of sentences: padded character ids and where each word ends."""

    ids: torch.Tensor  # (B, L) character indices, UNKNOWN on padding
    positions: torch.Tensor  # (B, T) index in `ids` of the state that embeds each word


def sentence_chars(
    lm: CharLanguageModel | CharLMText, sentences: Sequence[Sequence[str]]
) -> SentenceChars:
    """:func:`~tagsure.layers.char_text.sentence_char_arrays` as tensors."""
    ids, positions = sentence_char_arrays(lm, sentences)
    return SentenceChars(torch.from_numpy(ids), torch.from_numpy(positions))


class ContextualStringEmbeddings(nn.Module):
    """Word vectors from one or more character LMs, concatenated: (B, T, sum of hidden sizes).

    Frozen by default (``fine_tune=False``): the LMs run without gradients and in eval mode,
    which is what lets a trainer compute the features of a corpus once and reuse them.
    """

    def __init__(self, configs: Iterable[CharLMConfig], fine_tune: bool = False) -> None:
        super().__init__()
        configs = list(configs)
        self.lms = nn.ModuleList(CharLanguageModel(c) for c in configs)
        self.fine_tune = fine_tune
        self.output_dim = sum(c.hidden_size for c in configs)
        if not fine_tune:
            self.lms.requires_grad_(False)

    def train(self, mode: bool = True) -> ContextualStringEmbeddings:
        super().train(mode)
        if not self.fine_tune:  # a frozen LM keeps its dropout off, so features are stable
            self.lms.eval()
        return self

    def forward(self, sentences: Sequence[Sequence[str]]) -> torch.Tensor:
        return self.embed(
            [sentence_chars(cast(CharLanguageModel, lm), sentences) for lm in self.lms]
        )

    def embed(self, inputs: Sequence[SentenceChars]) -> torch.Tensor:
        """The word vectors (B, T, D) from each LM's input tensors: tensors only, so it traces."""
        outputs = []
        with torch.set_grad_enabled(self.fine_tune and torch.is_grad_enabled()):
            for lm, chars in zip(self.lms, inputs, strict=True):
                hidden, _ = lm(chars.ids)  # (B, L, H)
                index = chars.positions.unsqueeze(2).expand(-1, -1, hidden.size(2))
                outputs.append(hidden.gather(1, index))  # (B, T, H)
        return torch.cat(outputs, dim=2)


def pooled_by_word(features: torch.Tensor, word_ids: np.ndarray) -> torch.Tensor:
    """For each token, the mean of its word's vectors over its occurrences so far, itself included.

    ``features`` (N, D) are token vectors in reading order and ``word_ids`` (N,) say which tokens
    are the same word: the memory of earlier occurrences of Akbik et al. (2019), "Pooled
    Contextualized Embeddings", with mean pooling. Depends only on the input, in order.
    """
    order = np.lexsort((np.arange(len(word_ids)), word_ids))  # grouped by word, then position
    sorted_ids = word_ids[order]
    index = torch.from_numpy(order)
    running = features[index].double().cumsum(0)  # (N, D); float64: long sums lose no bits
    group_start = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    starts = np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
    before = torch.zeros_like(running)
    has_before = torch.from_numpy(starts > 0)
    before[has_before] = running[torch.from_numpy(starts[starts > 0] - 1)]
    counts = torch.from_numpy(np.arange(len(order)) - starts + 1).unsqueeze(1)
    pooled = torch.empty_like(features)
    pooled[index] = ((running - before) / counts).to(features.dtype)
    return pooled
