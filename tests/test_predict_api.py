"""The Python API as Hugging Face's pipeline has it: a string is one text, a list many, a
stream a lazy stream; and train() shows progress and keeps the CLI's time limit."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagsure import InputError, Prediction, Tagger, TrainConfig, load_corpus, train
from tagsure.training.config import OptimConfig
from tests.helpers import BUNDLED, TINY_MODEL, write_conll

TEXTS = [
    "Angela Merkel met Emmanuel Macron in Paris.",
    "The European Union met in Brussels. It rained.",
    "",
    "Barack Obama visited Berlin.",
    "Microsoft hired John Smith in London.",
]


def test_a_string_is_one_text_not_a_list_of_characters(tiny_model: Path) -> None:
    tagger = Tagger.load(tiny_model)
    one = tagger.predict(TEXTS[0])
    assert isinstance(one, Prediction)
    assert one.tokens == ["Angela", "Merkel", "met", "Emmanuel", "Macron", "in", "Paris", "."]
    assert one == tagger.predict([TEXTS[0]])[0]


def test_a_list_gives_a_list_and_a_token_list_is_one_sentence(tiny_model: Path) -> None:
    tagger = Tagger.load(tiny_model)
    many = tagger.predict(TEXTS)
    assert isinstance(many, list) and len(many) == len(TEXTS)
    assert {"Brussels", "rained"} <= set(many[1].tokens)  # two sentences, one prediction
    assert many[2].tokens == [] and many[2].entities == []
    assert tagger.predict(tuple(TEXTS)) == many
    [tokens] = tagger.predict([["Angela", "Merkel", "met", "Macron"]])
    assert tokens.tokens == ["Angela", "Merkel", "met", "Macron"] and tokens.offsets is None


def test_a_stream_is_tagged_lazily_batch_size_at_a_time(tiny_model: Path) -> None:
    tagger = Tagger.load(tiny_model)
    read: list[str] = []

    def stream() -> Iterator[str]:
        for text in TEXTS:
            read.append(text)
            yield text

    out = tagger.predict(stream(), batch_size=2)
    assert not isinstance(out, list) and read == []  # nothing read until asked
    first = next(out)
    assert len(read) == 2  # one batch of inputs read, not the whole stream
    lazy, whole = [first, *out], tagger.predict(TEXTS)
    assert [(p.tags, p.offsets) for p in lazy] == [(p.tags, p.offsets) for p in whole]
    for a, b in zip(lazy, whole, strict=True):  # other batches: scores round differently
        assert [(e.label, e.start, e.end) for e in a.entities] == [
            (e.label, e.start, e.end) for e in b.entities
        ]
        assert [e.score for e in a.entities] == pytest.approx([e.score for e in b.entities])
    assert len(read) == len(TEXTS)


def test_batch_size_changes_batches_not_tags(tiny_model: Path) -> None:
    tagger = Tagger.load(tiny_model)
    sentences = [s.tokens for s in load_corpus(BUNDLED / "wikiann-en-dev.txt").sentences[:60]]
    by_one = tagger.predict(sentences, batch_size=1)
    assert [p.tags for p in by_one] == [p.tags for p in tagger.predict(sentences)]
    assert [p.tags for p in by_one] == tagger.tag(sentences, batch_size=7)[0]
    with pytest.raises(InputError, match="batch_size must be at least 1, not 0"):
        tagger.predict(TEXTS, batch_size=0)


def _corpora(folder: Path) -> tuple[Path, Path]:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    return (
        write_conll(folder / "train.txt", corpus.sentences[:120]),
        write_conll(folder / "dev.txt", corpus.sentences[120:160]),
    )


def test_train_shows_progress_unless_verbose_is_false(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_path, dev_path = _corpora(tmp_path)
    raw = {
        "data": {"train": str(train_path), "dev": str(dev_path)},
        "model": TINY_MODEL,
        "training": {"epochs": 2, "batch_size": 16},
    }
    train(TrainConfig.from_dict(raw))
    shown = capsys.readouterr()
    lines = re.findall(r"epoch +(\d+) +loss [\d.]+ .* dev P .* F1 [\d.]+", shown.out + shown.err)
    assert lines == ["1", "2"]
    train(TrainConfig.from_dict(raw), verbose=False)
    quiet = capsys.readouterr()
    assert quiet.out == "" and "epoch" not in quiet.err


def test_the_readme_training_settings_are_the_defaults_the_library_and_cli_use() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    documented = tomllib.loads(block.group(1))["training"]
    defaults = OptimConfig()
    assert documented == {name: getattr(defaults, name) for name in documented}
    assert defaults.max_minutes == 30  # tagsure.train() and `tagsure train` alike
