"""What a tagger's predictions are, and how they are made from its tags: no torch here.

:class:`Entity` and :class:`Prediction` are what ``predict`` returns; :func:`decode_all` turns a
network's label paths into tags; :func:`predict_items` splits raw text into sentences and maps
tags back to entities with character offsets. :class:`Predicts` gives any tagger with ``tag``
(the torch :class:`~tagsure.tagger.Tagger` and the ONNX Runtime one) ``predict`` and
``evaluate``, so an ONNX model tags text without importing torch.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload

import numpy as np

from tagsure.data.batching import bucketed_batches
from tagsure.data.conll import Corpus, Sentence
from tagsure.data.schemes import OUTSIDE, Span, TagScheme, convert, to_spans
from tagsure.data.text import split_offsets
from tagsure.errors import InputError
from tagsure.evaluation.metrics import Metrics, MetricsAccumulator

T = TypeVar("T")
PREDICT_BATCH_SIZE = 256
EVALUATE_CHUNK = 4096  # sentences encoded at a time when streaming a corpus


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def decode_all(
    data: Any,
    decode: Callable[[Any], tuple[np.ndarray, np.ndarray | None]],
    labels: Sequence[str],
    model_scheme: TagScheme,
    output_scheme: TagScheme,
    with_scores: bool = False,
    batch_size: int = PREDICT_BATCH_SIZE,
    arrays: bool = False,
) -> tuple[list[list[str]], list[np.ndarray] | None]:
    """Each sentence's tags in the output scheme (and scores) from ``decode(batch)``'s (B, T)
    label path and scores (or None), ``batch_size`` sentences a batch: the torch and the ONNX
    tagger's one decode path. Batches are torch batches, or with ``arrays`` NumPy ones
    (:class:`~tagsure.data.batching.ArrayBatch`)."""
    tags: list[list[str]] = [[] for _ in range(len(data))]
    scores: list[np.ndarray] | None = [np.empty(0)] * len(data) if with_scores else None
    outside = labels.index(OUTSIDE) if OUTSIDE in labels else -1
    for ids in bucketed_batches(data.batch_lengths, batch_size):
        path, chosen = decode(data.arrays(ids) if arrays else data.batch(ids))
        for row, i in enumerate(ids):
            n = int(data.lengths[i])
            tags[i] = convert_path(path[row, :n], labels, outside, model_scheme, output_scheme)
            if scores is not None and chosen is not None:
                scores[i] = chosen[row, :n]
    return tags, scores


def convert_path(
    path: np.ndarray, labels: Sequence[str], outside: int, source: TagScheme, target: TagScheme
) -> list[str]:
    """``convert`` of a label-index path; a path of ``O`` only (``outside``) is returned as is."""
    ids = path.tolist()
    tags = [labels[j] for j in ids]
    if ids.count(outside) == len(ids):
        return tags
    return convert(tags, source, target)


def entity_spans(tags: list[str], scheme: TagScheme) -> list[Span]:
    """``to_spans(tags, scheme)``, at no cost for a sentence of ``O`` tags only."""
    if tags.count(OUTSIDE) == len(tags):
        return []
    return to_spans(tags, scheme)


@dataclass
class Entity:
    label: str
    text: str
    start: int  # first token index, or character offset for raw text
    end: int  # exclusive
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Prediction:
    tokens: list[str]
    tags: list[str]
    entities: list[Entity] = field(default_factory=list)
    offsets: list[tuple[int, int]] | None = None  # character spans of tokens in raw text


class Tags(Protocol):
    """What prediction needs of a tagger: the torch and the ONNX tagger both have it."""

    output_scheme: TagScheme

    def tag(
        self, sentences: Sequence[Sequence[str]], with_scores: bool = False, batch_size: int = ...
    ) -> tuple[list[list[str]], list[np.ndarray] | None]: ...


def predict_lazily(
    tagger: Tags, texts: Iterable[str | Sequence[str]], with_scores: bool, batch_size: int
) -> Iterator[Prediction]:
    """Predictions for a stream of inputs, lazily: ``batch_size`` inputs read and tagged at once."""
    for chunk in chunked(texts, batch_size):
        yield from predict_items(tagger, chunk, with_scores, batch_size)


def predict_items(
    tagger: Tags, items: Sequence[str | Sequence[str]], with_scores: bool, batch_size: int
) -> list[Prediction]:
    """One :class:`Prediction` per input: a raw string, or a list of tokens (see predict)."""
    # Each input becomes one or more sentences; remember which (and the token offsets of raw
    # text), to merge them back.
    sentences: list[list[str]] = []
    parts: list[list[tuple[int, list[int] | None, list[int] | None]]] = []
    for item in items:
        pieces: list[tuple[int, list[int] | None, list[int] | None]] = []
        if isinstance(item, str):
            for words, first, last in split_offsets(item):
                pieces.append((len(sentences), first, last))
                sentences.append(words)
        elif len(item):
            pieces.append((len(sentences), None, None))
            sentences.append(list(item))
        parts.append(pieces)
    tags, scores = tagger.tag(sentences, with_scores, batch_size)
    scheme = tagger.output_scheme
    results = []
    for item, pieces in zip(items, parts, strict=True):
        prediction = Prediction([], [], [], [] if isinstance(item, str) else None)
        for k, starts, ends in pieces:
            sentence_tags = tags[k]
            for span in entity_spans(sentence_tags, scheme):
                score = float(scores[k][span.start : span.end].mean()) if scores else None
                if starts is not None and ends is not None:
                    start, end = starts[span.start], ends[span.end - 1]
                    text = str(item)[start:end]
                else:
                    start, end = span.start, span.end
                    text = " ".join(sentences[k][span.start : span.end])
                prediction.entities.append(Entity(span.label, text, start, end, score))
            prediction.tokens.extend(sentences[k])
            prediction.tags.extend(sentence_tags)
            if starts is not None and ends is not None and prediction.offsets is not None:
                prediction.offsets.extend(zip(starts, ends, strict=True))
        results.append(prediction)
    return results


class Predicts:
    """``predict`` and ``evaluate`` for a tagger that has :class:`Tags`' ``tag``."""

    output_scheme: TagScheme

    def tag(
        self,
        sentences: Sequence[Sequence[str]],
        with_scores: bool = False,
        batch_size: int = PREDICT_BATCH_SIZE,
    ) -> tuple[list[list[str]], list[np.ndarray] | None]:
        raise NotImplementedError

    # The first that matches wins: a str is also a Sequence, and a Sequence an Iterable.
    @overload
    def predict(  # type: ignore[overload-overlap]
        self, texts: str, with_scores: bool = True, batch_size: int = PREDICT_BATCH_SIZE
    ) -> Prediction: ...
    @overload
    def predict(  # type: ignore[overload-overlap]
        self,
        texts: Sequence[str | Sequence[str]],
        with_scores: bool = True,
        batch_size: int = PREDICT_BATCH_SIZE,
    ) -> list[Prediction]: ...
    @overload
    def predict(
        self,
        texts: Iterable[str | Sequence[str]],
        with_scores: bool = True,
        batch_size: int = PREDICT_BATCH_SIZE,
    ) -> Iterator[Prediction]: ...
    def predict(
        self,
        texts: str | Iterable[str | Sequence[str]],
        with_scores: bool = True,
        batch_size: int = PREDICT_BATCH_SIZE,
    ) -> Prediction | list[Prediction] | Iterator[Prediction]:
        """Tag one text, a list of them, or a stream of them (as Hugging Face's pipeline does).

        A string is one text and gives one :class:`Prediction`; a list (or tuple) gives a list,
        one per item; any other iterable (a generator, an open file) gives an iterator that
        reads and tags ``batch_size`` items at a time, so memory does not grow with the input.
        An item that is a string is split into sentences and tokens (segtok) and its entities
        carry character offsets into it; an item that is a list of tokens is tagged as one
        sentence and its entities carry token indices. The network runs ``batch_size``
        sentences at a time. Entity scores are the mean marginal probability of their tags.

        Example:
            >>> tagger.predict("Angela Merkel visited Paris.").entities    # doctest: +SKIP
            [Entity(label='PER', text='Angela Merkel', start=0, end=13, score=0.98), ...]
            >>> tagger.predict([["Angela", "Merkel"], "Paris."])            # doctest: +SKIP
            [Prediction(tokens=['Angela', 'Merkel'], ...), Prediction(tokens=['Paris', '.'], ...)]
            >>> for p in tagger.predict(open("docs.txt"), batch_size=64):   # doctest: +SKIP
            ...     print(p.entities)
        """
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, not {batch_size}")
        if isinstance(texts, str):
            return predict_items(self, [texts], with_scores, batch_size)[0]
        if isinstance(texts, Sequence):
            return predict_items(self, texts, with_scores, batch_size)
        return predict_lazily(self, texts, with_scores, batch_size)

    def evaluate(
        self,
        corpus: Corpus | Iterable[Sentence],
        on_tagged: Callable[[Sentence, list[str]], None] | None = None,
    ) -> Metrics:
        """Entity-level metrics (as conlleval counts them) on a corpus or a stream of sentences,
        consumed in chunks (as :func:`tagsure.read_conll` yields them); ``on_tagged(sentence,
        predicted_tags)`` sees each sentence as it is scored (``evaluate --html`` draws it)."""
        sentences = corpus.sentences if isinstance(corpus, Corpus) else corpus
        accumulator = MetricsAccumulator()
        for chunk in chunked(sentences, EVALUATE_CHUNK):
            if any(s.tags is None for s in chunk):
                raise InputError("evaluation needs a tag column in the corpus")
            predicted, _ = self.tag([s.tokens for s in chunk])
            for sentence, tags in zip(chunk, predicted, strict=True):
                accumulator.add(sentence.tags or [], tags)
                if on_tagged is not None:
                    on_tagged(sentence, tags)
        return accumulator.result()
