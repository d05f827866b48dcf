"""Training end to end on small real data: overfitting, reproducibility, logs, stopping rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tagsure import TrainConfig, load_corpus, train
from tagsure.data.batching import bucketed_batches, shuffled_batches, split_by_padding
from tagsure.evaluation.metrics import evaluate
from tests.helpers import BUNDLED, TINY_MODEL, write_conll


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("small")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    return (
        write_conll(folder / "train.txt", corpus.sentences[:200]),
        write_conll(folder / "dev.txt", corpus.sentences[200:260]),
    )


def config_for(train_path: Path, dev_path: Path | None, **training: object) -> TrainConfig:
    data = {"train": str(train_path)} | ({"dev": str(dev_path)} if dev_path else {})
    return TrainConfig.from_dict(
        {
            "data": data,
            "model": dict(TINY_MODEL),
            "training": {"epochs": 2, "batch_size": 16, **training},
        }
    )


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_overfitting_a_tiny_set_gives_its_exact_entities(tmp_path: Path, head: str) -> None:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    sentences = corpus.sentences[:24]
    path = write_conll(tmp_path / "tiny.txt", sentences)
    config = config_for(path, None, epochs=60, learning_rate=0.01)
    config.model.update(dropout=0.0, word_dropout=0.0, head=head)
    tagger = train(config).tagger
    predicted, _ = tagger.tag([s.tokens for s in sentences])
    assert predicted == [s.tags for s in sentences]


def test_same_seed_same_weights_bit_for_bit(small_files: tuple[Path, Path]) -> None:
    first = train(config_for(*small_files, seed=7)).tagger.model.state_dict()
    second = train(config_for(*small_files, seed=7)).tagger.model.state_dict()
    other = train(config_for(*small_files, seed=8)).tagger.model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_logs_curve_and_selection_on_dev(small_files: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "run" / "model.tagsure"
    result = train(config_for(*small_files, epochs=3), out=out)
    lines = (tmp_path / "run" / "model.metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(0 <= r["dev"]["f1"] <= 1 for r in records)
    best = max(records, key=lambda r: r["dev"]["f1"])
    assert result.best_epoch == best["epoch"]
    dev = load_corpus(small_files[1])
    assert result.tagger.evaluate(dev).micro.f1 == best["dev"]["f1"]  # the best state was kept
    assert (tmp_path / "run" / "model.curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_limit_stops_training(small_files: tuple[Path, Path]) -> None:
    result = train(config_for(*small_files, epochs=50, max_minutes=0.001))
    assert len(result.history) == 1
    assert result.stop_reason == "reached the time limit of 0.001 minutes"


def test_metrics_on_real_predictions_equal_seqeval(small_files: tuple[Path, Path]) -> None:
    from seqeval.metrics import classification_report

    tagger = train(config_for(*small_files)).tagger
    test = load_corpus(BUNDLED / "wikiann-en-test.txt")
    gold = [s.tags for s in test.sentences]
    predicted, _ = tagger.tag([s.tokens for s in test.sentences])
    ours = evaluate(gold, predicted)
    reference = classification_report(gold, predicted, output_dict=True, digits=10)
    assert ours.micro.f1 == pytest.approx(reference["micro avg"]["f1-score"], abs=1e-12)
    for label, prf in ours.per_type.items():
        assert prf.precision == pytest.approx(reference[label]["precision"], abs=1e-12)
        assert prf.recall == pytest.approx(reference[label]["recall"], abs=1e-12)
        assert prf.gold == reference[label]["support"]


def test_random_batches_cover_every_sentence_once_and_mix_lengths() -> None:
    lengths = np.repeat(np.arange(1, 41), 8)  # 320 sentences, 8 of each length
    rng = np.random.default_rng(0)
    for make in (
        lambda: bucketed_batches(lengths, 16, rng),
        lambda: shuffled_batches(len(lengths), 16, rng),
    ):
        batches = make()
        assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    spread = [np.ptp(lengths[ids]) for ids in shuffled_batches(len(lengths), 16, rng)]
    grouped = [np.ptp(lengths[ids]) for ids in bucketed_batches(lengths, 16, rng)]
    assert max(grouped) <= 1 and np.median(spread) > 20


def test_group_by_length_off_trains_reproducibly_on_other_batches(
    small_files: tuple[Path, Path],
) -> None:
    grouped = train(config_for(*small_files, seed=7)).tagger.model.state_dict()
    mixed = train(config_for(*small_files, seed=7, group_by_length=False)).tagger.model
    again = train(config_for(*small_files, seed=7, group_by_length=False)).tagger.model
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in mixed.state_dict().items())
    assert not all(torch.equal(v, mixed.state_dict()[k]) for k, v in grouped.items())


def test_split_by_padding_keeps_every_sentence_and_pads_less() -> None:
    lengths = np.array([1, 1, 1, 1, 2, 2, 30, 31, 32, 40, 40, 3, 3, 3, 3, 60])
    ids = np.arange(100, 116)
    groups = split_by_padding(ids, lengths)
    assert sorted(np.concatenate(groups).tolist()) == ids.tolist()
    padded = sum(len(g) * lengths[g - 100].max() for g in groups)
    assert len(groups) > 1 and padded < 0.4 * len(ids) * lengths.max()
    assert [len(g) for g in split_by_padding(ids, np.full(16, 7))] == [16]  # one length: whole


def test_micro_batches_take_the_same_optimizer_steps(small_files: tuple[Path, Path]) -> None:
    def weights(split: bool) -> dict[str, torch.Tensor]:
        config = config_for(*small_files, group_by_length=False, split_by_length=split)
        config.model.update(dropout=0.0, word_dropout=0.0)  # no random masks to differ
        return train(config).tagger.model.state_dict()

    whole, split = weights(False), weights(True)
    for name, value in whole.items():
        torch.testing.assert_close(split[name], value, rtol=1e-4, atol=1e-5, msg=name)
