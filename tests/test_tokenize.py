"""The cached tokenizer gives exactly segtok's tokens, and raw-text offsets stay the same."""

from __future__ import annotations

import random

import pytest
from segtok.segmenter import split_single
from segtok.tokenizer import split_contractions, word_tokenizer

from tagsure.data.text import split_offsets, split_sentences, tokenize
from tests.helpers import BUNDLED

TRICKY = [
    "I didn't go to the U.S. yesterday... Mr. Smith did n't !",
    "Hel- \r\n lo there, Obama's wife; she's here: 12:30pm, a,b and 5'-ACGT-3'.",
    "Prices rose 3.5% (to $1,200.50) in Q3, said J.R.R. Tolkien's heirs.",
    "e.g. dots... «quotes» naïve café São Paulo’s mayor, km² H₂O²⁺ rock'n'roll",
    "Call me at http://example.com/a?b=c#d or ann@example.org ,,, ;; ::",
    "What?! No!!! 'Quoted' \"text\" [brackets] {braces} <angle> end.",
    "Tab\tand\nnewline  George Washington .  ",
    "They'll we've I'm you're he'd isn't can't won't don't O'Neill's",
]


def segtok_tokens(sentence: str) -> list[str]:
    return split_contractions(word_tokenizer(sentence))


def fuzz_texts(count: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("aAbZ09 .,;:'’-–!?\"()\n\t$%") + ["n't", "'s", "U.S.", "...", "Mr.", "é", "²"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def corpus_texts() -> list[str]:
    lines = (BUNDLED / "wikiann-en-train.txt").read_text(encoding="utf-8").split("\n\n")
    sentences = [" ".join(line.split()[0] for line in block.splitlines()) for block in lines]
    return [" ".join(sentences[i : i + 7]) for i in range(0, 700, 7)]


@pytest.mark.parametrize("group", ["tricky", "fuzz", "corpus"])
def test_tokenize_is_segtok(group: str) -> None:
    texts = {"tricky": TRICKY, "fuzz": fuzz_texts(3000), "corpus": corpus_texts()}[group]
    for text in texts:
        for sentence in split_single(text):
            assert tokenize(sentence) == segtok_tokens(sentence), sentence
            assert tokenize(sentence) == segtok_tokens(sentence), sentence  # cached, the same


def reference_split(text: str) -> list[list[tuple[str, int, int]]]:
    """The splitter before the cached tokenizer: segtok, then find each token's offset."""
    sentences, cursor = [], 0
    for sentence in split_single(text):
        tokens = []
        for word in segtok_tokens(sentence):
            if not word:
                continue
            start = text.find(word, cursor)
            if start < 0:
                start, end = cursor, cursor
            else:
                end = cursor = start + len(word)
            tokens.append((word, start, end))
        if tokens:
            sentences.append(tokens)
    return sentences


def test_offsets_unchanged() -> None:
    for text in TRICKY + fuzz_texts(500, seed=5) + corpus_texts():
        expected = reference_split(text)
        assert [[(t.text, t.start, t.end) for t in s] for s in split_sentences(text)] == expected
        assert [list(zip(*s, strict=True)) for s in split_offsets(text)] == expected
