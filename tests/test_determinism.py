"""A seed repeats a run bit for bit with more than one thread, too.

Two trainings in fresh processes with 2 intra-op threads end with identical weights. Before the
character features were gathered with ``index_select`` (``layers/lookup.py``) this failed: the
backward of ``table[index]`` adds gradients of 32,768 elements or more (ATen's grain size)
with parallel atomic adds, in an order that changes from run to run (16 of 21 tensors differed
after one epoch of this test). Sentences of four WikiANN sentences each make batches that big.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tagsure import load_corpus
from tagsure.data.conll import Sentence
from tagsure.storage.model_file import read_model_file
from tests.helpers import BUNDLED, TINY_MODEL, write_conll


@pytest.mark.slow
def test_two_runs_with_two_threads_end_with_identical_weights(tmp_path: Path) -> None:
    short = load_corpus(BUNDLED / "wikiann-en-train.txt").sentences[:800]
    joined = [
        Sentence(
            [t for s in short[i : i + 4] for t in s.tokens],
            [t for s in short[i : i + 4] for t in s.tags or []],
        )
        for i in range(0, len(short), 4)
    ]
    train_path = write_conll(tmp_path / "train.txt", joined[:150])
    dev_path = write_conll(tmp_path / "dev.txt", joined[150:])
    config = tmp_path / "model.toml"
    settings = {**TINY_MODEL, "char_size": 64}  # (B, T, 64) character features per batch
    config.write_text("[model]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    env = dict(os.environ, OMP_NUM_THREADS="2")
    weights = []
    for run in ("first", "second"):
        out = tmp_path / run / "model.tagsure"
        command = ["train", "--train", str(train_path), "--dev", str(dev_path), "--config"]
        command += [str(config), "--out", str(out), "--epochs", "1", "--seed", "7"]
        done = subprocess.run(
            [sys.executable, "-m", "tagsure", *command], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        weights.append(read_model_file(out)[1])
    first, second = weights
    assert first.keys() == second.keys()
    differ = [name for name in first if not torch.equal(first[name], second[name])]
    assert differ == [], f"{len(differ)} of {len(first)} tensors differ: {differ}"
