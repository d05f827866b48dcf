"""Inputs of any length to the sentences the model tags, and their tags back to the input.

A raw string is split into sentences and tokens exactly as :meth:`Tagger.predict` splits it
(``tagsure.data.text.split_offsets``), each token keeping its character offsets into the
string. The server tags the sentences of many requests together as token lists, then
:func:`merge` maps every entity back to character offsets in its own input, so a document of
any length comes back whole. What is cut further depends on the architecture
(:class:`SplitPolicy`): a pretrained encoder windows subwords itself (no word is dropped), a
BiLSTM reads a sentence of any length, and the from-scratch transformer (attention quadratic in
the length, positions up to ``max_positions``) gets sentences of at most ``max_positions``
tokens, longer ones cut into consecutive pieces tagged independently.

Pre-tokenised input (``is_split_into_words``) is one sentence; its character offsets are into
the words joined by single spaces, the string whose ``[start:end]`` is each entity's ``word``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tagsure.data.text import split_offsets

TRANSFORMER = "tagsure.Transformer.v1"
PRETRAINED = "tagsure.PretrainedTransformer.v1"


@dataclass(frozen=True)
class SplitPolicy:
    max_sentence_tokens: int  # 0: no limit
    description: str

    @classmethod
    def for_model(cls, architecture: str, config: dict[str, Any]) -> SplitPolicy:
        sentences = "raw text is split into sentences and tokens (segtok, as Tagger.predict)"
        if architecture == TRANSFORMER:
            limit = int(config.get("max_positions", 512))
            return cls(
                limit,
                f"{sentences}; sentences longer than {limit} tokens (the transformer's "
                "max_positions) are cut into consecutive pieces tagged independently",
            )
        if architecture == PRETRAINED:
            return cls(
                0,
                f"{sentences}; a sentence longer than the encoder's subword limit is tagged in "
                "overlapping subword windows, each word taken from the window where it has "
                "the most context: no word is dropped or truncated",
            )
        return cls(0, f"{sentences}; the BiLSTM reads each sentence whole, of any length")


@dataclass
class Segmented:
    """One input as the sentences the model sees, with each token's character span."""

    text: str  # the string offsets point into
    sentences: list[list[str]]
    offsets: list[list[tuple[int, int]]]

    @property
    def num_tokens(self) -> int:
        return sum(map(len, self.sentences))


def segment_text(text: str, policy: SplitPolicy) -> Segmented:
    sentences: list[list[str]] = []
    offsets: list[list[tuple[int, int]]] = []
    limit = policy.max_sentence_tokens
    for words, starts, ends in split_offsets(text):
        step = limit if limit > 0 else len(words)
        for i in range(0, len(words), step):
            sentences.append(words[i : i + step])
            offsets.append(list(zip(starts[i : i + step], ends[i : i + step], strict=True)))
    return Segmented(text, sentences, offsets)


def segment_words(words: Sequence[str], policy: SplitPolicy) -> Segmented:
    spans, cursor = [], 0
    for word in words:
        spans.append((cursor, cursor + len(word)))
        cursor += len(word) + 1
    limit = policy.max_sentence_tokens or max(1, len(words))
    cut = range(0, len(words), limit)
    return Segmented(
        " ".join(words),
        [list(words[i : i + limit]) for i in cut],
        [spans[i : i + limit] for i in cut],
    )


def merge(segmented: Segmented, predictions: Sequence[Any], return_tokens: bool) -> dict:
    """One input's result from the predictions of its sentences (token-list inputs, in order).

    Entities get character offsets into ``segmented.text``; ``word`` is the text they cover.
    """
    entities: list[dict[str, Any]] = []
    tokens: list[str] = []
    offsets: list[tuple[int, int]] = []
    tags: list[str] = []
    for spans, prediction in zip(segmented.offsets, predictions, strict=True):
        for entity in prediction.entities:  # token indices, end exclusive
            start, end = spans[entity.start][0], spans[entity.end - 1][1]
            entities.append(
                {
                    "entity_group": entity.label,
                    "score": entity.score,
                    "word": segmented.text[start:end],
                    "start": start,
                    "end": end,
                }
            )
        if return_tokens:
            tokens.extend(prediction.tokens)
            offsets.extend(spans)
            tags.extend(prediction.tags)
    result: dict[str, Any] = {"entities": entities}
    if return_tokens:
        result.update(tokens=tokens, offsets=[list(o) for o in offsets], tags=tags)
    return result
