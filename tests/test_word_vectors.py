"""Pretrained word vectors: every word of the file joins the vocabulary (or the first
``max_vectors``), so a word never seen in training is tagged with its vector after reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tagsure import Tagger, load_corpus, train
from tagsure.data.features import normalise_word
from tagsure.data.schemes import TagScheme
from tagsure.data.vocab import Vocabulary
from tagsure.data.word_vectors import read_vectors
from tagsure.errors import ConfigError, InputError
from tagsure.training.setup import prepare_model
from tests.helpers import BUNDLED, tiny_config, write_conll

DIM = 16  # tiny_config's word_dim
UNSEEN = ["zyxlandia", "qworpville", "blimfrost"]  # in no bundled sentence


def vectors_file(path: Path, words: list[str], dim: int = DIM, header: bool = True) -> Path:
    rng = np.random.default_rng(7)
    rows = [f"{w} " + " ".join(f"{x:.6f}" for x in rng.normal(size=dim)) for w in words]
    path.write_text(
        ("\n".join([f"{len(words)} {dim}", *rows]) if header else "\n".join(rows)) + "\n",
        encoding="utf-8",
    )
    return path


def file_rows(path: Path) -> dict[str, torch.Tensor]:
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        word, *numbers = line.split(" ")
        rows[word] = torch.tensor([float(x) for x in numbers])
    return rows


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("vectors")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    return (
        write_conll(folder / "train.txt", corpus.sentences[:300]),
        write_conll(folder / "dev.txt", corpus.sentences[300:400]),
    )


def test_a_word_absent_from_training_gets_its_vector_after_reload(
    corpora: tuple[Path, Path], tmp_path: Path
) -> None:
    train_path, dev_path = corpora
    sentences = load_corpus(train_path).sentences
    training_words = {normalise_word(t) for s in sentences for t in s.tokens}
    assert not training_words & set(UNSEEN)
    in_training = sorted(training_words)[:50]
    path = vectors_file(tmp_path / "vectors.txt", [*in_training, *UNSEEN])
    config = tiny_config(train_path, dev_path)
    config.data.word_vectors = str(path)
    model_path = tmp_path / "model.tagsure"
    train(config, out=model_path)

    tagger = Tagger.load(model_path)  # the rows live in the file's embedding tensor
    vocabulary, weight = tagger.vectorizer.words, tagger.model.words.weight.detach()
    assert len(vocabulary) == len(training_words) + 2 + len(UNSEEN)
    rows = file_rows(path)
    for word in UNSEEN:
        index = vocabulary.index(word)
        assert index != Vocabulary.unk_index
        # Never in a batch, so no gradient moved it: exactly the file's row, in float32.
        assert torch.equal(weight[index], rows[word].float())
    # Predict time: the unseen word (any casing) reads its own row, an unknown word <unk>.
    data = tagger.vectorizer.encode([["Zyxlandia", "Nowherexyz", "."]])
    assert data.words.tolist() == [
        vocabulary.index("zyxlandia"),
        Vocabulary.unk_index,
        vocabulary.index("."),
    ]
    # Training words start from the file's rows and moved while training.
    assert not torch.equal(weight[vocabulary.index(in_training[0])], rows[in_training[0]])


def test_without_vectors_the_unseen_word_is_unknown(corpora: tuple[Path, Path]) -> None:
    train_path, dev_path = corpora
    config = tiny_config(train_path, dev_path)
    vectorizer, _ = prepare_model(config, load_corpus(train_path), TagScheme.BIOES)
    assert vectorizer.words.index("zyxlandia") == Vocabulary.unk_index


def test_max_vectors_keeps_the_first_rows_and_word_dim_follows_the_file(
    corpora: tuple[Path, Path], tmp_path: Path
) -> None:
    train_path, dev_path = corpora
    path = vectors_file(tmp_path / "v.txt", UNSEEN, dim=12)
    config = tiny_config(train_path, dev_path)
    config.model.pop("word_dim")
    config.data.word_vectors, config.data.max_vectors = str(path), 2
    corpus = load_corpus(train_path)
    vectorizer, model = prepare_model(config, corpus, TagScheme.BIOES)
    assert model.config.word_dim == 12
    assert [vectorizer.words.index(w) != Vocabulary.unk_index for w in UNSEEN] == [
        True,
        True,
        False,
    ]
    row = model.words.weight[vectorizer.words.index("qworpville")].detach()
    assert torch.equal(row, file_rows(path)["qworpville"].float())
    assert torch.equal(model.words.weight[0].detach(), torch.zeros(12))  # padding


def test_vectors_files_that_cannot_be_used_say_why(
    corpora: tuple[Path, Path], tmp_path: Path
) -> None:
    train_path, dev_path = corpora
    config = tiny_config(train_path, dev_path)  # word_dim 16
    config.data.word_vectors = str(vectors_file(tmp_path / "v8.txt", UNSEEN, dim=8))
    with pytest.raises(ConfigError, match=r"8 dimensions but \[model\] word_dim = 16; remove"):
        prepare_model(config, load_corpus(train_path), TagScheme.BIOES)
    bad = tmp_path / "bad.txt"
    bad.write_text("paris 1 2 3\nlondon 1 2\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.txt:2: expected a word and 3 numbers"):
        read_vectors(bad)
    bad.write_text("paris 1 x 3\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.txt:1: a number that is not one"):
        read_vectors(bad)


def test_glove_without_header_and_first_of_duplicate_forms(tmp_path: Path) -> None:
    path = tmp_path / "glove.txt"
    path.write_text("Paris 1 2\nparis 3 4\n1999 5 6\n2000 7 8\n", encoding="utf-8")
    vectors = read_vectors(path)
    assert vectors.words == ["paris", "0000"]  # digits fold to 0, as the vocabulary's words
    assert vectors.matrix.tolist() == [[1.0, 2.0], [5.0, 6.0]]
    assert read_vectors(path, lowercase=False).words == ["Paris", "paris", "0000"]
