"""Tag schemes: names, tag parsing, detection, decoding, encoding, validation, CRF constraints.

Decoding is checked against seqeval's get_entities (default mode, which chunks as conlleval
does), and well-formedness three ways that must agree on every short sequence: validate(),
the allowed_* constraints, and "encoding the decoded spans gives the sequence back".
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import re
import warnings
from pathlib import Path

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from tagsure.data.schemes import (
    Span,
    TagScheme,
    allowed_ends,
    allowed_starts,
    allowed_transitions,
    convert,
    detect_scheme,
    from_spans,
    split_tag,
    to_spans,
    validate,
)

SCHEMES = list(TagScheme)


def conll_dev_tags(path: Path) -> list[list[str]]:
    """The tag column (last of 4) of a CoNLL-2003 file, -DOCSTART- lines skipped."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
        elif not line.startswith("-DOCSTART-"):
            current.append(line.split()[-1])
    return sentences + ([current] if current else [])


def spans(*triples: tuple[str, int, int]) -> list[Span]:
    return [Span(*t) for t in triples]


def labels_for(scheme: TagScheme, types: tuple[str, ...] = ("PER", "LOC")) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in types for p in sorted(scheme.prefixes)]


# -- TagScheme ----------------------------------------------------------------------------------


def test_parse_names_and_aliases() -> None:
    assert TagScheme.parse("iob2") is TagScheme.IOB2
    assert TagScheme.parse("BIO") is TagScheme.IOB2
    assert TagScheme.parse(" Iobes ") is TagScheme.BIOES
    assert TagScheme.parse("bilou") is TagScheme.BILOU
    assert TagScheme.parse("IOB1") is TagScheme.IOB1
    assert TagScheme.parse(TagScheme.BIOES) is TagScheme.BIOES
    # the values are what model files store, and a TagScheme is a str
    assert [s.value for s in TagScheme] == ["IOB1", "IOB2", "BIOES", "BILOU"]
    assert TagScheme("BILOU") is TagScheme.BILOU and TagScheme.IOB2 == "IOB2"


def test_parse_error_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        TagScheme.parse("IOE2")
    message = str(err.value)
    assert "'IOE2'" in message
    for name in ("IOB1", "IOB2", "BIOES", "BILOU", "BIO", "IOBES"):
        assert name in message


# -- split_tag and Span -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("O", ("O", None)),
        ("B-PER", ("B", "PER")),
        ("I-LOC", ("I", "LOC")),
        ("E-ORG", ("E", "ORG")),
        ("S-MISC", ("S", "MISC")),
        ("L-X", ("L", "X")),
        ("U-X", ("U", "X")),
        ("B-WORK-OF-ART", ("B", "WORK-OF-ART")),  # only the first dash splits
    ],
)
def test_split_tag(tag: str, expected: tuple[str, str | None]) -> None:
    assert split_tag(tag) == expected


@pytest.mark.parametrize("tag", ["PER", "X-PER", "B-", "-PER", "B_PER", "b-PER", "", "o", "BI-X"])
def test_split_tag_rejects_and_names_the_tag(tag: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid tag {tag!r}")):
        split_tag(tag)


def test_span() -> None:
    span = Span("PER", 1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.end = 4  # type: ignore[misc]
    assert span == Span("PER", 1, 3) and len({span, Span("PER", 1, 3)}) == 1
    for start, end in [(2, 2), (3, 2), (-1, 1)]:
        with pytest.raises(ValueError, match="start < end"):
            Span("PER", start, end)


# -- detect_scheme ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        ([["B-PER", "I-PER", "O", "B-LOC"]], TagScheme.IOB2),
        ([["I-PER", "I-PER", "O", "I-LOC"]], TagScheme.IOB1),
        ([["I-PER", "B-PER", "O"], ["O", "I-LOC"]], TagScheme.IOB1),
        # an I- after O, but also a B- after O: noisy IOB2, not IOB1
        ([["O", "I-PER"], ["B-LOC"]], TagScheme.IOB2),
        # B- after an entity of another type is not something IOB1 writes
        ([["I-PER", "B-LOC"]], TagScheme.IOB2),
        ([["B-PER", "E-PER", "S-LOC"]], TagScheme.BIOES),
        ([["O"], ["S-LOC"]], TagScheme.BIOES),
        ([["B-PER", "L-PER"], ["U-LOC"]], TagScheme.BILOU),
        ([["O", "O"]], TagScheme.IOB2),
        ([], TagScheme.IOB2),
    ],
)
def test_detect_scheme(sentences: list[list[str]], expected: TagScheme) -> None:
    assert detect_scheme(sentences) is expected
    assert detect_scheme(iter(sentences)) is expected  # any iterable, read once


def test_detect_scheme_errors() -> None:
    with pytest.raises(ValueError, match="mix BIOES"):
        detect_scheme([["S-PER"], ["U-LOC"]])
    with pytest.raises(ValueError, match="invalid tag 'PER'"):
        detect_scheme([["O", "PER"]])


# -- to_spans -----------------------------------------------------------------------------------

IOB_CASES = [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["I-PER", "I-PER", "B-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
    (["O", "I-PER", "I-PER"], [("PER", 1, 3)]),  # I- after O opens an entity
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # I-X after B-Y too
    (["I-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),
    (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
    (["O", "O"], []),
    ([], []),
]
BIOES_CASES = [
    (["B-PER", "E-PER", "S-LOC"], [("PER", 0, 2), ("LOC", 2, 3)]),
    (["B-PER", "I-PER", "I-PER", "E-PER"], [("PER", 0, 4)]),
    (["B-PER", "O"], [("PER", 0, 1)]),  # a B- never closed ends where the entity can't go on
    (["O", "B-PER", "I-PER"], [("PER", 1, 3)]),  # ... or at the sentence end
    (["O", "E-PER", "E-PER"], [("PER", 1, 2), ("PER", 2, 3)]),  # E- alone: one token
    (["O", "I-PER", "E-PER"], [("PER", 1, 3)]),  # I- after O opens, E- closes
    (["B-PER", "E-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),
    (["S-PER", "I-PER", "E-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    (["B-PER", "S-PER", "E-PER"], [("PER", 0, 1), ("PER", 1, 2), ("PER", 2, 3)]),
    (["B-PER", "B-PER", "E-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    (["E-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
]


@pytest.mark.parametrize(("tags", "expected"), IOB_CASES)
def test_to_spans_iob(tags: list[str], expected: list[tuple[str, int, int]]) -> None:
    # IOB1 and IOB2 decode identically: B- always starts an entity, I- continues its type
    assert to_spans(tags, TagScheme.IOB1) == to_spans(tags, "IOB2") == spans(*expected)


@pytest.mark.parametrize(("tags", "expected"), BIOES_CASES)
def test_to_spans_bioes_and_bilou(tags: list[str], expected: list[tuple[str, int, int]]) -> None:
    assert to_spans(tags, TagScheme.BIOES) == spans(*expected)
    bilou = [t.replace("E-", "L-", 1).replace("S-", "U-", 1) for t in tags]
    assert to_spans(bilou, TagScheme.BILOU) == spans(*expected)


def test_to_spans_rejects_foreign_prefixes() -> None:
    with pytest.raises(ValueError, match="token 1: E-PER is not a tag of the IOB2 scheme"):
        to_spans(["B-PER", "E-PER"], "IOB2")
    with pytest.raises(ValueError, match="token 0: L-PER is not a tag of the BIOES scheme"):
        to_spans(["L-PER"], "BIOES")
    with pytest.raises(ValueError, match="invalid tag 'PER'"):
        to_spans(["PER"], "BIOES")


def random_tags(rng: random.Random, scheme: TagScheme, n: int) -> list[str]:
    return [rng.choice(labels_for(scheme, ("PER", "LOC", "A-B"))) for _ in range(n)]


def bilou_as_bioes(tags: list[str]) -> list[str]:
    prefix = {"L": "E", "U": "S"}
    return [prefix.get(t[0], t[0]) + t[1:] if t != "O" else t for t in tags]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_to_spans_matches_seqeval_on_random_sequences(scheme: TagScheme) -> None:
    # 2000 random, mostly ill-formed sequences per scheme; seqeval knows E-/S- but not L-/U-
    rng = random.Random(f"to_spans-{scheme.value}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2000):
            tags = random_tags(rng, scheme, rng.randint(0, 12))
            expected = [Span(t, s, e + 1) for t, s, e in get_entities(bilou_as_bioes(tags))]
            assert to_spans(tags, scheme) == expected, tags


# -- from_spans and convert ---------------------------------------------------------------------


def test_from_spans() -> None:
    entities = spans(("PER", 0, 2), ("PER", 2, 3), ("LOC", 3, 4), ("ORG", 5, 8))
    assert from_spans(entities, 9, "IOB2") == [
        "B-PER", "I-PER", "B-PER", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG", "O",
    ]  # fmt: skip
    # IOB1: B- only where an entity touches one of its own type
    assert from_spans(entities, 9, "IOB1") == [
        "I-PER", "I-PER", "B-PER", "I-LOC", "O", "I-ORG", "I-ORG", "I-ORG", "O",
    ]  # fmt: skip
    assert from_spans(entities, 9, "BIOES") == [
        "B-PER", "E-PER", "S-PER", "S-LOC", "O", "B-ORG", "I-ORG", "E-ORG", "O",
    ]  # fmt: skip
    assert from_spans(entities, 9, "BILOU") == [
        "B-PER", "L-PER", "U-PER", "U-LOC", "O", "B-ORG", "I-ORG", "L-ORG", "O",
    ]  # fmt: skip
    assert from_spans(reversed(entities), 9, "IOB1") == from_spans(entities, 9, "IOB1")
    assert from_spans([], 3, "BIOES") == ["O", "O", "O"]


def test_from_spans_errors() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        from_spans(spans(("PER", 0, 2), ("LOC", 1, 3)), 4, "IOB2")
    with pytest.raises(ValueError, match="does not fit in a sentence of 2 tokens"):
        from_spans(spans(("PER", 1, 3)), 2, "IOB2")


def random_spans(rng: random.Random, n: int) -> list[Span]:
    result, i = [], 0
    while i < n:
        if rng.random() < 0.5:  # adjacent entities (of one type, often) are the tricky case
            end = min(n, i + rng.randint(1, 3))
            result.append(Span(rng.choice(["PER", "LOC"]), i, end))
            i = end
        else:
            i += 1
    return result


@pytest.mark.parametrize("scheme", SCHEMES)
def test_spans_round_trip(scheme: TagScheme) -> None:
    rng = random.Random(f"round-trip-{scheme.value}")
    for _ in range(1000):
        n = rng.randint(0, 12)
        entities = random_spans(rng, n)
        tags = from_spans(entities, n, scheme)
        assert to_spans(tags, scheme) == entities
        assert validate(tags, scheme) == [], tags
        for other in SCHEMES:  # well-formed input converts losslessly both ways
            assert convert(convert(tags, scheme, other), other, scheme) == tags


def test_convert() -> None:
    assert convert(["B-PER", "I-PER", "B-PER"], "IOB2", "IOB1") == ["I-PER", "I-PER", "B-PER"]
    assert convert(["I-PER", "B-PER", "O", "I-LOC"], "IOB1", "BIOES") == [
        "S-PER", "S-PER", "O", "S-LOC",
    ]  # fmt: skip
    assert convert(["B-PER", "L-PER", "U-LOC"], "BILOU", "BIO") == ["B-PER", "I-PER", "B-LOC"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_convert_repairs_ill_formed_input(scheme: TagScheme) -> None:
    rng = random.Random(f"repair-{scheme.value}")
    repaired = 0
    for _ in range(600):
        tags = random_tags(rng, scheme, rng.randint(1, 10))
        for target in SCHEMES:
            fixed = convert(tags, scheme, target)
            assert validate(fixed, target) == []
            # the repair keeps the conlleval reading of the input
            assert to_spans(fixed, target) == to_spans(tags, scheme)
        repaired += bool(validate(tags, scheme))
    assert repaired > 400  # the inputs were mostly ill-formed


def test_conll_in_every_scheme(conll_dev: Path) -> None:  # conll_dev: from conftest.py
    gold = conll_dev_tags(conll_dev)
    assert detect_scheme(gold) is TagScheme.IOB2
    assert all(validate(g, "IOB2") == [] for g in gold)
    for scheme in (TagScheme.IOB1, TagScheme.BIOES, TagScheme.BILOU):
        converted = [convert(g, TagScheme.IOB2, scheme) for g in gold]
        assert detect_scheme(converted) is scheme
        assert all(validate(c, scheme) == [] for c in converted)
        assert [convert(c, scheme, TagScheme.IOB2) for c in converted] == gold


# -- validate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "scheme", "problems"),
    [
        (["B-PER", "I-PER", "O"], "IOB2", []),
        (
            ["B-PER", "O", "I-PER"],
            "IOB2",
            ["token 2: I-PER follows O (an entity must start with B- in IOB2)"],
        ),
        (
            ["I-PER", "B-LOC", "I-PER"],
            "IOB2",
            [
                "token 0: I-PER at sentence start (an entity must start with B- in IOB2)",
                "token 2: I-PER follows B-LOC (an entity must start with B- in IOB2)",
            ],
        ),
        (["I-PER", "B-PER", "I-LOC"], "IOB1", []),
        (
            ["B-PER", "O", "I-PER", "B-LOC"],
            "IOB1",
            [
                "token 0: B-PER at sentence start (in IOB1, B- only separates two adjacent "
                "entities of the same type)",
                "token 3: B-LOC follows I-PER (in IOB1, B- only separates two adjacent "
                "entities of the same type)",
            ],
        ),
        (["B-PER", "I-PER", "E-PER", "S-LOC", "O"], "BIOES", []),
        (
            ["B-PER", "O", "E-LOC", "B-LOC"],
            "BIOES",
            [
                "token 1: O follows B-PER (the open PER entity must continue with I-PER or "
                "end with E-PER in BIOES)",
                "token 2: E-LOC follows O (an entity must start with B- or S- in BIOES)",
                "token 3: B-LOC ends the sentence (the entity must end with E-LOC in BIOES)",
            ],
        ),
        (
            ["I-PER", "L-PER"],
            "BILOU",
            ["token 0: I-PER at sentence start (an entity must start with B- or U- in BILOU)"],
        ),
        (
            ["O", "E-PER", "XX", "I-PER", "O"],
            "IOB2",
            [
                "token 1: E-PER is not a tag of the IOB2 scheme",
                "token 2: invalid tag 'XX': expected 'O' or one of the prefixes B-, I-, E-, "
                "S-, L-, U- followed by an entity type",
                # no complaint about I-PER: what it follows is unknown
            ],
        ),
        ([], "BIOES", []),
    ],
)
def test_validate(tags: list[str], scheme: str, problems: list[str]) -> None:
    assert validate(tags, scheme) == problems


# -- allowed transitions, starts and ends -------------------------------------------------------


def test_allowed_examples() -> None:
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    assert allowed_starts(labels, "BIOES") == [0, 1, 4]
    assert allowed_ends(labels, "BIOES") == [0, 3, 4]
    assert sorted(allowed_transitions(labels, "BIOES")) == [
        (0, 0), (0, 1), (0, 4),
        (1, 2), (1, 3),
        (2, 2), (2, 3),
        (3, 0), (3, 1), (3, 4),
        (4, 0), (4, 1), (4, 4),
    ]  # fmt: skip
    iob1 = ["O", "B-PER", "I-PER", "I-LOC"]
    assert allowed_starts(iob1, "IOB1") == [0, 2, 3]
    # B-PER only right after a PER token
    assert [t for t in allowed_transitions(iob1, "IOB1") if t[1] == 1] == [(1, 1), (2, 1)]


def test_allowed_rejects_labels_outside_the_scheme() -> None:
    with pytest.raises(ValueError, match=r"label 1 \(S-PER\) is not a tag of the IOB2 scheme"):
        allowed_transitions(["O", "S-PER"], "IOB2")
    with pytest.raises(ValueError, match="invalid tag '<pad>'"):
        allowed_starts(["<pad>", "O"], "BIOES")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_allowed_agrees_with_validate_by_brute_force(scheme: TagScheme) -> None:
    # Every sequence of length 1..4 over two types (780 for IOB, 7380 for BIOES/BILOU):
    # validate() finds nothing  <=>  only allowed starts, transitions and ends are used
    #                           <=>  the tags are the canonical encoding of their own spans.
    labels = labels_for(scheme)
    starts = set(allowed_starts(labels, scheme))
    ends = set(allowed_ends(labels, scheme))
    transitions = set(allowed_transitions(labels, scheme))
    valid = 0
    for n in range(1, 5):
        for seq in itertools.product(range(len(labels)), repeat=n):
            tags = [labels[i] for i in seq]
            clean = validate(tags, scheme) == []
            allowed = (
                seq[0] in starts
                and seq[-1] in ends
                and all(pair in transitions for pair in itertools.pairwise(seq))
            )
            canonical = from_spans(to_spans(tags, scheme), n, scheme) == tags
            assert clean == allowed == canonical, tags
            valid += clean
    # Well-formed sequences and span layouts correspond one to one, whatever the scheme: with
    # f(0) = 1 and f(n) = f(n-1) + 2 * (f(n-1) + ... + f(0)) (an O, or an entity of one of two
    # types and any length), f(1..4) = 3, 11, 41, 153.
    assert valid == 3 + 11 + 41 + 153
    assert 0 < len(transitions) < len(labels) ** 2
