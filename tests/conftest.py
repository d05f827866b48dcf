"""Shared fixtures: where the real corpora are, and a tiny corpus that needs nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Tests run on 2 cores next to other work; fixed threads also keep float results repeatable.
torch.set_num_threads(2)

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
