"""Shared fixtures: where the real corpora are, and a tiny corpus that needs nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tagsure import load_corpus, train
from tests.helpers import BUNDLED, tiny_config, write_conll

# One thread: tests often share the 2 cores with other work, where 2-thread OpenMP stalls;
# a fixed count also keeps float results repeatable across the processes a test compares.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TAGSURE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real corpus not available: {path} (set TAGSURE_SHARED_DATA)")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real corpora not available: {SHARED_DATA} (set TAGSURE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def conll_dev() -> Path:
    return shared_file("conll2003-en", "dev.txt")


@pytest.fixture
def conll_train() -> Path:
    return shared_file("conll2003-en", "train.txt")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tagger trained on 300 bundled WikiANN sentences, saved once for this module."""
    folder = tmp_path_factory.mktemp("tiny")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(folder / "train.txt", corpus.sentences[:300])
    dev_path = write_conll(folder / "dev.txt", corpus.sentences[300:400])
    path = folder / "model.tagsure"
    train(tiny_config(train_path, dev_path), out=path)
    return path
