"""The transformer tagger: masks (padded rows, length-1 sentences), positions, exact reload."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tagsure import TrainConfig, load_corpus, train
from tagsure.data.schemes import TagScheme, convert
from tagsure.layers.attention import MultiHeadSelfAttention, sinusoidal_positions
from tagsure.models.transformer_tagger import TransformerConfig, TransformerTagger
from tagsure.training.setup import prepare_model
from tests.helpers import BUNDLED, ensure_model_can_train_save_and_load, tiny_config, write_conll

TINY_TRANSFORMER = {"architecture": "transformer", "heads": 2, "layers": 2, "ff_size": 32}


def network(head: str = "crf", **settings: object) -> tuple[object, TransformerTagger, object]:
    """An untrained transformer sized to 200 bundled sentences, in eval mode, and its data."""
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    sentences = corpus.sentences[:200]
    model = {**TINY_TRANSFORMER, "hidden_size": 16, "head": head, **settings}
    config = TrainConfig.from_dict({"model": model})
    torch.manual_seed(0)
    encoder, net = prepare_model(config, corpus, TagScheme.BIOES)
    tags = [convert(s.tags or [], corpus.scheme, TagScheme.BIOES) for s in sentences]
    # Plus sentences of one token, which WikiANN's first 200 lack.
    tokens = [s.tokens for s in sentences] + [["Paris"], ["."], ["Merkel"]]
    data = encoder.encode(tokens, tags + [["S-LOC"], ["O"], ["S-PER"]])
    return encoder, net.eval(), data


def test_sinusoidal_positions_match_the_formula() -> None:
    table = sinusoidal_positions(7, 6)
    for pos in range(7):
        for i in range(3):
            angle = pos / 10000 ** (2 * i / 6)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd widths too


def test_attention_on_a_fully_padded_row_is_finite_and_ignores_padding() -> None:
    torch.manual_seed(0)
    attention = MultiHeadSelfAttention(8, 2)
    x = torch.randn(3, 5, 8, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out = attention(x, mask)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all()
    # Real tokens see only real tokens: changing padded inputs changes nothing for them.
    noisy = x.detach().clone()
    noisy[~mask] = 1e3
    again = attention(noisy, mask)
    assert torch.equal(again[mask], out.detach()[mask])


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_batched_equals_one_sentence_at_a_time(head: str) -> None:
    _, net, data = network(head)
    lengths = data.lengths
    # The 40 sentences include the shortest (one token) and the longest of the sample.
    ids = np.concatenate([np.argsort(lengths)[:20], np.argsort(lengths)[-20:]])
    assert lengths[ids].min() == 1
    with torch.no_grad():
        batch = data.batch(ids)
        emissions = net.emissions(batch)
        paths = net.decode(batch)
        for row, i in enumerate(ids):
            alone = data.batch([i])
            n = int(lengths[i])
            torch.testing.assert_close(
                net.emissions(alone)[0, :n], emissions[row, :n], atol=1e-5, rtol=1e-5
            )
            assert torch.equal(net.decode(alone)[0], paths[row, :n])


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_a_fully_padded_row_changes_nothing_and_stays_finite(head: str) -> None:
    _, net, data = network(head)
    batch = data.batch(np.arange(8))
    # The same batch with an extra sentence of zero tokens (all padding).
    padded = replace(
        batch,
        words=torch.cat([batch.words, torch.zeros_like(batch.words[:1])]),
        cases=torch.cat([batch.cases, torch.zeros_like(batch.cases[:1])]),
        char_index=torch.cat([batch.char_index, torch.zeros_like(batch.char_index[:1])]),
        mask=torch.cat([batch.mask, torch.zeros_like(batch.mask[:1])]),
        lengths=torch.cat([batch.lengths, torch.zeros(1, dtype=torch.int64)]),
        tags=torch.cat([batch.tags, torch.zeros_like(batch.tags[:1])]),
    )
    net.train()  # loss with dropout too: its masks must not make padding matter
    torch.manual_seed(1)
    loss = net.loss(padded)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    net.eval()
    with torch.no_grad():
        emissions = net.emissions(padded)
        assert torch.isfinite(emissions).all()
        torch.testing.assert_close(emissions[:8][batch.mask], net.emissions(batch)[batch.mask])
        paths = net.decode(padded)
        assert torch.equal(paths[:8], net.decode(batch))
        assert not paths[8].any()
        assert net.loss(padded).item() == pytest.approx(net.loss(batch).item(), rel=1e-5)


def test_learned_positions_refuse_too_long_sentences_with_the_fix() -> None:
    _, net, data = network(positions="learned", max_positions=8)
    long_one = int(np.argmax(data.lengths))
    with pytest.raises(ValueError, match="max_positions=8.*positions = 'sinusoidal'"):
        net.emissions(data.batch([long_one]))


def test_settings_are_checked_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="choose 'cnn' or 'none'"):
        TransformerTagger(TransformerConfig(10, 10, 5, char_encoder="lstm"))
    with pytest.raises(ValueError, match="multiple of heads 3"):
        TransformerTagger(TransformerConfig(10, 10, 5, hidden_size=16, heads=3))
    with pytest.raises(ValueError, match="unknown \\[model\\] settings \\['hidden'\\]"):
        TrainConfig.from_dict({"model": {"architecture": "transformer", "hidden": 3}})


def test_overfitting_a_tiny_set_gives_its_exact_entities(tmp_path: Path) -> None:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    sentences = corpus.sentences[:24]
    path = write_conll(tmp_path / "tiny.txt", sentences)
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(path)},
            "model": {**TINY_TRANSFORMER, "hidden_size": 32, "dropout": 0.0, "word_dropout": 0.0},
            "training": {"epochs": 60, "batch_size": 16, "learning_rate": 0.01},
        }
    )
    tagger = train(config).tagger
    predicted, _ = tagger.tag([s.tokens for s in sentences])
    assert predicted == [s.tags for s in sentences]


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_fresh_process_reload_is_exact(tmp_path: Path, head: str) -> None:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(tmp_path / "train.txt", corpus.sentences[:300])
    dev_path = write_conll(tmp_path / "dev.txt", corpus.sentences[300:400])
    config = tiny_config(train_path, dev_path, **TINY_TRANSFORMER, head=head)
    tagger, _ = ensure_model_can_train_save_and_load(
        config, BUNDLED / "wikiann-en-test.txt", tmp_path
    )
    assert type(tagger.model).__name__ == "TransformerTagger"
