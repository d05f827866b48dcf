"""Exact resume: a run killed with SIGKILL mid-epoch and resumed ends with identical weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tagsure import load_corpus
from tagsure.storage.model_file import read_model_file
from tagsure.training.resume_state import RESUME_STATE_NAME as CHECKPOINT_NAME
from tagsure.training.resume_state import load_resume_state as load_checkpoint
from tests.helpers import BUNDLED, TINY_MODEL, write_conll


def train_command(folder: Path, data: tuple[Path, Path], config: Path) -> list[str]:
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
        "--epochs",
        "3",
        "--seed",
        "5",
        "--batch-size",
        "8",
        "--checkpoint-dir",
        str(folder / "checkpoints"),
        "--checkpoint-every",
        "7",
    ]


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path: Path) -> None:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    data = (
        write_conll(tmp_path / "train.txt", corpus.sentences[:400]),
        write_conll(tmp_path / "dev.txt", corpus.sentences[400:450]),
    )
    config = tmp_path / "tiny.toml"
    config.write_text("[model]\n" + "".join(f"{k} = {v}\n" for k, v in TINY_MODEL.items()))
    env = dict(os.environ, OMP_NUM_THREADS="1")

    straight = tmp_path / "straight"
    subprocess.run(train_command(straight, data, config), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(killed, data, config),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = killed / "checkpoints" / CHECKPOINT_NAME
    deadline = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists():
            state = load_checkpoint(checkpoint.parent).document["state"]
            if state["epoch"] == 2 and state["batches_done"] >= 7:
                break
        time.sleep(0.02)
    assert process.poll() is None, "training finished before it could be killed mid-epoch"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state is not None and state["batches_done"] > 0  # a mid-epoch checkpoint
    assert not (killed / "model.tagsure").exists()

    subprocess.run(
        [sys.executable, "-m", "tagsure", "train", "--resume", str(killed / "checkpoints")],
        check=True,
        env=env,
        capture_output=True,
    )
    _, expected = read_model_file(straight / "model.tagsure")
    _, resumed = read_model_file(killed / "model.tagsure")
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name

    # The log is rewritten from the checkpoint: one line per epoch, same scores (times differ).
    def scores(folder: Path) -> list[tuple[int, float, float]]:
        lines = (folder / "model.metrics.jsonl").read_text().splitlines()
        return [(r["epoch"], r["train_loss"], r["dev"]["f1"]) for r in map(json.loads, lines)]

    assert scores(killed) == scores(straight)
    assert [epoch for epoch, _, _ in scores(killed)] == [1, 2, 3]


def test_resume_with_more_epochs_extends_a_finished_run_exactly(tmp_path: Path) -> None:
    """`--resume DIR --epochs N` takes a finished 2-epoch run on to 3 epochs, ending with the
    weights and log of a run of 3 epochs from the start."""
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    data = (
        write_conll(tmp_path / "train.txt", corpus.sentences[:300]),
        write_conll(tmp_path / "dev.txt", corpus.sentences[300:350]),
    )
    config = tmp_path / "tiny.toml"
    config.write_text("[model]\n" + "".join(f"{k} = {v}\n" for k, v in TINY_MODEL.items()))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    subprocess.run(train_command(straight, data, config), check=True, env=env, capture_output=True)
    two_epochs = [a if a != "3" else "2" for a in train_command(extended, data, config)]
    subprocess.run(two_epochs, check=True, env=env, capture_output=True)
    _, after_two = read_model_file(extended / "model.tagsure")

    resume = [sys.executable, "-m", "tagsure", "train", "--resume", str(extended / "checkpoints")]
    done = subprocess.run([*resume, "--epochs", "3"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "reached 3 epochs" in done.stdout
    _, expected = read_model_file(straight / "model.tagsure")
    document, resumed = read_model_file(extended / "model.tagsure")
    assert document["training"]["training"]["epochs"] == 3
    assert document["training"]["result"]["epochs_run"] == 3
    assert any(not torch.equal(after_two[name], resumed[name]) for name in resumed)
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name
    log = [json.loads(line) for line in (extended / "model.metrics.jsonl").read_text().splitlines()]
    straight_log = (straight / "model.metrics.jsonl").read_text().splitlines()
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert [r["dev"] for r in log] == [json.loads(line)["dev"] for line in straight_log]


def test_resume_refuses_settings_it_cannot_change(tmp_path: Path, capsys) -> None:
    from tests.helpers import run_cli

    code, _, err = run_cli(["train", "--resume", str(tmp_path), "--seed", "2"], capsys)
    assert code == 2
    assert "--resume continues a run with the settings in its checkpoint; drop --seed" in err
    assert "Traceback" not in err
