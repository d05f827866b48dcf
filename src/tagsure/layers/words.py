"""Word embeddings, trained from scratch or initialised from a local word-vector text file."""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

from tagsure.data.features import normalise_word
from tagsure.data.vocab import Vocabulary
from tagsure.errors import InputError

logger = logging.getLogger(__name__)


class WordDropout(nn.Module):
    """Replace whole words by the unknown index with probability ``p`` while training.

    This teaches the model to tag from characters and context when a word is unseen, which is
    the common case on new text.
    """

    def __init__(self, p: float, unk_index: int = Vocabulary.unk_index) -> None:
        super().__init__()
        self.p = p
        self.unk_index = unk_index

    def forward(self, words: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T)
        if not self.training or self.p == 0:
            return words
        drop = torch.rand(words.shape) < self.p
        return words.masked_fill(drop & (words != 0), self.unk_index)


class LockedDropout(nn.Module):
    """Dropout with one mask per sentence, shared across time steps (Gal & Ghahramani, 2016).

    Flair uses it too. Drawing (B, 1, D) random numbers instead of (B, T, D) also makes it
    several times cheaper on CPU, where random-number generation is a visible cost.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, T, D)
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape[0], 1, x.shape[2]) >= self.p
        return x * keep / (1 - self.p)


def read_word_vectors(
    path: str | os.PathLike[str], vocab: Vocabulary, dim: int, lowercase: bool = True
) -> tuple[torch.Tensor, int]:
    """Rows for ``vocab`` from a word2vec / GloVe / fastText text file; unseen rows stay random.

    Returns the ``(len(vocab), dim)`` matrix and how many vocabulary words were found. The
    first line of a word2vec/fastText file (``count dim``) is recognised and skipped.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "v.txt"
        >>> _ = p.write_text("paris 1 2\\n")
        >>> read_word_vectors(p, Vocabulary.build(["paris"]), 2)[1]
        1
    """
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(len(vocab), dim, generator=generator) * 0.1
    matrix[Vocabulary.pad_index] = 0
    found = 0
    with open(path, encoding="utf-8", errors="strict") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip().split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue
            if len(parts) != dim + 1:
                raise InputError(
                    f"{path}:{number}: expected a word and {dim} numbers, found {len(parts) - 1}"
                )
            word = normalise_word(parts[0], lowercase)
            index = vocab.index(word)
            if index == Vocabulary.unk_index and word not in vocab:
                continue
            matrix[index] = torch.tensor([float(x) for x in parts[1:]])
            found += 1
    logger.info("%s: %d of %d vocabulary words have vectors", path, found, len(vocab))
    return matrix, found
