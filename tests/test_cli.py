"""The `tagsure` command: help texts, output layouts, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BUNDLED
from tests.helpers import run_cli as run

TEST_FILE = BUNDLED / "wikiann-en-test.txt"


@pytest.mark.parametrize(
    ("command", "phrase"),
    [
        ("train", "Train a BiLSTM-CRF"),
        ("evaluate", "as conlleval counts"),
        ("predict", "Tag raw text or a CoNLL file"),
        ("demo", "bundled WikiANN"),
        ("inspect", "wrapper prefixes"),
        ("load-weights", "strictly"),
    ],
)
def test_every_command_explains_itself(
    command: str, phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    assert phrase in " ".join(out.split())


def test_evaluate_json(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["evaluate", str(tiny_model), str(TEST_FILE), "--json"], capsys)
    assert code == 0
    metrics = json.loads(out)
    assert set(metrics) == {"micro", "per_type", "accuracy"}
    assert {"precision", "recall", "f1"} <= set(metrics["micro"])
    assert set(metrics["per_type"]) == {"LOC", "ORG", "PER"}


def test_evaluate_table(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["evaluate", str(tiny_model), str(TEST_FILE)], capsys)
    assert code == 0
    assert out.startswith("processed 5030 tokens with 884 phrases;")


def test_predict_conll_writes_token_gold_predicted(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["predict", str(tiny_model), str(TEST_FILE), "--format", "conll"], capsys)
    assert code == 0
    blocks = [b.splitlines() for b in out.strip("\n").split("\n\n")]
    assert len(blocks) == 600
    gold = TEST_FILE.read_text().strip("\n").split("\n\n")
    first_gold = [line.split("\t") for line in gold[0].splitlines()]
    first = [line.split(" ") for line in blocks[0]]
    assert [row[:2] for row in first] == [[t.removeprefix("en:"), g] for t, g in first_gold]
    assert all(len(row) == 3 for block in blocks for row in (r.split(" ") for r in block))


def test_predict_raw_text_jsonl_with_offsets(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        "Angela Merkel met Emmanuel Macron in Paris. Then she flew to Berlin.",
        "",
        "The University of Oxford is in England .",
    ]
    text = tmp_path / "text.txt"
    text.write_text("\n".join(lines) + "\n")
    code, out, _ = run(["predict", str(tiny_model), str(text)], capsys)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in records] == lines
    for record in records:
        for entity in record["entities"]:
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]
            assert 0 < entity["score"] <= 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("EU B-ORG\nrejects X-ORG\n", "data.txt:2: invalid tag 'X-ORG'"),
        ("EU B-ORG\nrejects VBZ O\n", "data.txt:2: found 3 columns, expected 2"),
    ],
)
def test_bad_corpus_is_one_line_on_stderr(
    tiny_model: Path, tmp_path: Path, content: str, message: str
) -> None:
    data = tmp_path / "data.txt"
    data.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "tagsure", "evaluate", str(tiny_model), str(data)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("tagsure: error: ") and message in done.stderr


def test_not_a_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "fake.tagsure"
    fake.write_text("hello")
    code, out, err = run(["evaluate", str(fake), str(TEST_FILE)], capsys)
    assert code == 1 and out == ""
    assert err.startswith(f"tagsure: error: {fake}: only 5 bytes, too small to be a safetensors")
    assert err.count("\n") == 1 and "truncated or empty" in err


def test_load_weights_from_a_dataparallel_checkpoint(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from tagsure.storage.model_file import read_model_file

    _, tensors = read_model_file(tiny_model)
    tensors.pop("fingerprint.emissions")
    wrapped = {f"module.{k}": v for k, v in tensors.items()}
    torch.save({"state_dict": wrapped, "epoch": 3}, tmp_path / "dp.pt")
    out = tmp_path / "loaded.tagsure"
    code, stdout, err = run(
        ["load-weights", str(tiny_model), str(tmp_path / "dp.pt"), "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "module." in stdout
    _, loaded = read_model_file(out)
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())

    del wrapped["module.emission.weight"]
    torch.save(wrapped, tmp_path / "headless.pt")
    code, _, err = run(
        [
            "load-weights",
            str(tiny_model),
            str(tmp_path / "headless.pt"),
            "--out",
            str(tmp_path / "no.tagsure"),
        ],
        capsys,
    )
    assert code == 1 and "emission.weight" in err
    assert not (tmp_path / "no.tagsure").exists()


def test_a_bug_shows_its_traceback_and_a_tagsure_error_one_line(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tagsure.cli import commands
    from tagsure.errors import ConfigError

    def broken(*args: object) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(commands, "evaluate", broken)
    with pytest.raises(ValueError, match="a bug"):
        run(["evaluate", str(tiny_model), str(TEST_FILE)], capsys)

    def refused(*args: object) -> None:
        raise ConfigError("model.tagsure: bad setting")

    monkeypatch.setattr(commands, "evaluate", refused)
    code, _, err = run(["evaluate", str(tiny_model), str(TEST_FILE)], capsys)
    assert (code, err) == (1, "tagsure: error: model.tagsure: bad setting\n")
