"""Character language models and contextual string embeddings, reloaded exactly in the tagger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tagsure import Tagger, TrainConfig, load_corpus
from tagsure.data.batching import bucketed_batches
from tagsure.errors import ModelFileError
from tagsure.layers.char_lm import (
    CharLanguageModel,
    CharLMConfig,
    ContextualStringEmbeddings,
    pooled_by_word,
    sentence_chars,
)
from tagsure.layers.char_text import pooled_by_word_arrays
from tagsure.models.bilstm_crf import BiLSTMConfig, BiLSTMTagger
from tagsure.storage import fingerprint
from tagsure.storage.lm_file import load_lm
from tagsure.training.compiled import compile_tagger
from tagsure.training.lm_trainer import LMTrainConfig, resume_lm, train_lm
from tests.conftest import shared_file
from tests.helpers import (
    BUNDLED,
    TINY_LM,
    TINY_MODEL,
    ensure_model_can_train_save_and_load,
    train_tiny_lms,
    write_conll,
)


def tiny_lm(direction: str, chars: str = "abcdefghijklmnopqrstuvwxyz \n") -> CharLanguageModel:
    torch.manual_seed(0)
    config = CharLMConfig(list(chars), direction, embedding_dim=8, hidden_size=6, dropout=0.0)
    return CharLanguageModel(config).eval()


def test_each_word_is_embedded_at_its_last_char_forward_and_first_char_backward() -> None:
    sentences = [["ab", "cde"], ["f"]]
    for direction, expected in (("forward", ["b", "e", "f"]), ("backward", ["a", "c", "f"])):
        lm = tiny_lm(direction)
        chars = sentence_chars(lm, sentences)
        picked = [
            lm.config.chars[int(chars.ids[row, int(chars.positions[row, k])]) - 1]
            for row, n in ((0, 2), (1, 1))
            for k in range(n)
        ]
        assert picked == expected, direction
    # The backward LM reads the sentence reversed: start marker last.
    backward = sentence_chars(tiny_lm("backward"), [["ab"]])
    assert backward.ids[0].tolist() == tiny_lm("backward").encode_text("\nab ").tolist()
    assert backward.ids[0, -1] == tiny_lm("forward").index["\n"]


def test_batched_embeddings_equal_one_sentence_at_a_time() -> None:
    embeddings = ContextualStringEmbeddings(
        [tiny_lm("forward").config, tiny_lm("backward").config]
    ).eval()
    sentences = [["the", "cat"], ["a"], ["dogs", "bark", "at", "night"]]
    batched = embeddings(sentences)  # (3, 4, 12)
    assert batched.shape == (3, 4, 12)
    for row, sentence in enumerate(sentences):
        alone = embeddings([sentence])[0]
        torch.testing.assert_close(batched[row, : len(sentence)], alone, rtol=0, atol=1e-6)


def test_lm_learns_and_an_interrupted_run_resumes_exactly(tmp_path: Path) -> None:
    config = LMTrainConfig(conll=[str(BUNDLED / "wikiann-en-train.txt")], epochs=2, **TINY_LM)
    straight = train_lm(config, tmp_path / "straight.lm")
    assert straight[1].holdout_bpc < straight[0].holdout_bpc < 6.0

    class Interrupt(Exception):
        pass

    class StopAfter:
        def __init__(self, batches: int) -> None:
            self.left = batches

        def epoch_start(self, epoch: int, batches: int) -> None:
            pass

        def batch_end(self, loss: float, tokens: int) -> None:
            self.left -= 1
            if self.left == 0:
                raise Interrupt

        def epoch_end(self, record: object) -> None:
            pass

    # ~150 steps per epoch: stop in the second epoch, 5 steps after a checkpoint
    with pytest.raises(Interrupt):
        train_lm(config, tmp_path / "resumed.lm", StopAfter(200), tmp_path / "ckpt", 15)
    resumed = resume_lm(tmp_path / "ckpt")
    assert [r.holdout_bpc for r in resumed] == [r.holdout_bpc for r in straight]
    a, b = load_lm(tmp_path / "straight.lm"), load_lm(tmp_path / "resumed.lm")
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    # a finished run goes on, written where this call says (not over the first run's file)
    extended = resume_lm(tmp_path / "ckpt", epochs=3, out=tmp_path / "extended.lm")
    assert [r.epoch for r in extended] == [1, 2, 3]
    assert extended[:2] == resumed
    assert (tmp_path / "extended.lm").is_file()
    for name, tensor in a.state_dict().items():  # the first run's file is untouched
        assert torch.equal(tensor, load_lm(tmp_path / "resumed.lm").state_dict()[name]), name


def test_lm_file_errors_name_the_file(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(ModelFileError, match="not a tagsure character language model"):
        load_lm(tiny_model)
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"fine line\ncaf\xe9\n")
    with pytest.raises(ValueError, match=r"latin1.txt:2: not UTF-8"):
        train_lm(LMTrainConfig(text=[str(bad)]), tmp_path / "x.lm")


def bundled_lm_tagger(
    folder: Path, train: int, dev: int, epochs: int, **model: object
) -> tuple[TrainConfig, Path, list[Path]]:
    """Tiny LMs trained on bundled WikiANN text, and a tagger config that stacks them in."""
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    text = folder / "text.txt"
    text.write_text("\n".join(" ".join(s.tokens) for s in corpus.sentences[:1000]))
    lms = train_tiny_lms(folder, text)
    train_path = write_conll(folder / "train.txt", corpus.sentences[:train])
    dev_path = write_conll(folder / "dev.txt", corpus.sentences[train : train + dev])
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": {**TINY_MODEL, "char_language_models": [str(p) for p in lms], **model},
            "training": {"epochs": epochs, "seed": 2},
        }
    )
    return config, dev_path, lms


def test_cached_features_equal_the_ones_computed_per_batch(tmp_path: Path) -> None:
    config, dev_path, lms = bundled_lm_tagger(tmp_path, train=200, dev=100, epochs=1)
    from tagsure.training.trainer import train

    tagger = train(config).tagger
    data = tagger.vectorizer.encode([s.tokens for s in load_corpus(dev_path).sentences])
    cached = tagger.model.frozen_features(data)
    for ids in bucketed_batches(data.lengths, 7):
        batch = data.batch(ids)
        computed = tagger.model.char_lm(batch.tokens) * batch.mask[..., None]
        data.features = cached
        assert torch.equal(data.batch(ids).features, computed)
        data.features = None
    # Frozen LMs: training left them exactly as they were in their files.
    for module, path in zip(tagger.model.char_lm.lms, lms, strict=True):
        for name, tensor in load_lm(path).state_dict().items():
            assert torch.equal(module.state_dict()[name], tensor), name


@pytest.mark.slow
def test_char_lm_tagger_scores_the_same_after_reload_in_a_new_process(tmp_path: Path) -> None:
    """The flair failure as a test: F1 0.84 in training, 0.55 after load. Here: identical."""
    wiki = shared_file("wikitext-2-raw", "valid.txt").read_text(encoding="utf-8")[:150_000]
    conll = load_corpus(shared_file("conll2003-en", "train.txt"))
    text = tmp_path / "text.txt"
    text.write_text(wiki + "\n".join(" ".join(s.tokens) for s in conll.sentences[:2000]))
    lms = train_tiny_lms(tmp_path, text, hidden_size=64)
    train_path = write_conll(tmp_path / "train.txt", conll.sentences[:1200])
    dev_path = write_conll(tmp_path / "dev.txt", conll.sentences[1200:1500])
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": {**TINY_MODEL, "char_language_models": [str(p) for p in lms]},
            "training": {"epochs": 6, "batch_size": 16, "seed": 4},
        }
    )
    lm_dir = lms[0].parent / "lms-moved-away"
    lm_dir.mkdir()
    model_copy = tmp_path / "reload"
    model_copy.mkdir()

    def hide_lms() -> None:  # loading must never look for the LM files
        for path in lms:
            path.rename(lm_dir / path.name)

    tagger, metrics = ensure_model_can_train_save_and_load(
        config, dev_path, model_copy, before_reload=hide_lms
    )
    assert metrics["micro"]["f1"] > 0.3, metrics["micro"]  # the LMs' model really learned
    assert tagger.model.char_lm is not None and len(tagger.model.char_lm.lms) == 2


def test_fingerprint_catches_a_tagger_whose_lms_were_not_restored(tmp_path: Path) -> None:
    config, _, _ = bundled_lm_tagger(tmp_path, train=150, dev=50, epochs=1)
    from tagsure.training.trainer import train

    train(config, out=tmp_path / "model.tagsure")
    tagger = Tagger.load(tmp_path / "model.tagsure")
    with torch.no_grad():  # what a loader that rebuilt the LMs from scratch would give
        for lm in tagger.model.char_lm.lms:
            for parameter in lm.parameters():
                parameter.normal_()
    check = fingerprint.verify(tagger, tagger.metadata["fingerprint"])
    assert not check.ok and "emission scores differ" in check.problems[0]


def test_lm_train_command(tmp_path: Path) -> None:
    text = tmp_path / "text.txt"
    corpus = load_corpus(BUNDLED / "wikiann-en-dev.txt")
    text.write_text("\n".join(" ".join(s.tokens) for s in corpus.sentences[:150]))
    out = tmp_path / "lm.tagsure-lm"
    command = [sys.executable, "-m", "tagsure", "lm", "train", "--out", str(out)]
    options = ["--text", str(text), "--direction", "backward", "--hidden-size", "16"]
    options += ["--epochs", "1", "--batch-size", "8", "--sequence-length", "40"]
    done = subprocess.run(command + options, capture_output=True, text=True, check=True)
    assert "bits per char" in done.stdout and str(out) in done.stdout
    lm = load_lm(out)
    assert lm.config.direction == "backward" and lm.config.hidden_size == 16
    assert lm.config.training["epochs"] == 1
    missing = subprocess.run(command + ["--epochs", "1"], capture_output=True, text=True)
    assert missing.returncode == 1
    assert "no training text: pass --text and/or --conll files" in missing.stderr


def test_pooled_mean_is_the_mean_over_earlier_occurrences_of_the_word() -> None:
    features = torch.randn(60, 5)
    words = np.random.default_rng(0).integers(0, 7, 60)
    pooled = pooled_by_word(features, words)
    for i in range(60):
        earlier = [j for j in range(i + 1) if words[j] == words[i]]
        torch.testing.assert_close(pooled[i], features[earlier].mean(0))
    # The NumPy pooling (ONNX Runtime's, without torch) gives the same bits.
    assert np.array_equal(pooled_by_word_arrays(features.numpy(), words), pooled.numpy())


def test_pooled_char_lm_tagger_reloads_exactly(tmp_path: Path) -> None:
    config, dev_path, _ = bundled_lm_tagger(
        tmp_path, train=200, dev=60, epochs=2, char_lm_pooling="mean"
    )
    tagger, _ = ensure_model_can_train_save_and_load(config, dev_path, tmp_path)
    lm_dim = 2 * TINY_LM["hidden_size"]  # forward + backward, then the same again pooled
    assert tagger.model.pooled and tagger.model.encoder.forward_layers[0].input_size == (
        TINY_MODEL["word_dim"] + TINY_MODEL["casing_dim"] + TINY_MODEL["char_size"] + 2 * lm_dim
    )
    # compiled prediction reads the same whole-input (pooled) features: same tags
    sentences = [s.tokens for s in load_corpus(dev_path).sentences]
    compiled = compile_tagger(tagger, "eager")
    assert compiled.tag(sentences)[0] == tagger.tag(sentences)[0]
    lm = tiny_lm("forward").config.to_dict()
    with pytest.raises(ValueError, match="pooled char-LM embeddings need frozen LMs"):
        BiLSTMTagger(
            BiLSTMConfig(5, 5, 3, char_lms=[lm], char_lm_fine_tune=True, char_lm_pooling="mean")
        )
