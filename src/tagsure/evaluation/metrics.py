"""Entity-level precision, recall and F1, counted exactly as conlleval counts them.

conlleval (the CoNLL-2000/2003 evaluation script) cuts each tag sequence into chunks with two
predicates on (previous tag, tag, previous type, type), ``endOfChunk`` and ``startOfChunk``,
and counts a predicted chunk as correct when a gold chunk has the same start, end and type.
Sentence boundaries close every chunk. Token accuracy is the share of tokens whose predicted tag
equals the gold tag. Ill-formed sequences are not errors: an ``I-X`` after ``O`` or after
``B-Y`` opens a chunk, so a tagger is scored on what its output means, not on its syntax.

The chunks are :func:`tagsure.data.schemes.decode_spans`', the one span decoder. For
``B-``/``I-``/``E-``/``O`` tags (IOB1, IOB2, IOE) its rules give conlleval.pl's (version
2004-01-26) chunks to the letter. That script predates BIOES and has no ``S-`` rule, and no
rule ending a chunk at ``B-`` after ``E-``: it reads ``S-PER S-PER`` and ``B-PER E-PER B-PER
E-PER`` as one entity each. There we follow seqeval's default mode, the de-facto extension
(``E-``/``S-`` end a chunk, ``B-``/``S-`` start one), and read BILOU's ``L-``/``U-`` as
``E-``/``S-``. Types may contain dashes; only the first dash splits (as in conlleval 2004).

Example:
    >>> m = evaluate([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    >>> m.micro.precision, m.micro.recall, m.accuracy
    (0.5, 0.5, 0.75)
    >>> sorted(m.per_type)
    ['LOC', 'ORG', 'PER']
"""

from __future__ import annotations

import dataclasses
import operator
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tagsure.data.schemes import decode_spans, split_tag
from tagsure.errors import TagError


@dataclass
class PRF:
    """Precision, recall and F1 as fractions in [0, 1], with the counts they come from.

    A ratio whose denominator is 0 is 0.0 (conlleval prints 0.00 there too).

    Example:
        >>> PRF.from_counts(true_positives=3, predicted=4, gold=6).f1
        0.6
    """

    precision: float
    recall: float
    f1: float
    true_positives: int
    predicted: int
    gold: int

    @classmethod
    def from_counts(cls, true_positives: int, predicted: int, gold: int) -> PRF:
        """Scores from counts; F1 is 2PR/(P+R), evaluated in that order as seqeval does."""
        precision = true_positives / predicted if predicted else 0.0
        recall = true_positives / gold if gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, true_positives, predicted, gold)

    def to_dict(self) -> dict[str, float | int]:
        """Plain JSON-ready values.

        Example:
            >>> PRF.from_counts(1, 2, 1).to_dict()["precision"]
            0.5
        """
        return dataclasses.asdict(self)


@dataclass
class Metrics:
    """Micro-averaged and per-type entity scores plus token accuracy over a corpus.

    Example:
        >>> m = evaluate([["B-PER", "O"]], [["B-PER", "O"]])
        >>> m.to_dict()["micro"]["f1"], m.sentences, m.tokens
        (1.0, 1, 2)
    """

    micro: PRF
    per_type: dict[str, PRF] = field(default_factory=dict)
    accuracy: float = 0.0
    sentences: int = 0
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        """``{"micro": {...}, "per_type": {TYPE: {...}}, "accuracy": float}``."""
        return {
            "micro": self.micro.to_dict(),
            "per_type": {name: prf.to_dict() for name, prf in self.per_type.items()},
            "accuracy": self.accuracy,
        }

    def format_table(self) -> str:
        """The report conlleval prints, character for character (ending with a newline).

        The per-type lines end with the number of *predicted* entities of the type, as in
        conlleval; percentages are recomputed from the counts the way conlleval computes them.

        Example:
            >>> print(evaluate([["B-PER", "O"]], [["B-PER", "B-LOC"]]).format_table(), end="")
            processed 2 tokens with 1 phrases; found: 2 phrases; correct: 1.
            accuracy:  50.00%; precision:  50.00%; recall: 100.00%; FB1:  66.67
                          LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1
                          PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  1
        """
        m = self.micro
        lines = [
            f"processed {self.tokens} tokens with {m.gold} phrases; "
            f"found: {m.predicted} phrases; correct: {m.true_positives}."
        ]
        if self.tokens > 0:
            # accuracy is correct/tokens with tokens < 2**53, so rounding recovers `correct`.
            correct_tags = round(self.accuracy * self.tokens)
            p, r, f = _percentages(m)
            lines.append(
                f"accuracy: {100 * correct_tags / self.tokens:6.2f}%; "
                f"precision: {p:6.2f}%; recall: {r:6.2f}%; FB1: {f:6.2f}"
            )
        for name in sorted(self.per_type):
            prf = self.per_type[name]
            p, r, f = _percentages(prf)
            lines.append(
                f"{name:>17s}: precision: {p:6.2f}%; recall: {r:6.2f}%; "
                f"FB1: {f:6.2f}  {prf.predicted}"
            )
        return "\n".join(lines) + "\n"


def _percentages(prf: PRF) -> tuple[float, float, float]:
    # conlleval scales before dividing (100*correct/found); doing the same keeps the printed
    # digits identical even where the last bit of the fraction would round differently.
    p = 100 * prf.true_positives / prf.predicted if prf.predicted else 0.0
    r = 100 * prf.true_positives / prf.gold if prf.gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _chunks(tags: Sequence[str], sentence: int, side: str) -> list[tuple[str, int, int]]:
    """conlleval's chunks of one sentence, as (type, start, end) with ``end`` exclusive."""
    try:
        return decode_spans(tags)
    except TagError:  # find the token to name; the common path parses each tag once
        for i, tag in enumerate(tags):
            try:
                split_tag(tag)
            except TagError as err:
                raise TagError(f"sentence {sentence}, token {i} ({side}): {err}") from None
        raise


class MetricsAccumulator:
    """Streams sentences into entity counts, so a corpus need not be held in memory.

    Example:
        >>> acc = MetricsAccumulator()
        >>> acc.add(["B-PER", "I-PER"], ["B-PER", "O"])
        >>> acc.add(["O", "B-LOC"], ["O", "B-LOC"])
        >>> acc.result().micro.true_positives
        1
    """

    def __init__(self) -> None:
        self._true_positives: Counter[str] = Counter()
        self._predicted: Counter[str] = Counter()
        self._gold: Counter[str] = Counter()
        self._correct_tags = 0
        self._tokens = 0
        self._sentences = 0

    def add(self, gold_tags: Sequence[str], predicted_tags: Sequence[str]) -> None:
        """Count one sentence; raises :class:`ValueError` (state unchanged) on bad input."""
        index = self._sentences
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(
                f"sentence {index}: gold has {len(gold_tags)} tags "
                f"but predicted has {len(predicted_tags)}"
            )
        gold = _chunks(gold_tags, index, "gold")
        predicted = _chunks(predicted_tags, index, "predicted")
        # Chunks of one sequence are disjoint, so a set intersection counts exact matches.
        self._true_positives.update(c[0] for c in set(gold).intersection(predicted))
        self._gold.update(c[0] for c in gold)
        self._predicted.update(c[0] for c in predicted)
        self._correct_tags += sum(map(operator.eq, gold_tags, predicted_tags))
        self._tokens += len(gold_tags)
        self._sentences += 1

    def merge(self, other: MetricsAccumulator) -> None:
        """Add ``other``'s counts (of other sentences): a corpus scored in shards sums them."""
        self._true_positives.update(other._true_positives)
        self._predicted.update(other._predicted)
        self._gold.update(other._gold)
        self._correct_tags += other._correct_tags
        self._tokens += other._tokens
        self._sentences += other._sentences

    def result(self) -> Metrics:
        """The scores so far; adding more sentences afterwards is fine."""
        types = sorted(self._gold.keys() | self._predicted.keys())
        per_type = {
            t: PRF.from_counts(self._true_positives[t], self._predicted[t], self._gold[t])
            for t in types
        }
        micro = PRF.from_counts(
            sum(self._true_positives.values()),
            sum(self._predicted.values()),
            sum(self._gold.values()),
        )
        accuracy = self._correct_tags / self._tokens if self._tokens else 0.0
        return Metrics(micro, per_type, accuracy, self._sentences, self._tokens)


def evaluate(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> Metrics:
    """Score predicted tag sequences against gold ones, sentence by sentence.

    Raises :class:`ValueError` when the sentence counts differ, when a sentence's lengths differ
    (naming the sentence and both lengths), or when a tag cannot be read.

    Example:
        >>> evaluate([["I-PER", "O"]], [["B-PER", "O"]]).micro.f1  # same entity, I- after O
        1.0
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} sentences but predicted has {len(predicted)}")
    accumulator = MetricsAccumulator()
    for gold_tags, predicted_tags in zip(gold, predicted, strict=True):
        accumulator.add(gold_tags, predicted_tags)
    return accumulator.result()
