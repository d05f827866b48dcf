"""Split raw text into sentences and tokens, keeping each token's character offsets.

We use segtok, the rule-based segmenter and tokenizer flair uses, so raw-text predictions are
tokenised the way CoNLL-style training data usually is ("U.S." stays one token, "don't" splits).

segtok's ``split_contractions(word_tokenizer(sentence))`` runs a regular expression per
space-separated span and per token; text repeats its words, so :func:`tokenize` gives the same
tokens with those per-span and per-token steps cached (only the sentence-final splice, which
depends on a token's position, runs every time). ``tests/test_text_speed.py`` checks it against
segtok itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from segtok.segmenter import split_single
from segtok.tokenizer import (
    APO_MATCHER,
    HYPHENATED_LINEBREAK,
    SENTENCE_TERMINALS,
    space_tokenizer,
    split_contractions,
    word_tokenizer,
)

CACHE_SIZE = 1 << 16  # distinct spans and tokens remembered


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offset in the input string
    end: int  # exclusive


@lru_cache(maxsize=CACHE_SIZE)
def _span_words(span: str) -> tuple[str, ...]:
    """segtok's word split of one space-free span, empty pieces dropped."""
    return tuple(token for token in word_tokenizer.split(span) if token)


@lru_cache(maxsize=CACHE_SIZE)
def _finish_word(word: str) -> tuple[str, ...]:
    """segtok's last two steps on one token: dangling ``,;:`` spliced off, then contractions.

    Both are token-local in segtok (its loops only insert pieces next to the token they split).
    """
    trailing = []
    while len(word) > 1 and word[-1] in ",;:":
        trailing.append(word[-1])
        word = word[:-1]
    pieces = [word, *reversed(trailing)]
    return tuple(split_contractions(pieces))


def _splice_terminal(tokens: list[str]) -> None:
    """segtok's splice of the sentence terminal off one of the last three tokens, in place."""
    for idx, word in enumerate(reversed(tokens[-3:]), 1):
        if (word_tokenizer.match(word) and not APO_MATCHER.match(word)) or any(
            t in word for t in SENTENCE_TERMINALS
        ):
            last = len(word) - 1
            if last == 0 or word == "...":
                pass
            elif any(word.rfind(t) == last for t in SENTENCE_TERMINALS):
                tokens[-idx] = word[:-1]
                tokens.insert(len(tokens) - idx + 1, word[-1])
            elif any(word.find(t) == 0 for t in SENTENCE_TERMINALS):
                tokens[-idx] = word[0]
                tokens.insert(len(tokens) - idx + 1, word[1:])
            break


def tokenize(sentence: str) -> list[str]:
    """``segtok.tokenizer.split_contractions(word_tokenizer(sentence))``, faster.

    Example:
        >>> tokenize("She didn't see Ann, then.")
        ['She', 'did', "n't", 'see', 'Ann', ',', 'then', '.']
    """
    pruned = HYPHENATED_LINEBREAK.sub(r"\1\2", sentence)
    tokens = [word for span in space_tokenizer.split(pruned) if span for word in _span_words(span)]
    _splice_terminal(tokens)
    return [piece for word in tokens for piece in _finish_word(word)]


def split_offsets(text: str) -> list[tuple[list[str], list[int], list[int]]]:
    """Sentences of ``text`` as (tokens, starts, ends): :func:`split_sentences` without a
    :class:`Token` object per token (what prediction uses)."""
    sentences = []
    cursor = 0
    find = text.find
    for sentence in split_single(text):
        words, starts, ends = [], [], []
        for word in tokenize(sentence):
            if not word:  # segtok splits an already split "did n't" into "did", "", "n't"
                continue
            start = find(word, cursor)
            if start < 0:  # the tokenizer normalised the token; keep it, without moving on
                start = end = cursor
            else:
                end = cursor = start + len(word)
            words.append(word)
            starts.append(start)
            ends.append(end)
        if words:
            sentences.append((words, starts, ends))
    return sentences


def split_sentences(text: str) -> list[list[Token]]:
    """Sentences of ``text`` as token lists with offsets into ``text``.

    Example:
        >>> [[t.text for t in s] for s in split_sentences("I met Ann. She's here.")]
        [['I', 'met', 'Ann', '.'], ['She', "'s", 'here', '.']]
    """
    return [
        [Token(*token) for token in zip(words, starts, ends, strict=True)]
        for words, starts, ends in split_offsets(text)
    ]
