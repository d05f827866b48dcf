"""Hugging Face interoperability, checked against `transformers`' own outputs.

Import: a token-classification directory becomes a tagsure model whose scores equal the
logits ``transformers`` gives each word's first subword. Export: the directory written loads
with ``AutoModelForTokenClassification.from_pretrained`` with the same labels and logits. And
the 3-label IOB head keeps its size through training, saving, a fresh-process load, export and
import.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from tagsure import Tagger, TrainConfig, load_corpus
from tagsure.data.schemes import convert
from tagsure.interop.huggingface import CRF_FILE, export_hf, import_hf
from tests.helpers import BUNDLED, ensure_model_can_train_save_and_load, write_conll
from tests.hf_models import make_encoder_dir, make_token_classifier_dir, transformers_logits

pytest.importorskip("transformers")

IOB3 = ["O", "B-X", "I-X"]
NINE = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def sentences(n: int = 25) -> list[list[str]]:
    return [s.tokens for s in load_corpus(BUNDLED / "wikiann-en-dev.txt").sentences[:n]]


def assert_same_as_transformers(tagger: Tagger, directory: Path, words: list[list[str]]) -> None:
    reference = transformers_logits(directory, words)
    ours = tagger.emissions(words)
    for i, (expected, got) in enumerate(zip(reference, ours, strict=True)):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4, msg=f"sentence {i}")
    # The same label per word; tagsure's output then repairs what the scheme forbids (an I-
    # after O becomes B-), exactly as it does for its own taggers' arg-max decoding.
    expected_ids = [e.argmax(dim=1).tolist() for e in reference]
    assert [e.argmax(dim=1).tolist() for e in ours] == expected_ids
    tags, _ = tagger.tag(words)
    labels, scheme = tagger.labels, tagger.model_scheme
    assert tags == [convert([labels[j] for j in ids], scheme, scheme) for ids in expected_ids]


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
def test_import_predicts_what_transformers_predicts(kind: str, tmp_path: Path) -> None:
    directory = make_token_classifier_dir(tmp_path / "hf", kind, NINE)
    tagger = import_hf(directory, tmp_path / "model.tagsure")
    assert tagger.labels == NINE
    assert tagger.model.emission.out_features == len(NINE)
    words = sentences()
    assert_same_as_transformers(tagger, directory, words)
    # the file alone, verified by its fingerprint, gives the same
    reloaded = Tagger.load(tmp_path / "model.tagsure")
    for a, b in zip(reloaded.emissions(words), tagger.emissions(words), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_export_loads_in_transformers_with_the_same_logits(kind: str, tmp_path: Path) -> None:
    from transformers import AutoModelForTokenClassification

    tagger = import_hf(make_token_classifier_dir(tmp_path / "hf", kind, NINE), tmp_path / "m")
    export_hf(tagger, tmp_path / "exported")
    model = AutoModelForTokenClassification.from_pretrained(tmp_path / "exported")
    assert model.config.num_labels == len(NINE)
    assert model.config.id2label == dict(enumerate(NINE))
    assert_same_as_transformers(tagger, tmp_path / "exported", sentences())


def test_import_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tagsure.cli.main import main

    directory = make_token_classifier_dir(tmp_path / "hf", "bert", IOB3)
    sys.argv = ["tagsure", "import-hf", str(directory), str(tmp_path / "model.tagsure")]
    main()
    assert "3 labels (O, B-X, I-X), IOB2" in capsys.readouterr().out
    assert Tagger.load(tmp_path / "model.tagsure").labels == IOB3


def test_import_refuses_a_directory_without_labels(tmp_path: Path) -> None:
    directory = make_encoder_dir(tmp_path / "hf", "bert")
    config = json.loads((directory / "config.json").read_text())
    config.pop("id2label", None)
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no id2label"):
        import_hf(directory, tmp_path / "m")


@pytest.fixture(scope="module")
def iob_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """WikiANN with every entity type renamed X: a 3-label IOB task (O, B-X, I-X)."""
    folder = tmp_path_factory.mktemp("iob")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    for sentence in corpus.sentences:
        sentence.tags = [t if t == "O" else t[:2] + "X" for t in sentence.tags or []]
    return (
        write_conll(folder / "train.txt", corpus.sentences[:100]),
        write_conll(folder / "dev.txt", corpus.sentences[300:340]),
    )


def iob_config(directory: Path, corpus: tuple[Path, Path], **model: object) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": {"train": str(corpus[0]), "dev": str(corpus[1]), "tag_scheme": "IOB2"},
            "model": {"architecture": "pretrained", "pretrained": str(directory), **model},
            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "seed": 5},
        }
    )


def test_three_label_iob_head_keeps_its_size_everywhere(
    iob_corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForTokenClassification

    encoder_dir = make_encoder_dir(tmp_path / "encoder", "bert")
    config = iob_config(encoder_dir, iob_corpus)
    # train, save, reload in a fresh process: bit-identical emissions
    tagger, _ = ensure_model_can_train_save_and_load(config, iob_corpus[1], tmp_path)
    assert tagger.labels == IOB3
    assert tuple(tagger.model.emission.weight.shape) == (3, 32)
    loaded = Tagger.load(tmp_path / "model.tagsure")
    assert loaded.model.emission.out_features == 3
    # export: transformers sees 3 labels, not the 400-way vocabulary head
    export_hf(loaded, tmp_path / "exported")
    hf = AutoModelForTokenClassification.from_pretrained(tmp_path / "exported")
    assert hf.config.num_labels == 3 and hf.config.id2label == dict(enumerate(IOB3))
    assert hf.classifier.out_features == 3
    words = sentences()
    assert_same_as_transformers(loaded, tmp_path / "exported", words)
    # and back: import gives the 3-label tagger with the same scores
    imported = import_hf(tmp_path / "exported", tmp_path / "reimported.tagsure")
    assert imported.labels == IOB3 and imported.model.emission.out_features == 3
    for a, b in zip(imported.emissions(words), loaded.emissions(words), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_crf_export_says_what_is_left_out(
    iob_corpus: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tagsure import train

    encoder_dir = make_encoder_dir(tmp_path / "encoder", "bert")
    tagger = train(iob_config(encoder_dir, iob_corpus, head="crf")).tagger
    with caplog.at_level(logging.WARNING):
        export_hf(tagger, tmp_path / "exported")
    assert "the CRF is not part of the Hugging Face model" in caplog.text
    crf = json.loads((tmp_path / "exported" / CRF_FILE).read_text())
    assert crf["labels"] == IOB3 and len(crf["transitions"]) == 3
    # the emissions are exported exactly; only the decoding differs
    reference = transformers_logits(tmp_path / "exported", sentences())
    for got, expected in zip(tagger.emissions(sentences()), reference, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_export_refuses_what_transformers_cannot_represent(
    iob_corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    from tagsure.data.schemes import TagScheme
    from tagsure.tagger import Tagger as TaggerClass
    from tagsure.training.setup import prepare_model

    encoder_dir = make_encoder_dir(tmp_path / "encoder", "bert")
    config = iob_config(encoder_dir, iob_corpus, pooling="mean", char_encoder="cnn")
    encoder, network = prepare_model(config, load_corpus(iob_corpus[0]), TagScheme.IOB2)
    tagger = TaggerClass(network, encoder, TagScheme.IOB2, TagScheme.IOB2)
    with pytest.raises(ValueError, match="pooling 'mean'.*character features"):
        export_hf(tagger, tmp_path / "exported")
