"""Data-parallel training on 2 gloo processes (real ones, started by torchrun through
``tagsure train --nproc 2``): the same weights as one process on the same global batch, the
sharded dev F1 exactly, a killed rank failing the job fast, and exact resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from tagsure import Tagger, load_corpus
from tagsure.errors import DistributedError
from tagsure.storage.model_file import read_model_file
from tagsure.training.distributed import World
from tagsure.training.resume_state import RESUME_STATE_NAME, load_resume_state
from tagsure.training.trainer import resume
from tests.helpers import BUNDLED, TINY_MODEL, reload_in_fresh_process, write_conll

ENV = dict(os.environ, OMP_NUM_THREADS="1")
for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(name, None)

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this PyTorch build has no torch.distributed"
)


def corpora(folder: Path, train: int, dev: int) -> tuple[Path, Path]:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    return (
        write_conll(folder / "train.txt", corpus.sentences[:train]),
        write_conll(folder / "dev.txt", corpus.sentences[train : train + dev]),
    )


def config_file(folder: Path, **model: object) -> Path:
    path = folder / "tiny.toml"
    settings = {**TINY_MODEL, **model}
    path.write_text("[model]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return path


def train_args(folder: Path, data: tuple[Path, Path], config: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tagsure",
        "train",
        "--train",
        str(data[0]),
        "--dev",
        str(data[1]),
        "--config",
        str(config),
        "--out",
        str(folder / "model.tagsure"),
        "--seed",
        "5",
        *extra,
    ]


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_model_file(path)[1]


def test_shards_are_disjoint_cover_the_batch_and_differ_by_one_at_most() -> None:
    ids = np.arange(11)
    parts = [World(rank, rank, 3).shard(ids) for rank in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == ids.tolist()
    assert [len(p) for p in parts] == [4, 4, 3]
    assert World().shard(ids) is ids  # one process: the whole batch, untouched


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    """No dropout, so the only difference is the order of the gradient additions."""
    data = corpora(tmp_path, 240, 60)
    config = config_file(tmp_path, dropout=0.0, word_dropout=0.0)
    single, double = tmp_path / "single", tmp_path / "double"
    common = ("--epochs", "1")
    run(train_args(single, data, config, *common, "--batch-size", "16"))
    run(train_args(double, data, config, *common, "--batch-size", "8", "--nproc", "2"))

    expected, got = weights(single / "model.tagsure"), weights(double / "model.tagsure")
    assert got.keys() == expected.keys()  # the usual file: no "module." or other prefixes
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in got)
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=0, atol=1e-5), name
    assert any(not torch.equal(got[n], expected[n]) for n in expected)  # 2 processes really ran

    document = read_model_file(double / "model.tagsure")[0]
    record = document["training"]["result"]
    assert (record["world_size"], record["effective_batch_size"]) == (2, 16)

    # Sharded dev F1 (counts summed over the ranks) == a single process's, exactly; the file
    # reloads in a fresh single process with bit-identical emissions (the fingerprint check)
    # and the same tags as here.
    sharded = json.loads((double / "model.metrics.jsonl").read_text().splitlines()[-1])
    fresh = reload_in_fresh_process(double / "model.tagsure", data[1], tmp_path)
    assert fresh["metrics"]["micro"]["f1"] == sharded["dev"]["f1"]
    tagger = Tagger.load(double / "model.tagsure")  # verifies the fingerprint bit for bit
    sentences = [s.tokens for s in load_corpus(data[1]).sentences]
    assert tagger.tag(sentences)[0] == fresh["tags"]
    assert tagger.evaluate(load_corpus(data[1])).micro.f1 == sharded["dev"]["f1"]


def rank_process(launcher: psutil.Process, rank: int) -> psutil.Process | None:
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "tagsure" in child.cmdline():
                return child
        except psutil.Error:
            continue
    return None


@pytest.mark.slow
def test_killed_rank_fails_fast_and_the_run_resumes_exactly(tmp_path: Path) -> None:
    data = corpora(tmp_path, 600, 60)
    config = config_file(tmp_path)  # with dropout: drawn from (seed, rank, step) on each rank

    def command(folder: Path) -> list[str]:
        extra = ("--epochs", "3", "--batch-size", "4", "--nproc", "2")
        every = ("--checkpoint-dir", str(folder / "checkpoints"), "--checkpoint-every", "10")
        return train_args(folder, data, config, *extra, *every)

    straight = tmp_path / "straight"
    run(command(straight))

    killed = tmp_path / "killed"
    launcher = subprocess.Popen(
        command(killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    checkpoint = killed / "checkpoints" / RESUME_STATE_NAME
    deadline, state = time.monotonic() + 300, None
    while time.monotonic() < deadline and launcher.poll() is None:
        if checkpoint.exists():
            try:  # read while rank 0 may be renaming the next one over it
                state = load_resume_state(checkpoint.parent).document["state"]
            except (OSError, RuntimeError, ValueError):
                continue
            if state["epoch"] == 2 and state["batches_done"] >= 10:
                break
        time.sleep(0.02)
    victim = rank_process(psutil.Process(launcher.pid), 1)
    assert launcher.poll() is None and victim is not None, "finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    _, stderr = launcher.communicate(timeout=120)
    assert time.monotonic() - killed_at < 60
    assert launcher.returncode != 0
    assert "training on 2 processes failed" in stderr, stderr[-2000:]
    assert f"--resume {killed / 'checkpoints'}" in stderr
    assert not (killed / "model.tagsure").exists()

    # The last checkpoint is intact, of a 2-process run, mid-epoch; one process may not resume.
    saved = load_resume_state(killed / "checkpoints")
    assert saved.document["world_size"] == 2 and saved.document["state"]["batches_done"] > 0
    with pytest.raises(DistributedError, match=r"checkpointed with 2 process\(es\).*--nproc 2"):
        resume(killed / "checkpoints")

    run(
        [sys.executable, "-m", "tagsure", "train", "--resume", str(killed / "checkpoints")]
        + ["--nproc", "2"]
    )
    expected, resumed = weights(straight / "model.tagsure"), weights(killed / "model.tagsure")
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name

    def scores(folder: Path) -> list[tuple[int, float, float]]:
        lines = (folder / "model.metrics.jsonl").read_text().splitlines()
        return [(r["epoch"], r["train_loss"], r["dev"]["f1"]) for r in map(json.loads, lines)]

    assert scores(killed) == scores(straight)


def test_lm_on_two_processes_equals_one_with_twice_the_streams(tmp_path: Path) -> None:
    text = corpora(tmp_path, 400, 0)[0]

    def lm_train(folder: Path, streams: int, *extra: str) -> Path:
        out = folder / "lm.tagsure-lm"
        args = ["lm", "train", "--conll", str(text), "--out", str(out), "--epochs", "1"]
        args += ["--hidden-size", "32", "--sequence-length", "40", "--dropout", "0"]
        run([sys.executable, "-m", "tagsure", *args, "--batch-size", str(streams), *extra])
        return out

    from safetensors.torch import load_file

    expected = load_file(str(lm_train(tmp_path / "one", 8)))
    got = load_file(str(lm_train(tmp_path / "two", 4, "--nproc", "2")))
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=0, atol=1e-5), name
    assert any(not torch.equal(got[n], expected[n]) for n in expected)
