"""The BiLSTM encoder's padding handling and the character encoders."""

from __future__ import annotations

import torch

from tagsure.layers.bilstm import BiLSTM, reverse_padded, time_segments
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


def test_inference_on_mixed_lengths_runs_in_time_segments_with_the_same_outputs() -> None:
    """At inference a batch of 1- to 70-token sentences runs only the rows still inside their
    sentences at each time segment; the outputs on real tokens equal the padded call's."""
    torch.manual_seed(0)
    lstm = BiLSTM(20, 16, layers=2).eval()
    lengths = torch.tensor([70, 3, 41, 1, 12, 70, 5, 2, 9, 33, 4, 1])
    x = torch.randn(len(lengths), 70, 20)
    assert len(time_segments(sorted(lengths.tolist(), reverse=True))) > 1
    with torch.no_grad():
        segmented = lstm(x, lengths)
    padded = lstm(x, lengths).detach()  # with gradients on: the plain padded call
    real = torch.arange(70).unsqueeze(0) < lengths.unsqueeze(1)
    assert segmented.shape == padded.shape
    assert torch.allclose(segmented[real], padded[real], atol=1e-6)
