"""What a character LM reads, without its weights or torch: its config (dictionary, direction),
sentences as its input ids, and the pooling of word vectors over an input.

:mod:`tagsure.layers.char_lm` (the torch LMs) builds on these; an exported ONNX tagger with
character LMs uses them directly, so it tags without torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagsure.config_dict import JsonConfig
from tagsure.errors import ConfigError

UNKNOWN = 0  # index of every character outside the dictionary, and of padding
SENTENCE_START = "\n"  # what precedes a sentence, as a line break precedes it in training text
SENTENCE_END = " "


@dataclass
class CharLMConfig(JsonConfig):
    settings_name = "character-LM"

    chars: list[str]  # the dictionary; index i + 1 is chars[i], 0 is unknown
    direction: str = "forward"  # "forward" or "backward" (reads the text reversed)
    embedding_dim: int = 100
    hidden_size: int = 512
    layers: int = 1
    dropout: float = 0.1
    training: dict[str, Any] = field(default_factory=dict)  # corpus, bits per char, time

    def __post_init__(self) -> None:
        if self.direction not in ("forward", "backward"):
            raise ConfigError(f"direction must be 'forward' or 'backward', not {self.direction!r}")

    @property
    def num_symbols(self) -> int:
        return len(self.chars) + 1


def build_dictionary(counts: Counter[str], max_chars: int = 300) -> list[str]:
    """The ``max_chars`` most frequent characters (ties by code point), line break always in."""
    ranked = sorted(counts, key=lambda c: (-counts[c], c))[:max_chars]
    if SENTENCE_START not in ranked:
        ranked = ranked[: max_chars - 1] + [SENTENCE_START]
    return ranked


class CharLMText:
    """What a character LM reads, without its weights: its dictionary and direction.

    Enough to turn sentences into the LM's input ids, e.g. to feed an exported ONNX graph.
    """

    def __init__(self, config: CharLMConfig) -> None:
        self.config = config
        self.index = {c: i + 1 for i, c in enumerate(config.chars)}

    def encode_text(self, text: str) -> np.ndarray:
        """Character indices of ``text`` in reading order (reversed for a backward model)."""
        if self.config.direction == "backward":
            text = text[::-1]
        get = self.index.get
        return np.fromiter((get(c, UNKNOWN) for c in text), dtype=np.int64, count=len(text))


def sentence_char_arrays(
    lm: Any, sentences: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """The text the LM reads for each sentence: start marker, words joined by spaces, end marker.

    A forward model embeds a word by its state at the word's last character; a backward model
    reads the same string reversed and embeds a word by its state at the word's first character.
    ``lm`` is a :class:`CharLMText` or anything with its ``config`` and ``encode_text``. Returns
    the (B, L) character ids and the (B, T) positions of the states that embed the words.
    """
    backward = lm.config.direction == "backward"
    texts, positions = [], []
    for tokens in sentences:
        text = SENTENCE_START + " ".join(tokens) + SENTENCE_END
        starts = np.cumsum([len(SENTENCE_START)] + [len(t) + 1 for t in tokens])[:-1]
        ends = starts + np.fromiter((len(t) for t in tokens), np.int64, count=len(tokens))
        # forward: state after the last char; backward: the first char, in reversed coordinates
        positions.append(len(text) - 1 - starts if backward else ends - 1)
        texts.append(lm.encode_text(text))
    width = max(len(t) for t in texts)
    ids = np.full((len(texts), width), UNKNOWN, dtype=np.int64)
    for row, encoded in enumerate(texts):
        ids[row, : len(encoded)] = encoded
    words = max(len(p) for p in positions)
    gather = np.zeros((len(positions), words), dtype=np.int64)
    for row, p in enumerate(positions):
        gather[row, : len(p)] = p
    return ids, gather


def pooled_by_word_arrays(features: np.ndarray, word_ids: np.ndarray) -> np.ndarray:
    """:func:`tagsure.layers.char_lm.pooled_by_word` in NumPy, the same arithmetic (a float64
    running sum per word, in reading order) so the same bits: (N, D) ``features``, (N,)
    ``word_ids``."""
    order = np.lexsort((np.arange(len(word_ids)), word_ids))  # grouped by word, then position
    sorted_ids = word_ids[order]
    running = features[order].astype(np.float64).cumsum(0)  # (N, D)
    group_start = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    starts = np.repeat(group_start, np.diff(np.r_[group_start, len(order)]))
    before = np.zeros_like(running)
    has_before = starts > 0
    before[has_before] = running[starts[has_before] - 1]
    counts = (np.arange(len(order)) - starts + 1)[:, None]
    pooled = np.empty_like(features)
    pooled[order] = ((running - before) / counts).astype(features.dtype)
    return pooled
