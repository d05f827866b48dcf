"""Tag schemes: decoding tags into entity spans, encoding spans back, and checking sequences.

Four schemes are supported. Each tag is ``O`` or ``PREFIX-TYPE`` (the type may itself contain
dashes: only the first dash separates):

========  ===============================================================================
IOB1      ``I-`` for every entity token; ``B-`` only on the first token of an entity that
          directly follows another entity of the same type (CoNLL-2003 as released).
IOB2      ``B-`` on the first token of every entity, ``I-`` inside (alias ``BIO``).
BIOES     ``B-`` first, ``I-`` inside, ``E-`` last, ``S-`` single-token entity (alias ``IOBES``).
BILOU     BIOES with ``L-`` for ``E-`` and ``U-`` for ``S-``.
========  ===============================================================================

Decoding (:func:`decode_spans`) is tolerant in the way conlleval is, so that what a softmax
tagger predicts still means something; :func:`validate` is the strict side.

Example:
    >>> tags = ["B-PER", "I-PER", "O", "B-LOC"]
    >>> to_spans(tags, "IOB2")
    [Span(label='PER', start=0, end=2), Span(label='LOC', start=3, end=4)]
    >>> convert(tags, TagScheme.IOB2, TagScheme.BIOES)
    ['B-PER', 'E-PER', 'O', 'S-LOC']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from tagsure.errors import ConfigError, TagError

OUTSIDE = "O"
PREFIXES = ("B", "I", "E", "S", "L", "U")


class TagScheme(StrEnum):
    """A tag scheme (a ``str``: the value is the canonical name, stored in model files).

    Example:
        >>> TagScheme.parse("bio")
        <TagScheme.IOB2: 'IOB2'>
    """

    IOB1 = "IOB1"
    IOB2 = "IOB2"
    BIOES = "BIOES"
    BILOU = "BILOU"

    @classmethod
    def parse(cls, name: str | TagScheme) -> TagScheme:
        """The scheme called ``name``, case-insensitively, accepting ``BIO`` and ``IOBES``.

        Example:
            >>> TagScheme.parse("IOBES").value
            'BIOES'
        """
        if isinstance(name, TagScheme):
            return name
        key = str(name).strip().upper()
        key = _ALIASES.get(key, key)
        try:
            return cls(key)
        except ValueError:
            valid = ", ".join(
                [s.value for s in cls] + [f"{a} (= {t})" for a, t in _ALIASES.items()]
            )
            raise ConfigError(f"unknown tag scheme {name!r}; valid names: {valid}") from None

    @property
    def prefixes(self) -> frozenset[str]:
        """The prefixes a tag of this scheme may carry (``O`` has none)."""
        return _SCHEME_PREFIXES[self]


_ALIASES = {"BIO": "IOB2", "IOBES": "BIOES"}
# In the order a label set lists them (see `label_set`).
_ORDERED_PREFIXES = {
    TagScheme.IOB1: "BI",
    TagScheme.IOB2: "BI",
    TagScheme.BIOES: "BIES",
    TagScheme.BILOU: "BILU",
}
_SCHEME_PREFIXES = {scheme: frozenset(p) for scheme, p in _ORDERED_PREFIXES.items()}
# The prefix closing a multi-token entity and the one marking a single-token entity; the
# IOB schemes have neither, which is what the rules below key on.
_LAST = {TagScheme.BIOES: "E", TagScheme.BILOU: "L"}
_UNIT = {TagScheme.BIOES: "S", TagScheme.BILOU: "U"}


def label_set(types: Iterable[str], scheme: TagScheme | str) -> list[str]:
    """Every label ``scheme`` can produce for these entity types, ``O`` first.

    Example:
        >>> label_set(["LOC", "PER"], "BIO")
        ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
    """
    prefixes = _ORDERED_PREFIXES[TagScheme.parse(scheme)]
    return [OUTSIDE] + [f"{p}-{t}" for t in types for p in prefixes]


@dataclass(frozen=True)
class Span:
    """An entity: its type and its token range ``[start, end)``.

    Example:
        >>> Span("PER", 0, 2)
        Span(label='PER', start=0, end=2)
    """

    label: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"a span needs 0 <= start < end, got {self}")


def split_tag(tag: str) -> tuple[str, str | None]:
    """Split a tag into its prefix and its type; ``O`` has no type.

    Raises :class:`~tagsure.errors.TagError` naming the tag when it is neither ``O`` nor one of
    ``B- I- E- S- L- U-`` followed by a non-empty type (callers add the file and line).

    Example:
        >>> split_tag("B-PER"), split_tag("O"), split_tag("I-WORK-OF-ART")
        (('B', 'PER'), ('O', None), ('I', 'WORK-OF-ART'))
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, dash, label = tag.partition("-")
    if not dash or prefix not in PREFIXES or not label:
        raise TagError(
            f"invalid tag {tag!r}: expected 'O' or one of the prefixes "
            f"{', '.join(p + '-' for p in PREFIXES)} followed by an entity type"
        )
    return prefix, label


# Corpora repeat a handful of tags millions of times; parse each once (errors are not cached).
_split = lru_cache(maxsize=4096)(split_tag)


def _split_all(
    tags: Sequence[str], scheme: TagScheme, name: str = "token {i}: {tag}"
) -> list[tuple[str, str | None]]:
    """Split every tag, rejecting prefixes that ``scheme`` does not have."""
    parts = []
    allowed = scheme.prefixes
    for i, tag in enumerate(tags):
        prefix, label = _split(tag)
        if label is not None and prefix not in allowed:
            where = name.format(i=i, tag=tag)
            raise TagError(f"{where} is not a tag of the {scheme.value} scheme")
        parts.append((prefix, label))
    return parts


def detect_scheme(sequences: Iterable[Sequence[str]], *, ordered: bool = True) -> TagScheme:
    """Guess the scheme of tagged sentences from the prefixes they use; the one place that does.

    ``E-``/``S-`` mean BIOES and ``L-``/``U-`` mean BILOU (both at once is an error). With only
    ``B-``/``I-``, the data is IOB1 when some entity opens with ``I-`` (at the sentence start or
    after ``O``) and every ``B-X`` directly follows an ``I-X`` or ``B-X``; otherwise IOB2, which is
    also the answer for data without entities. ``ordered=False`` reads each sequence as a set of
    labels (a model's label inventory), whose order says nothing, so IOB1 is never guessed.

    Example:
        >>> detect_scheme([["I-PER", "I-PER", "B-PER", "O"]]).value
        'IOB1'
        >>> detect_scheme([["O", "I-PER", "B-PER"]], ordered=False).value
        'IOB2'
    """
    seen: set[str] = set()
    opens_with_i = False  # evidence for IOB1
    b_after_other = False  # a B- that IOB1 would not write: evidence against it
    for tags in sequences:
        prev_prefix, prev_label = OUTSIDE, None
        for tag in tags:
            prefix, label = _split(tag)
            seen.add(prefix)
            if prefix == "I" and prev_prefix == OUTSIDE:
                opens_with_i = True
            elif prefix == "B" and not (prev_prefix in ("B", "I") and prev_label == label):
                b_after_other = True
            prev_prefix, prev_label = prefix, label
    bioes, bilou = bool(seen & {"E", "S"}), bool(seen & {"L", "U"})
    if bioes and bilou:
        raise TagError("the tags mix BIOES (E-, S-) and BILOU (L-, U-) prefixes; use one scheme")
    if bioes:
        return TagScheme.BIOES
    if bilou:
        return TagScheme.BILOU
    if ordered and opens_with_i and not b_after_other:
        return TagScheme.IOB1
    return TagScheme.IOB2


def to_spans(tags: Sequence[str], scheme: TagScheme | str) -> list[Span]:
    """Decode one sentence's tags into entity spans, tolerating ill-formed sequences.

    The rules are :func:`decode_spans`'s; a prefix the scheme lacks (``E-`` in IOB2, say)
    raises :class:`~tagsure.errors.TagError`.

    Example:
        >>> spans = to_spans(["O", "I-PER", "B-LOC", "E-LOC", "E-LOC"], "BIOES")
        >>> [(s.label, s.start, s.end) for s in spans]
        [('PER', 1, 2), ('LOC', 2, 4), ('LOC', 4, 5)]
    """
    _split_all(tags, TagScheme.parse(scheme))  # the prefix check; the parse is cached
    return [Span(label, start, end) for label, start, end in decode_spans(tags)]


def decode_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence as ``(type, start, end)``, whatever prefixes it mixes.

    The one span decoder: :func:`to_spans` and the metrics both use it. The rules are
    conlleval's (and seqeval's default mode, which extends them to ``E-``/``S-``):

    * ``B-X`` always starts a new entity; ``S-X``/``U-X`` is always a one-token entity.
    * ``I-X`` continues the open entity if it has type ``X``, else starts a new one (so ``I-X``
      after ``O`` or after ``B-Y`` opens an entity rather than being dropped).
    * ``E-X``/``L-X`` closes the open ``X`` entity, or else is a one-token entity.
    * ``O`` and the sentence end close whatever is open, even a ``B-`` never closed in BIOES.

    IOB1 and IOB2 therefore decode identically. An unreadable tag raises
    :class:`~tagsure.errors.TagError`.

    Example:
        >>> decode_spans(["B-PER", "E-PER", "I-LOC", "O"])
        [('PER', 0, 2), ('LOC', 2, 3)]
    """
    spans: list[tuple[str, int, int]] = []
    open_label: str | None = None  # type of the entity that the next tag may continue
    start = 0
    for i, (prefix, label) in enumerate(map(_split, tags)):
        if not (label is not None and label == open_label and prefix in _CONTINUE):
            if open_label is not None:
                spans.append((open_label, start, i))
            open_label, start = label, i
        if open_label is not None and prefix in _CLOSE:  # they close on their own token
            spans.append((open_label, start, i + 1))
            open_label = None
    if open_label is not None:
        spans.append((open_label, start, len(tags)))
    return spans


_CONTINUE = frozenset("IEL")  # prefixes that continue an open entity of their type
_CLOSE = frozenset("ELSU")  # prefixes that end an entity on their own token


def from_spans(spans: Iterable[Span], length: int, scheme: TagScheme | str) -> list[str]:
    """Encode non-overlapping spans as the well-formed tags of a ``length``-token sentence.

    Example:
        >>> from_spans([Span("PER", 0, 2), Span("PER", 2, 3)], 4, "IOB1")
        ['I-PER', 'I-PER', 'B-PER', 'O']
    """
    scheme = TagScheme.parse(scheme)
    tags = [OUTSIDE] * length
    previous: Span | None = None
    for span in sorted(spans, key=lambda s: s.start):
        if span.end > length:
            raise ValueError(f"{span} does not fit in a sentence of {length} tokens")
        if previous is not None and span.start < previous.end:
            raise ValueError(f"{span} overlaps {previous}")
        n = span.end - span.start
        if scheme is TagScheme.IOB1:
            # B- only where an entity touches a previous one of the same type: with I- the
            # two would read as one entity.
            before = (previous.end, previous.label) if previous is not None else None
            prefixes = ["B" if before == (span.start, span.label) else "I"] + ["I"] * (n - 1)
        elif scheme is TagScheme.IOB2:
            prefixes = ["B"] + ["I"] * (n - 1)
        elif n == 1:
            prefixes = [_UNIT[scheme]]
        else:
            prefixes = ["B"] + ["I"] * (n - 2) + [_LAST[scheme]]
        tags[span.start : span.end] = [f"{p}-{span.label}" for p in prefixes]
        previous = span
    return tags


def convert(tags: Sequence[str], source: TagScheme | str, target: TagScheme | str) -> list[str]:
    """Re-tag a sentence from ``source`` to ``target`` through its spans.

    Ill-formed input comes out well formed, repaired the conlleval way (see :func:`to_spans`);
    this holds even when ``source`` and ``target`` are the same scheme.

    Example:
        >>> convert(["O", "I-PER", "I-PER", "B-PER"], "IOB1", "BILOU")
        ['O', 'B-PER', 'L-PER', 'U-PER']
    """
    return from_spans(to_spans(tags, source), len(tags), target)


# -- well-formedness ----------------------------------------------------------------------------
#
# One set of rules, stated on (prefix, type) pairs, serves `validate` (which explains the
# violations) and the allowed_* functions (which give a CRF the pairs it may use). Each rule
# returns None when the step is fine, else the reason.


def _start_problem(prefix: str, scheme: TagScheme) -> str | None:
    if scheme is TagScheme.IOB1:
        if prefix == "B":
            return "in IOB1, B- only separates two adjacent entities of the same type"
        return None
    if prefix in ("I", _LAST.get(scheme)):
        opener = "B-" if scheme is TagScheme.IOB2 else f"B- or {_UNIT[scheme]}-"
        return f"an entity must start with {opener} in {scheme.value}"
    return None


def _transition_problem(
    prev: tuple[str, str | None], cur: tuple[str, str | None], scheme: TagScheme
) -> str | None:
    (prev_prefix, prev_label), (prefix, label) = prev, cur
    if scheme is TagScheme.IOB1:
        if prefix == "B" and not (prev_prefix in ("B", "I") and prev_label == label):
            return "in IOB1, B- only separates two adjacent entities of the same type"
        return None
    if scheme is TagScheme.IOB2:
        if prefix == "I" and not (prev_prefix in ("B", "I") and prev_label == label):
            return "an entity must start with B- in IOB2"
        return None
    last = _LAST[scheme]
    if prev_prefix in ("B", "I"):  # an entity is open: only its own I-/E- may follow
        if prefix in ("I", last) and label == prev_label:
            return None
        return (
            f"the open {prev_label} entity must continue with I-{prev_label} "
            f"or end with {last}-{prev_label} in {scheme.value}"
        )
    return _start_problem(prefix, scheme)


def _end_problem(prefix: str, label: str | None, scheme: TagScheme) -> str | None:
    if scheme in _LAST and prefix in ("B", "I"):
        return f"the entity must end with {_LAST[scheme]}-{label} in {scheme.value}"
    return None


def validate(tags: Sequence[str], scheme: TagScheme | str) -> list[str]:
    """Every way ``tags`` is not a well-formed sentence of ``scheme``; empty when it is.

    Each problem names the token position (0-based). Tags that cannot be parsed, or that carry
    a prefix the scheme lacks, are reported too; the transition checks skip them.

    Example:
        >>> validate(["B-PER", "O", "I-PER"], "IOB2")
        ['token 2: I-PER follows O (an entity must start with B- in IOB2)']
    """
    scheme = TagScheme.parse(scheme)
    problems: list[str] = []
    # The previous tag, or None at the sentence start and after an unusable tag (a transition
    # from a tag we could not read has nothing sensible to be checked against).
    prev: tuple[str, str | None] | None = None
    for i, tag in enumerate(tags):
        try:
            prefix, label = _split(tag)
        except ValueError as err:
            problems.append(f"token {i}: {err}")
            prev = None
            continue
        if label is not None and prefix not in scheme.prefixes:
            problems.append(f"token {i}: {tag} is not a tag of the {scheme.value} scheme")
            prev = None
            continue
        if i == 0:
            reason = _start_problem(prefix, scheme)
            if reason is not None:
                problems.append(f"token 0: {tag} at sentence start ({reason})")
        elif prev is not None:
            reason = _transition_problem(prev, (prefix, label), scheme)
            if reason is not None:
                shown = OUTSIDE if prev[1] is None else f"{prev[0]}-{prev[1]}"
                problems.append(f"token {i}: {tag} follows {shown} ({reason})")
        prev = (prefix, label)
    if prev is not None:
        reason = _end_problem(prev[0], prev[1], scheme)
        if reason is not None:
            problems.append(f"token {len(tags) - 1}: {tags[-1]} ends the sentence ({reason})")
    return problems


_LABEL = "label {i} ({tag})"


def allowed_transitions(labels: Sequence[str], scheme: TagScheme | str) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` such that ``labels[j]`` may directly follow ``labels[i]``.

    These are the transitions of well-formed ``scheme`` sentences, which a CRF can restrict
    itself to. Raises :class:`ValueError` for a label outside the scheme.

    Example:
        >>> allowed_transitions(["O", "B-PER", "I-PER"], "IOB2")
        [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    """
    scheme = TagScheme.parse(scheme)
    parts = _split_all(labels, scheme, _LABEL)
    return [
        (i, j)
        for i, prev in enumerate(parts)
        for j, cur in enumerate(parts)
        if _transition_problem(prev, cur, scheme) is None
    ]


def allowed_starts(labels: Sequence[str], scheme: TagScheme | str) -> list[int]:
    """Indices of the labels a well-formed ``scheme`` sentence may start with.

    Example:
        >>> allowed_starts(["O", "B-PER", "I-PER"], "IOB2")
        [0, 1]
    """
    scheme = TagScheme.parse(scheme)
    parts = _split_all(labels, scheme, _LABEL)
    return [i for i, (prefix, _) in enumerate(parts) if _start_problem(prefix, scheme) is None]


def allowed_ends(labels: Sequence[str], scheme: TagScheme | str) -> list[int]:
    """Indices of the labels a well-formed ``scheme`` sentence may end with.

    Example:
        >>> allowed_ends(["O", "B-PER", "E-PER", "S-PER"], "BIOES")
        [0, 2, 3]
    """
    scheme = TagScheme.parse(scheme)
    parts = _split_all(labels, scheme, _LABEL)
    return [i for i, (p, kind) in enumerate(parts) if _end_problem(p, kind, scheme) is None]
