"""Server batches tagged in groups of similar length: the groups, and the same answers as one
``Tagger.predict`` call on the whole batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagsure import Tagger, load_corpus
from tagsure.serving.grouping import GROUP_RATIO, group_ratio, grouped, length_groups
from tests.helpers import BUNDLED


def test_length_groups_cut_where_the_length_falls_below_the_ratio() -> None:
    lengths = [3, 40, 10, 38, 9, 30, 2, 4, 11, 100]
    groups = length_groups(lengths, ratio=0.7, min_group=2)
    assert [[lengths[i] for i in g] for g in groups] == [
        [100, 40],
        [38, 30],
        [11, 10, 9],
        [4, 3],
        [2],
    ]
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    # min_group: a run keeps taking sentences until it has that many, whatever their length.
    assert [len(g) for g in length_groups(lengths, ratio=0.7, min_group=4)] == [4, 4, 2]
    assert length_groups([]) == []


def test_grouped_calls_once_per_group_and_keeps_the_input_order() -> None:
    calls: list[list[int]] = []

    def predict(sentences: list[list[str]]) -> list[int]:
        calls.append([len(s) for s in sentences])
        return [len(s) for s in sentences]

    sentences = [["w"] * n for n in (5, 50, 6, 48, 7, 45, 4, 49)]
    assert grouped(predict, ratio=0.5, min_group=2)(sentences) == [5, 50, 6, 48, 7, 45, 4, 49]
    assert calls == [[50, 49, 48, 45], [7, 6, 5, 4]]


@pytest.mark.parametrize("ratio", [0.4, 0.7, 0.99])
def test_grouped_tagging_gives_the_answers_of_one_call(tiny_model: Path, ratio: float) -> None:
    tagger = Tagger.load(tiny_model)
    corpus = load_corpus(BUNDLED / "wikiann-en-test.txt").sentences[:120]
    # A server batch: short and long sentences mixed (some made long by joining several).
    sentences = [
        [w for s in corpus[i : i + 1 + (i % 7) * (i % 3)] for w in s.tokens] for i in range(60)
    ]
    assert max(map(len, sentences)) > 4 * min(map(len, sentences))
    whole = tagger.predict(sentences)
    parts = grouped(tagger.predict, ratio=ratio)(sentences)
    assert [p.tags for p in parts] == [p.tags for p in whole]
    assert sum(len(p.entities) for p in whole) > 0  # a test that can fail
    for a, b in zip(parts, whole, strict=True):
        assert [(e.label, e.start, e.end) for e in a.entities] == [
            (e.label, e.start, e.end) for e in b.entities
        ]
        assert [e.score for e in a.entities] == pytest.approx(
            [e.score for e in b.entities], abs=1e-6
        )


def test_the_server_groups_by_the_networks_own_ratio(tiny_model: Path) -> None:
    """A recurrent body takes fewer, more padded groups; a tagger without a torch network
    (the ONNX one) the default."""
    assert group_ratio(Tagger.load(tiny_model)) == 0.4  # the BiLSTM-CRF's
    assert group_ratio(object()) == GROUP_RATIO == 0.7
