"""A batch of many requests' sentences, tagged in groups of similar length.

A server batch mixes sentences of every length (a 5-word headline beside a 300-word run-on), and
a network pads every sentence of a batch to the longest one: on CoNLL-2003 documents half of a
mixed batch's cells were padding, and the BiLSTM-CRF ran at half speed. So :func:`grouped` sorts
the batch longest first and cuts it into runs whose shortest sentence is at least ``ratio`` of
their longest (and at least ``min_group`` sentences, so a long tail of single sentences doesn't
pay one call each), calls the model once per run, and puts the predictions back in input order.
The ratio is the network's own (``group_ratio`` of models/frame.py): 0.7 for the transformers
(padding costs them attention over every padded cell), 0.4 for the BiLSTM-CRF, which pays per
call and per time step (docs/benchmarks.md); an ONNX tagger takes 0.7.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Predict = Callable[[list[list[str]]], list[Any]]
GROUP_RATIO = 0.7


def group_ratio(tagger: Any) -> float:
    """The ratio of the tagger's network (its ``group_ratio``), or :data:`GROUP_RATIO`."""
    return float(getattr(getattr(tagger, "model", None), "group_ratio", GROUP_RATIO))


def length_groups(
    lengths: Sequence[int], ratio: float = GROUP_RATIO, min_group: int = 4
) -> list[list[int]]:
    """Indices of ``lengths`` as runs of similar length, longest first."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and (len(groups[-1]) < min_group or lengths[i] >= ratio * lengths[groups[-1][0]]):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def grouped(predict: Predict, ratio: float = GROUP_RATIO, min_group: int = 4) -> Predict:
    """``predict`` run once per group of similar length; predictions in input order."""

    def run(sentences: list[list[str]]) -> list[Any]:
        out: list[Any] = [None] * len(sentences)
        for group in length_groups([len(s) for s in sentences], ratio, min_group):
            for i, prediction in zip(group, predict([sentences[i] for i in group]), strict=True):
                out[i] = prediction
        return out

    return run
