"""The BiLSTM encoder's padding handling and the character encoders."""

from __future__ import annotations

import torch

from tagsure.layers.bilstm import BiLSTM, reverse_padded
from tagsure.layers.chars import CharCNN, CharLSTM


def test_reverse_padded_reverses_within_each_length() -> None:
    x = torch.arange(8.0).view(2, 4, 1)
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out.squeeze(2).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_padding_does_not_change_a_sentence_encoding() -> None:
    torch.manual_seed(0)
    encoder = BiLSTM(6, 5, layers=2).eval()
    short = torch.randn(1, 3, 6)
    padded = torch.cat([short, torch.randn(1, 4, 6)], dim=1)  # garbage in the padding
    alone = encoder(short, torch.tensor([3]))
    in_padding = encoder(padded, torch.tensor([3]))
    assert torch.allclose(alone, in_padding[:, :3], atol=1e-6)


def test_char_encoders_ignore_padding_characters() -> None:
    torch.manual_seed(0)
    for encoder in (CharCNN(10, 4, 6), CharLSTM(10, 4, 3)):
        encoder.eval()
        word = torch.tensor([[3, 4, 5]])
        padded = torch.tensor([[3, 4, 5, 0, 0]])
        assert torch.allclose(encoder(word), encoder(padded), atol=1e-6)
