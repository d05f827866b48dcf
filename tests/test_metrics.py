"""Entity metrics: checked against seqeval's default mode and against conlleval's own loop.

Three references are used:

* seqeval 1.2.2 in its default mode (no ``mode="strict"``), compared with ``==``: seqeval and
  tagsure compute P, R and F1 with the same float operations from the same counts.
* ``conlleval_counts`` below, a transcription of conlleval.pl's main loop (the ``inCorrect``
  state machine, 2004-01-26 version), run either with conlleval.pl's own endOfChunk /
  startOfChunk or with seqeval's. tagsure counts by intersecting chunk sets instead, so this
  checks that the shortcut counts what the state machine counts.
* Hand-computed conlleval results where seqeval and conlleval.pl disagree.

seqeval vs conlleval.pl, as found here: for tags made of B-, I-, E- and O (IOB1, IOB2, IOE)
both chunk identically, and seqeval's accuracy_score is conlleval's token accuracy. They part
only on BIOES: conlleval.pl has no rule for S- and none that ends a chunk at B- after E-, so
it reads ``S-PER S-PER`` and ``B-PER E-PER B-PER E-PER`` as one entity each. tagsure follows
seqeval there on purpose (see test_bioes_where_conlleval_pl_differs); everywhere else
conlleval.pl is the reference and seqeval agrees with it.
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from unittest import mock

import pytest
from seqeval.metrics import accuracy_score, sequence_labeling
from seqeval.metrics.sequence_labeling import end_of_chunk as seqeval_end_of_chunk
from seqeval.metrics.sequence_labeling import get_entities as seqeval_get_entities
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support
from seqeval.metrics.sequence_labeling import start_of_chunk as seqeval_start_of_chunk

from tagsure.data.schemes import Span, TagScheme, convert, decode_spans, from_spans, to_spans
from tagsure.evaluation.metrics import PRF, Metrics, MetricsAccumulator, evaluate

Corpus = list[list[str]]


# -- shared data --------------------------------------------------------------------------------


@cache
def _read_tags(path: Path, fmt: str) -> Corpus:
    """Tag column of a CoNLL-2003 file (last of 4 space-separated columns, -DOCSTART- skipped)
    or of a WikiANN file (``en:token<TAB>tag``); blank lines separate sentences."""
    sentences: Corpus = []
    current: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
        elif not line.startswith("-DOCSTART-"):
            current.append(line.split("\t" if fmt == "wikiann" else " ")[-1])
    if current:
        sentences.append(current)
    return sentences


CORPORA = {
    "conll2003": ("conll2003-en/dev.txt", "conll"),
    "wikiann": ("wikiann-en/dev", "wikiann"),
}


def load(shared_data: Path, name: str) -> Corpus:
    relative, fmt = CORPORA[name]
    path = shared_data / relative
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return _read_tags(path, fmt)


# -- references ---------------------------------------------------------------------------------

ChunkRule = Callable[[str, str, str, str], bool]


def conlleval_pl_end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """conlleval.pl's endOfChunk, rule for rule (the '[' ']' '.' tags are not used here)."""
    return (
        (prev_tag, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O")}
        or (prev_tag, tag) in {("E", "E"), ("E", "I"), ("E", "O")}
        or (prev_tag != "O" and prev_tag != "." and prev_type != type_)
    )


def conlleval_pl_start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """conlleval.pl's startOfChunk, rule for rule."""
    return (
        (prev_tag, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I")}
        or (prev_tag, tag) in {("E", "E"), ("E", "I"), ("O", "E")}
        or (tag != "O" and tag != "." and prev_type != type_)
    )


def _bilou_as_bioes(rule: ChunkRule) -> ChunkRule:
    same = {"L": "E", "U": "S"}
    return lambda p, t, pt, tt: rule(same.get(p, p), same.get(t, t), pt, tt)


CONLLEVAL_PL = (conlleval_pl_end_of_chunk, conlleval_pl_start_of_chunk)
# seqeval's predicates, with BILOU's L-/U- read as E-/S- (tagsure's documented extension)
EXTENDED = (_bilou_as_bioes(seqeval_end_of_chunk), _bilou_as_bioes(seqeval_start_of_chunk))


def conlleval_counts(
    gold: Corpus, predicted: Corpus, rules: tuple[ChunkRule, ChunkRule] = CONLLEVAL_PL
) -> dict[str, Counter[str] | int]:
    """conlleval.pl's main loop: one line per token, an O/O boundary line after each sentence.

    Returns per-type Counters ``correct``, ``found_gold``, ``found_guessed`` and the integers
    ``correct_tags`` and ``tokens``.
    """
    end_of_chunk, start_of_chunk = rules
    correct: Counter[str] = Counter()
    found_gold: Counter[str] = Counter()
    found_guessed: Counter[str] = Counter()
    correct_tags = tokens = 0
    in_correct = False
    last_c, last_ct, last_g, last_gt = "O", "", "O", ""
    lines: list[tuple[str, str] | None] = []
    for g, p in zip(gold, predicted, strict=True):
        lines.extend(zip(g, p, strict=True))
        lines.append(None)  # the blank line: "-X- O O"
    for line in lines:
        boundary = line is None
        c_full, g_full = ("O", "O") if line is None else line
        c, _, ct = c_full.partition("-")  # /^([^-]*)-(.*)$/: split at the first dash
        g, _, gt = g_full.partition("-")
        if in_correct:
            c_end = end_of_chunk(last_c, c, last_ct, ct)
            g_end = end_of_chunk(last_g, g, last_gt, gt)
            if c_end and g_end and last_gt == last_ct:
                in_correct = False
                correct[last_ct] += 1
            elif c_end != g_end or gt != ct:
                in_correct = False
        c_start = start_of_chunk(last_c, c, last_ct, ct)
        g_start = start_of_chunk(last_g, g, last_gt, gt)
        if c_start and g_start and gt == ct:
            in_correct = True
        if c_start:
            found_gold[ct] += 1
        if g_start:
            found_guessed[gt] += 1
        if not boundary:
            correct_tags += c == g and ct == gt
            tokens += 1
        last_c, last_ct, last_g, last_gt = c, ct, g, gt
    if in_correct:
        correct[last_ct] += 1
    return {
        "correct": correct,
        "found_gold": found_gold,
        "found_guessed": found_guessed,
        "correct_tags": correct_tags,
        "tokens": tokens,
    }


def assert_counts_match_conlleval(metrics: Metrics, reference: dict) -> None:
    types = sorted(set(reference["found_gold"]) | set(reference["found_guessed"]))
    assert sorted(metrics.per_type) == types
    for t in types:
        prf = metrics.per_type[t]
        assert (prf.true_positives, prf.predicted, prf.gold) == (
            reference["correct"][t],
            reference["found_guessed"][t],
            reference["found_gold"][t],
        ), t
    m = metrics.micro
    assert m.true_positives == sum(reference["correct"].values())
    assert m.predicted == sum(reference["found_guessed"].values())
    assert m.gold == sum(reference["found_gold"].values())
    assert metrics.tokens == reference["tokens"]
    if reference["tokens"]:
        assert metrics.accuracy == reference["correct_tags"] / reference["tokens"]


def assert_matches_seqeval(metrics: Metrics, gold: Corpus, predicted: Corpus) -> None:
    """Micro and per-type P, R, F1 and support equal to seqeval's default mode, exactly."""
    # Both calls chunk the same two corpora with seqeval's get_entities: run it once per corpus.
    memo: dict[int, list] = {}

    def get_entities_once(seq: list, suffix: bool = False) -> list:
        if id(seq) not in memo:
            memo[id(seq)] = seqeval_get_entities(seq, suffix)
        return memo[id(seq)]

    with (
        warnings.catch_warnings(),
        mock.patch.object(sequence_labeling, "get_entities", get_entities_once),
    ):
        warnings.simplefilter("ignore")  # seqeval warns on zero divisions and on odd tags
        p, r, f, support = precision_recall_fscore_support(gold, predicted, average=None)
        mp, mr, mf, _ = precision_recall_fscore_support(gold, predicted, average="micro")
        accuracy = accuracy_score(gold, predicted)
    assert len(memo) == 2
    # seqeval's arrays follow the sorted names of the types found on either side
    names = sorted({entity[0] for entities in memo.values() for entity in entities})
    assert list(metrics.per_type) == names
    for i, name in enumerate(names):
        prf = metrics.per_type[name]
        got = (prf.precision, prf.recall, prf.f1, prf.gold)
        assert got == (p[i], r[i], f[i], support[i]), name
    assert (metrics.micro.precision, metrics.micro.recall, metrics.micro.f1) == (mp, mr, mf)
    assert metrics.micro.gold == int(support.sum())
    assert metrics.accuracy == accuracy


# -- realistic predictions ----------------------------------------------------------------------


def perturb(
    gold: list[str], rng: random.Random, level: float, types: Sequence[str], scheme: TagScheme
) -> list[str]:
    """A plausible tagger output for gold (IOB2) tags: entity-level mistakes (wrong type,
    missed, boundaries off by one, split, spurious), then tag-level noise in ``scheme`` that
    leaves the sequence ill-formed (B- turned I-, I- after O, random prefixes and tags), and for
    the IOB schemes sometimes a whole sentence written IOB1-style."""
    n = len(gold)
    spans: list[Span] = []
    for span in to_spans(gold, TagScheme.IOB2):
        start, end, label = span.start, span.end, span.label
        if rng.random() < level:
            op = rng.choice(["retype", "drop", "left", "right", "shrink", "shift", "split"])
            if op == "retype":
                label = rng.choice([t for t in types if t != label])
            elif op == "drop":
                continue
            elif op == "left":
                start = max(0, start - 1)
            elif op == "right":
                end = min(n, end + 1)
            elif op == "shrink" and end - start > 1:
                start, end = (start + 1, end) if rng.random() < 0.5 else (start, end - 1)
            elif op == "shift":
                d = rng.choice([-1, 1])
                if 0 <= start + d and end + d <= n:
                    start, end = start + d, end + d
            elif op == "split" and end - start > 1:
                cut = rng.randrange(start + 1, end)
                spans += [Span(label, start, cut), Span(label, cut, end)]
                continue
        spans.append(Span(label, start, end))
    if n and rng.random() < level:  # a spurious entity
        start = rng.randrange(n)
        spans.append(Span(rng.choice(types), start, min(n, start + rng.randint(1, 3))))
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    iob1 = scheme in (TagScheme.IOB1, TagScheme.IOB2) and rng.random() < level
    tags = from_spans(kept, n, TagScheme.IOB1 if iob1 else scheme)
    prefixes = sorted(scheme.prefixes)
    for i, tag in enumerate(tags):
        x = rng.random()
        if tag != "O" and x < level / 3:
            tags[i] = f"{rng.choice(prefixes)}-{tag[2:]}"  # B- turned I-, E- turned I-, ...
        elif tag == "O" and x < level / 10:
            tags[i] = f"{rng.choice(prefixes)}-{rng.choice(types)}"  # I-X after O, ...
        elif x < level / 20:
            tags[i] = rng.choice(["O", f"{rng.choice(prefixes)}-{rng.choice(types)}"])
    return tags


def as_bioes(corpus: Corpus) -> Corpus:
    """BILOU's L- and U- written as BIOES's E- and S-, which seqeval understands."""
    prefix = {"L": "E", "U": "S"}
    return [[prefix.get(t[0], t[0]) + t[1:] if t[1:2] == "-" else t for t in s] for s in corpus]


def types_of(corpus: Corpus) -> list[str]:
    return sorted({tag[2:] for tags in corpus for tag in tags if tag != "O"})


# -- real corpora -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "level", "seed"),
    [
        ("conll2003", 0.1, 2),
        ("conll2003", 0.4, 3),
        ("wikiann", 0.25, 5),
    ],
)
def test_real_corpus_iob2(shared_data: Path, name: str, level: float, seed: int) -> None:
    gold = load(shared_data, name)
    rng = random.Random(seed)
    types = types_of(gold)
    predicted = [perturb(g, rng, level, types, TagScheme.IOB2) for g in gold]
    metrics = evaluate(gold, predicted)
    assert_matches_seqeval(metrics, gold, predicted)
    assert_counts_match_conlleval(metrics, conlleval_counts(gold, predicted))
    assert metrics.sentences == len(gold)
    # the noise must actually bite, or the comparison proves little
    assert 0.05 < metrics.micro.f1 < 0.99
    assert metrics.micro.predicted != metrics.micro.true_positives


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_real_corpus_perfect(shared_data: Path, name: str) -> None:
    gold = load(shared_data, name)
    metrics = evaluate(gold, gold)
    assert (metrics.micro.f1, metrics.accuracy) == (1.0, 1.0)
    assert all(prf.f1 == 1.0 for prf in metrics.per_type.values())
    # entity counts of the released files (B- tags: every sentence is valid IOB2)
    expected = Counter(t[2:] for tags in gold for t in tags if t.startswith("B-"))
    assert {t: prf.gold for t, prf in metrics.per_type.items()} == expected
    assert metrics.tokens == sum(map(len, gold)) and metrics.sentences == len(gold)
    if name == "conll2003":  # the well-known size of the CoNLL-2003 English dev set
        assert (metrics.tokens, metrics.micro.gold) == (51362, 5942)


def test_real_corpus_iob1(shared_data: Path) -> None:
    iob2 = load(shared_data, "conll2003")
    gold = [convert(g, TagScheme.IOB2, TagScheme.IOB1) for g in iob2]
    rng = random.Random(7)
    types = types_of(iob2)
    predicted = [perturb(g, rng, 0.6, types, TagScheme.IOB1) for g in iob2]
    metrics = evaluate(gold, predicted)
    assert_matches_seqeval(metrics, gold, predicted)
    assert_counts_match_conlleval(metrics, conlleval_counts(gold, predicted))
    # IOB1 and IOB2 read the same entities: the gold side counts as before
    assert metrics.micro.gold == evaluate(iob2, iob2).micro.gold


@pytest.mark.parametrize(
    ("scheme", "level", "seed"), [(TagScheme.BIOES, 0.3, 8), (TagScheme.BILOU, 0.2, 9)]
)
def test_real_corpus_bioes_bilou(
    shared_data: Path, scheme: TagScheme, level: float, seed: int
) -> None:
    iob2 = load(shared_data, "conll2003")
    gold = [convert(g, TagScheme.IOB2, scheme) for g in iob2]
    rng = random.Random(seed)
    types = types_of(iob2)
    predicted = [perturb(g, rng, level, types, scheme) for g in iob2]
    metrics = evaluate(gold, predicted)
    assert_counts_match_conlleval(metrics, conlleval_counts(gold, predicted, EXTENDED))
    if scheme is TagScheme.BIOES:
        assert_matches_seqeval(metrics, gold, predicted)
    else:
        # seqeval knows E- and S- but not L- and U-; BILOU must score as the same BIOES does
        assert metrics == evaluate(as_bioes(gold), as_bioes(predicted))
    assert metrics.micro.gold == evaluate(iob2, iob2).micro.gold
    assert 0.3 < metrics.micro.f1 < 0.95


# -- random ill-formed sequences ----------------------------------------------------------------

ALPHABETS = {
    # name: (prefixes, whether conlleval.pl's own chunk rules cover them)
    "IOB": ("BI", True),
    "IOE": ("IE", True),
    "BIOES": ("BIES", False),
    "everything": ("BIESLU", False),
}


TYPES = ["PER", "LOC", "MISC-X"]  # a dash inside a type, as conlleval 2004 allows


def random_tag(rng: random.Random, prefixes: str) -> str:
    return "O" if rng.random() < 0.35 else f"{rng.choice(prefixes)}-{rng.choice(TYPES)}"


def random_corpus(rng: random.Random, prefixes: str, sentences: int) -> Corpus:
    lengths = [rng.choice([0, 1, 2, 3, 5, 8, 13]) for _ in range(sentences)]
    return [[random_tag(rng, prefixes) for _ in range(n)] for n in lengths]


def random_predictions(rng: random.Random, prefixes: str, gold: Corpus) -> Corpus:
    """Half unrelated sequences, half copies of the gold with a fifth of the tags redrawn."""
    redraw = [0.2 if rng.random() < 0.5 else 1.0 for _ in gold]
    return [
        [random_tag(rng, prefixes) if rng.random() < r else t for t in g]
        for g, r in zip(gold, redraw, strict=True)
    ]


@pytest.mark.parametrize("alphabet", sorted(ALPHABETS))
def test_random_sequences(alphabet: str) -> None:
    prefixes, conlleval_pl_applies = ALPHABETS[alphabet]
    rng = random.Random(f"metrics-{alphabet}")
    gold = random_corpus(rng, prefixes, 2000)
    predicted = random_predictions(rng, prefixes, gold)
    metrics = evaluate(gold, predicted)
    # Sentence by sentence (so that errors cannot cancel out): conlleval's loop with
    # conlleval.pl's predicates where they apply, else with seqeval's.
    rules = CONLLEVAL_PL if conlleval_pl_applies else EXTENDED
    for g, p in zip(gold, predicted, strict=True):
        assert_counts_match_conlleval(evaluate([g], [p]), conlleval_counts([g], [p], rules))

    assert_counts_match_conlleval(metrics, conlleval_counts(gold, predicted, EXTENDED))
    if conlleval_pl_applies:
        assert_counts_match_conlleval(metrics, conlleval_counts(gold, predicted))
    # L-/U- read as E-/S-: same entity scores (accuracy may differ, E-X and L-X are two tags)
    gold_s, predicted_s = as_bioes(gold), as_bioes(predicted)
    mapped = evaluate(gold_s, predicted_s)
    assert (mapped.micro, mapped.per_type) == (metrics.micro, metrics.per_type)
    assert_matches_seqeval(mapped, gold_s, predicted_s)
    assert 0 < metrics.micro.true_positives < metrics.micro.predicted


def test_seqeval_and_conlleval_pl_agree_on_iob_and_ioe() -> None:
    """The premise of using seqeval as the reference, checked on its own: on B/I/O and I/E/O
    tags seqeval's chunk predicates and conlleval.pl's give the same counts."""
    rng = random.Random(11)
    for prefixes in ("BI", "IE"):
        for _ in range(300):
            gold = random_corpus(rng, prefixes, 5)
            predicted = random_predictions(rng, prefixes, gold)
            assert conlleval_counts(gold, predicted) == conlleval_counts(gold, predicted, EXTENDED)


# -- where seqeval and conlleval.pl part --------------------------------------------------------


def test_bioes_where_conlleval_pl_differs() -> None:
    # conlleval.pl (2004) predates BIOES: it has no S- rule and does not end a chunk at B- after
    # E-, so it reads each gold sentence below as ONE entity: found 1 gold phrase, 1 guessed,
    # 0 correct in each (checked by running conlleval.pl), so F1 = 0 for a tagger that found
    # half of the entities exactly. tagsure deliberately follows seqeval's extension, which
    # closes a chunk after every E-/S-: each gold sentence has two entities.
    gold = [["B-PER", "E-PER", "B-PER", "E-PER"], ["S-PER", "S-PER"]]
    predicted = [["B-PER", "E-PER", "O", "O"], ["S-PER", "O"]]

    pl = conlleval_counts(gold[:1], predicted[:1])  # hand-checked against conlleval.pl
    assert (pl["found_gold"]["PER"], pl["found_guessed"]["PER"], pl["correct"]["PER"]) == (1, 1, 0)
    pl = conlleval_counts(gold[1:], predicted[1:])
    assert (pl["found_gold"]["PER"], pl["found_guessed"]["PER"], pl["correct"]["PER"]) == (1, 1, 0)

    metrics = evaluate(gold, predicted)
    assert metrics.micro.to_dict() == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": 2 * 1.0 * 0.5 / 1.5,
        "true_positives": 2,
        "predicted": 2,
        "gold": 4,
    }
    assert_matches_seqeval(metrics, gold, predicted)


def test_iob1_by_hand() -> None:
    # IOB1: B- only between adjacent entities of one type; conlleval and seqeval agree.
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]  # PER[0,2) PER[2,3) LOC[4,5)
    predicted = [["I-PER", "I-PER", "I-PER", "O", "B-LOC"]]  # PER[0,3) LOC[4,5)
    metrics = evaluate(gold, predicted)
    assert (metrics.micro.true_positives, metrics.micro.predicted, metrics.micro.gold) == (1, 2, 3)
    assert metrics.per_type["LOC"].f1 == 1.0 and metrics.per_type["PER"].true_positives == 0
    assert metrics.accuracy == 3 / 5  # tags differ at tokens 2 and 4 although LOC is right
    assert_matches_seqeval(metrics, gold, predicted)
    assert_counts_match_conlleval(metrics, conlleval_counts(gold, predicted))


def test_ill_formed_by_hand() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]
    # I-PER after O opens an entity; I-ORG after B-LOC starts a new one; nothing is dropped
    predicted = [["O", "I-PER", "O", "B-LOC", "I-ORG"]]
    metrics = evaluate(gold, predicted)
    assert {t: (p.true_positives, p.predicted, p.gold) for t, p in metrics.per_type.items()} == {
        "LOC": (0, 1, 1),
        "ORG": (0, 1, 0),
        "PER": (0, 1, 1),
    }
    assert_matches_seqeval(metrics, gold, predicted)


def test_sentence_boundaries_end_chunks() -> None:
    # the same tags as one sentence would make one PER entity; split, they make two
    split = evaluate([["B-PER"], ["I-PER"]], [["B-PER"], ["B-PER"]])
    assert (split.micro.gold, split.micro.true_positives) == (2, 2)
    joined = evaluate([["B-PER", "I-PER"]], [["B-PER", "B-PER"]])
    assert (joined.micro.gold, joined.micro.true_positives) == (1, 0)


# -- API ----------------------------------------------------------------------------------------

# The expected table was produced by conlleval.pl itself on the same input (as
# "tok gold guess" lines with blank lines between sentences).
TABLE_GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"], ["O"]]
TABLE_PRED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "I-MISC", "O"], ["B-LOC"]]
TABLE = """\
processed 9 tokens with 4 phrases; found: 5 phrases; correct: 2.
accuracy:  55.56%; precision:  40.00%; recall:  50.00%; FB1:  44.44
              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1
             MISC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1
              ORG: precision:  50.00%; recall: 100.00%; FB1:  66.67  2
              PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  1
"""


def test_format_table_is_conllevals() -> None:
    assert evaluate(TABLE_GOLD, TABLE_PRED).format_table() == TABLE


def test_format_table_without_tokens() -> None:
    assert evaluate([], []).format_table() == (
        "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
    )


def test_to_dict_shape() -> None:
    d = evaluate(TABLE_GOLD, TABLE_PRED).to_dict()
    assert set(d) == {"micro", "per_type", "accuracy"}
    keys = {"precision", "recall", "f1", "true_positives", "predicted", "gold"}
    assert set(d["micro"]) == keys
    assert list(d["per_type"]) == ["LOC", "MISC", "ORG", "PER"]
    assert all(set(v) == keys for v in d["per_type"].values())
    assert d["micro"] == {
        "precision": 0.4,
        "recall": 0.5,
        "f1": 2 * 0.4 * 0.5 / 0.9,
        "true_positives": 2,
        "predicted": 5,
        "gold": 4,
    }
    assert d["accuracy"] == 5 / 9


def test_zero_denominators() -> None:
    none = evaluate([["O", "O"]], [["O", "O"]])
    assert none.micro == PRF(0.0, 0.0, 0.0, 0, 0, 0) and none.per_type == {}
    assert none.accuracy == 1.0
    missed = evaluate([["B-PER"]], [["O"]])
    assert missed.per_type["PER"] == PRF(0.0, 0.0, 0.0, 0, 0, 1)
    empty = evaluate([], [])
    assert (empty.accuracy, empty.sentences, empty.tokens) == (0.0, 0, 0)


def test_length_mismatches_are_errors() -> None:
    with pytest.raises(ValueError, match="gold has 2 sentences but predicted has 1"):
        evaluate([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 1: gold has 3 tags but predicted has 2"):
        evaluate([["O"], ["O", "O", "O"]], [["O"], ["O", "O"]])


def test_bad_tags_are_errors() -> None:
    with pytest.raises(ValueError, match=r"sentence 0, token 1 \(predicted\): invalid tag 'X-PER'"):
        evaluate([["O", "O"]], [["O", "X-PER"]])
    with pytest.raises(ValueError, match=r"sentence 0, token 0 \(gold\): invalid tag 'PER'"):
        evaluate([["PER"]], [["O"]])


def test_accumulator_streams() -> None:
    rng = random.Random(5)
    gold = random_corpus(rng, "BI", 400)
    predicted = random_predictions(rng, "BI", gold)
    acc = MetricsAccumulator()
    for g, p in zip(gold, predicted, strict=True):
        acc.add(tuple(g), tuple(p))  # any sequence will do
    assert acc.result() == evaluate(gold, predicted)
    # a failed add leaves the counts alone, and result() can be called mid-stream
    before = acc.result()
    with pytest.raises(ValueError, match="sentence 400: gold has 1 tags but predicted has 2"):
        acc.add(["O"], ["O", "O"])
    with pytest.raises(ValueError):
        acc.add(["B-PER", "Z"], ["O", "O"])
    assert acc.result() == before
    acc.add(["B-PER"], ["B-PER"])
    assert acc.result().sentences == before.sentences + 1
    assert acc.result().micro.true_positives == before.micro.true_positives + 1


def test_every_short_sequence_is_chunked_as_the_reference_chunks_it() -> None:
    # The span decoder that schemes and metrics share, on every sequence of up to four tags
    # over two types and all six prefixes (each sentence against its right neighbour).
    tags = ["O"] + [f"{p}-{t}" for p in "BIESLU" for t in "XY"]
    gold = [list(s) for n in range(1, 5) for s in itertools.product(tags, repeat=n)]
    neighbours = gold[1:] + gold[:1]
    predicted = [(p + ["O"] * len(g))[: len(g)] for g, p in zip(gold, neighbours, strict=True)]
    metrics = evaluate(gold, predicted)
    assert_counts_match_conlleval(metrics, conlleval_counts(gold, predicted, EXTENDED))
    for sentence in gold[:2000]:
        reference = conlleval_counts([sentence], [sentence], EXTENDED)["found_gold"]
        assert Counter(label for label, _, _ in decode_spans(sentence)) == reference
