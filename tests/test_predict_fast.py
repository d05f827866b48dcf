"""The fast raw-text path gives what the per-token reference path gave: the same tokens,
offsets, tags, entities and scores (the reference is the code before the speed-up)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tagsure import Tagger
from tagsure.data.schemes import TagScheme, convert, label_set, to_spans
from tagsure.prediction import Entity, Prediction, convert_path, predict_items
from tests.test_tokenize import TRICKY, corpus_texts, reference_split


def reference_predict(tagger, items, with_scores: bool) -> list[Prediction]:  # noqa: ANN001
    """predict_items as it was: Token-like triples, to_spans over every sentence."""
    sentences: list[list[str]] = []
    parts = []
    for item in items:
        pieces = []
        if isinstance(item, str):
            for toks in reference_split(item):
                pieces.append((len(sentences), toks))
                sentences.append([t[0] for t in toks])
        elif len(item):
            pieces.append((len(sentences), None))
            sentences.append(list(item))
        parts.append(pieces)
    tags, scores = tagger.tag(sentences, with_scores, 256)
    results = []
    for item, pieces in zip(items, parts, strict=True):
        prediction = Prediction([], [], [], [] if isinstance(item, str) else None)
        for k, tokens in pieces:
            for span in to_spans(tags[k], tagger.output_scheme):
                score = float(scores[k][span.start : span.end].mean()) if scores else None
                if tokens is not None:
                    start, end = tokens[span.start][1], tokens[span.end - 1][2]
                    text = str(item)[start:end]
                else:
                    start, end = span.start, span.end
                    text = " ".join(sentences[k][span.start : span.end])
                prediction.entities.append(Entity(span.label, text, start, end, score))
            prediction.tokens.extend(sentences[k])
            prediction.tags.extend(tags[k])
            if tokens is not None and prediction.offsets is not None:
                prediction.offsets.extend((t[1], t[2]) for t in tokens)
        results.append(prediction)
    return results


class RandomTagger:
    """Tags and scores drawn from each sentence's text: many entities, some ill-formed runs."""

    output_scheme = TagScheme.IOB2
    labels = label_set(["PER", "LOC", "ORG"], "IOB2")

    def tag(
        self, sentences: Sequence[Sequence[str]], with_scores: bool = False, batch_size: int = 256
    ) -> tuple[list[list[str]], list[np.ndarray] | None]:
        tags, scores = [], []
        for sentence in sentences:
            rng = random.Random(" ".join(sentence))
            tags.append([rng.choice(self.labels + ["O"] * 4) for _ in sentence])
            scores.append(np.array([rng.random() for _ in sentence], dtype=np.float32))
        return tags, (scores if with_scores else None)


def inputs() -> list[str | list[str]]:
    return [*TRICKY, *corpus_texts()[:40], ["Ann", "met", "Bob"], [], "", "  ", ["x"]]


@pytest.mark.parametrize("with_scores", [True, False])
def test_same_predictions_as_the_reference_path(with_scores: bool) -> None:
    items = inputs()
    assert predict_items(RandomTagger(), items, with_scores, 256) == reference_predict(
        RandomTagger(), items, with_scores
    )


def test_same_predictions_with_a_trained_tagger(tiny_model: Path) -> None:
    tagger = Tagger.load(tiny_model)
    items = inputs()
    assert tagger.predict(items) == reference_predict(tagger, items, True)
    assert tagger.predict(items, with_scores=False) == reference_predict(tagger, items, False)


@pytest.mark.parametrize("source", ["BIOES", "IOB2", "IOB1", "BILOU"])
def test_convert_path_is_convert(source: str) -> None:
    labels = label_set(["PER", "LOC"], source)
    rng = np.random.default_rng(7)
    for _ in range(300):
        # mostly O, so there are stretches; ill-formed ones too (the head may be a softmax)
        path = rng.integers(0, len(labels), rng.integers(1, 30))
        path[rng.random(len(path)) < 0.5] = labels.index("O")
        tags = [labels[j] for j in path]
        for target in ("IOB1", "IOB2", "BIOES"):
            s, t = TagScheme.parse(source), TagScheme.parse(target)
            assert convert_path(path, labels, labels.index("O"), s, t) == convert(tags, s, t)
