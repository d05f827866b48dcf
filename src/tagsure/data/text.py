"""Split raw text into sentences and tokens, keeping each token's character offsets.

We use segtok, the rule-based segmenter and tokenizer flair uses, so raw-text predictions are
tokenised the way CoNLL-style training data usually is ("U.S." stays one token, "don't" splits).
"""

from __future__ import annotations

from dataclasses import dataclass

from segtok.segmenter import split_single
from segtok.tokenizer import split_contractions, word_tokenizer


@dataclass(frozen=True)
class Token:
    text: str
    start: int  # character offset in the input string
    end: int  # exclusive


def split_sentences(text: str) -> list[list[Token]]:
    """Sentences of ``text`` as token lists with offsets into ``text``.

    Example:
        >>> [[t.text for t in s] for s in split_sentences("I met Ann. She's here.")]
        [['I', 'met', 'Ann', '.'], ['She', "'s", 'here', '.']]
    """
    sentences: list[list[Token]] = []
    cursor = 0
    for sentence in split_single(text):
        tokens: list[Token] = []
        for word in split_contractions(word_tokenizer(sentence)):
            if not word:  # segtok splits an already split "do n't" into "do", "", "n't"
                continue
            start = text.find(word, cursor)
            if start < 0:  # the tokenizer normalised the token; keep it, without moving on
                start, end = cursor, cursor
            else:
                end = start + len(word)
                cursor = end
            tokens.append(Token(word, start, end))
        if tokens:
            sentences.append(tokens)
    return sentences
