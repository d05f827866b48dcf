"""Token features shared by every tagger: word normalisation and casing classes.

Word embeddings see a normalised form (lower case, digits folded to 0) so that "Paris" and
"PARIS" share statistics; the casing the normalisation throws away comes back as a small casing
embedding, and the character encoder sees the raw token.
"""

from __future__ import annotations

import re

_DIGIT = re.compile(r"\d")

CASING_CLASSES = (
    "<pad>",
    "other",
    "numeric",
    "mainly_numeric",
    "all_lower",
    "all_upper",
    "initial_upper",
    "contains_digit",
    "punctuation",
)
_CASING_INDEX = {name: i for i, name in enumerate(CASING_CLASSES)}


def normalise_word(token: str, lowercase: bool = True) -> str:
    """Example: ``normalise_word("Year-2024") == "year-0000"``."""
    token = _DIGIT.sub("0", token)
    return token.lower() if lowercase else token


def casing_class(token: str) -> int:
    """Index into :data:`CASING_CLASSES` describing the token's shape."""
    digits = sum(c.isdigit() for c in token)
    if token.isdigit():
        name = "numeric"
    elif digits / len(token) > 0.5:
        name = "mainly_numeric"
    elif token.islower():
        name = "all_lower"
    elif token.isupper():
        name = "all_upper"
    elif token[0].isupper():
        name = "initial_upper"
    elif digits:
        name = "contains_digit"
    elif not any(c.isalnum() for c in token):
        name = "punctuation"
    else:
        name = "other"
    return _CASING_INDEX[name]
