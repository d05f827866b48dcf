"""Character-level word representations: a CNN (Ma & Hovy, 2016) or a BiLSTM (Lample et al.)."""

from __future__ import annotations

import torch
from torch import nn

from tagsure.errors import ConfigError
from tagsure.layers.bilstm import run_lstm


class CharCNN(nn.Module):
    """Embed characters, convolve, max-pool over the word: one vector per unique token."""

    def __init__(self, num_chars: int, char_dim: int, filters: int, kernel: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, filters, kernel, padding=kernel // 2)
        self.output_dim = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:  # (U, L) -> (U, filters)
        x = self.embedding(chars).transpose(1, 2)  # (U, char_dim, L)
        h = self.conv(x)  # (U, filters, L)
        # Padding positions must not win the max; -inf would give nan gradients on empty rows.
        h = h.masked_fill((chars == 0).unsqueeze(1), -1e4)
        return h.max(dim=2).values


class CharLSTM(nn.Module):
    """Final forward and backward states of a BiLSTM over the characters of each unique token."""

    def __init__(self, num_chars: int, char_dim: int, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.lstm = nn.LSTM(char_dim, hidden, batch_first=True, bidirectional=True)
        self.output_dim = 2 * hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:  # (U, L) -> (U, 2 * hidden)
        lengths = (chars != 0).sum(dim=1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embedding(chars), lengths, batch_first=True, enforce_sorted=False
        )
        _, (h, _) = run_lstm(self.lstm, packed)  # h: (2, U, hidden)
        return torch.cat([h[0], h[1]], dim=1)


def build_char_encoder(kind: str, num_chars: int, char_dim: int, size: int) -> CharCNN | CharLSTM:
    if kind == "cnn":
        return CharCNN(num_chars, char_dim, size)
    if kind == "lstm":
        return CharLSTM(num_chars, char_dim, size)
    raise ConfigError(f"unknown character encoder {kind!r}; choose 'cnn' or 'lstm'")
