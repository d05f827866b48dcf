"""Word dropout and locked dropout, the regularisers of word features (pretrained vectors are
read by :mod:`tagsure.data.word_vectors`)."""

from __future__ import annotations

import torch
from torch import nn

from tagsure.data.vocab import Vocabulary


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
