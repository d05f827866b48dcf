"""The BiLSTM encoder's padding handling and the character encoders."""

from __future__ import annotations

import torch

from tagsure.layers.bilstm import BiLSTM, reverse_padded, time_segments
from tagsure.layers.chars import CharCNN, CharLSTM
from tagsure.layers.lookup import GradIntoPlaceEmbedding


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


def test_grad_into_place_embedding_adds_each_pass_into_one_gradient() -> None:
    torch.manual_seed(0)
    plain = torch.nn.Embedding(50, 4, padding_idx=0)
    fast = GradIntoPlaceEmbedding.replacing(torch.nn.Embedding(50, 4, padding_idx=0))
    fast.weight.data.copy_(plain.weight.data)
    assert list(fast.state_dict()) == ["weight"]  # the same key as nn.Embedding's
    passes = [torch.tensor([[3, 7, 7, 0]]), torch.tensor([[7, 9], [0, 3]]), torch.tensor([[1]])]
    for step in range(2):  # zero_grad between steps: the second starts from a zeroed buffer
        for module in (plain, fast):
            module.weight.grad = None
            for ids in passes:  # micro-batches: their gradients add up
                (module(ids) * torch.arange(1.0, 5.0) * (step + 1)).sum().backward()
        assert torch.equal(fast(passes[0]), plain(passes[0]))  # the same forward
        assert torch.allclose(fast.weight.grad, plain.weight.grad, atol=1e-6)
        assert fast.weight.grad[0].abs().sum() == 0  # the padding row learns nothing
        assert fast.weight.grad[7].tolist() == [3.0 * (step + 1) * k for k in (1, 2, 3, 4)]
    with torch.no_grad():  # no autograd: nn.Embedding's own forward
        assert torch.equal(fast(passes[1]), plain(passes[1]))
    fast.eval()
    assert fast.spare_grad is None  # a tagger done training keeps no gradient buffer


def test_pretrained_encoder_fine_tunes_its_word_table_with_in_place_gradients() -> None:
    from tagsure.layers.pretrained import build_transformer

    config = {"model_type": "bert", "vocab_size": 40, "hidden_size": 8, "num_hidden_layers": 1}
    config |= {"num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 16}
    model = build_transformer(config)
    words = model.get_input_embeddings()
    assert isinstance(words, GradIntoPlaceEmbedding)
    assert "embeddings.word_embeddings.weight" in model.state_dict()
    model(input_ids=torch.tensor([[2, 5, 5, 0]])).last_hidden_state.sum().backward()
    assert words.weight.grad is not None and words.weight.grad[5].abs().sum() > 0
    assert words.weight.grad[9].abs().sum() == 0  # a row no pass used
