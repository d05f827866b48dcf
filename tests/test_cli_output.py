"""What the commands write: file modes, offsets in JSONL, ONNX files wherever a model goes,
and what verify says about a file that is not the dev file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tagsure import Tagger
from tests.helpers import BUNDLED
from tests.helpers import run_cli as run

TEST_FILE = BUNDLED / "wikiann-en-test.txt"
SENTENCE = "Angela Merkel met Emmanuel Macron in Paris ."


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def onnx_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "tagsure", "export", str(tiny_model), str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no raw torch warning
    return out


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(
    umask: int, tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tagsure.storage.atomic import atomic_write_bytes

    old = os.umask(umask)
    try:
        code, _, err = run(
            ["predict", str(tiny_model), str(TEST_FILE), "--out", str(tmp_path / "p.txt")], capsys
        )
        assert code == 0, err
        Tagger.load(tiny_model).save(tmp_path / "m.tagsure")
        atomic_write_bytes(tmp_path / "curve.png", b"png")
    finally:
        os.umask(old)
    for name in ("p.txt", "m.tagsure", "curve.png"):
        assert mode(tmp_path / name) == 0o666 & ~umask, name
    (tmp_path / "m.tagsure").chmod(0o640)  # an existing file keeps its mode, as with open()
    Tagger.load(tiny_model).save(tmp_path / "m.tagsure")
    assert mode(tmp_path / "m.tagsure") == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png", "m.tagsure", "p.txt"]


def test_conll_from_stdin_leaves_no_temporary_file(tiny_model: Path, tmp_path: Path) -> None:
    spool = tmp_path / "tmp"
    spool.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "tagsure", "predict", str(tiny_model), "-", "--format", "conll"],
        input=TEST_FILE.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(spool)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n\n") == 600
    assert list(spool.iterdir()) == []
    assert tempfile.gettempdir() != str(spool)


def test_conll_jsonl_has_character_and_token_offsets(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["predict", str(tiny_model), str(TEST_FILE), "--format", "jsonl"], capsys)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 600
    entities = 0
    for record in records:
        assert record["text"] == " ".join(record["tokens"])
        for entity in record["entities"]:
            entities += 1
            assert record["text"][entity["start"] : entity["end"]] == entity["text"]
            tokens = record["tokens"][entity["token_start"] : entity["token_end"]]
            assert " ".join(tokens) == entity["text"]
            assert 0 < entity["score"] <= 1
    assert entities > 50


def test_onnx_predictions_carry_the_same_scores(
    tiny_model: Path, onnx_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "text.txt"
    text.write_text(SENTENCE + "\nThe European Union met in Berlin .\n")
    code, torch_out, _ = run(["predict", str(tiny_model), str(text)], capsys)
    assert code == 0
    # .onnx detected without --onnx, and also under another name (by its bytes)
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(onnx_model.read_bytes())
    for model in (onnx_model, renamed):
        code, onnx_out, err = run(["predict", str(model), str(text)], capsys)
        assert code == 0, err
        for a, b in zip(torch_out.splitlines(), onnx_out.splitlines(), strict=True):
            ours, theirs = json.loads(a), json.loads(b)
            assert [e["text"] for e in ours["entities"]] == [e["text"] for e in theirs["entities"]]
            for x, y in zip(ours["entities"], theirs["entities"], strict=True):
                assert y["score"] == pytest.approx(x["score"], abs=1e-5)
    code, conll, _ = run(["predict", str(renamed), str(TEST_FILE)], capsys)
    assert code == 0 and conll.count("\n\n") == 600


def test_evaluate_and_verify_take_an_onnx_file(
    tiny_model: Path, onnx_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, torch_table, _ = run(["evaluate", str(tiny_model), str(TEST_FILE)], capsys)
    code, onnx_table, err = run(["evaluate", str(onnx_model), str(TEST_FILE)], capsys)
    assert code == 0, err
    assert onnx_table == torch_table
    code, out, err = run(["verify", str(onnx_model)], capsys)
    assert code == 0, err
    assert "tags identical" in out and "tolerance 0.0001" in out
    assert out.rstrip().endswith("verified: the model reproduces what it did when it was saved")


def test_inspect_recognises_tagsures_own_onnx_export(
    onnx_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["inspect", str(onnx_model)], capsys)
    assert code == 0, err
    assert "kind           : tagsure ONNX export" in out
    assert "labels         : 13 labels: O, B-LOC" in out
    assert "weights_only" not in out + err and "pickle" not in out + err
    assert "emission.bias" in out
    code, out, _ = run(["inspect", str(onnx_model), "--json"], capsys)
    report = json.loads(out)
    assert report["architecture"] == "tagsure.BiLSTMCRF.v1" and report["warnings"] == []


def test_loading_an_onnx_file_as_a_tagsure_model_says_what_it_is(onnx_model: Path) -> None:
    from tagsure.errors import ModelFileError

    with pytest.raises(ModelFileError, match="an ONNX model, not a .tagsure file"):
        Tagger.load(onnx_model)


def test_verify_on_another_file_shows_its_metrics_and_succeeds(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["verify", str(tiny_model), str(TEST_FILE)], capsys)
    assert code == 0, err
    assert "DIFFERENT" not in out
    assert f"not compared: {TEST_FILE} is not the dev file the model was selected on" in out
    assert "(884 gold entities, the dev file 145)" in out


def test_verify_on_the_dev_file_compares_its_metrics(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = tiny_model.parent / "dev.txt"
    code, out, err = run(["verify", str(tiny_model), str(dev)], capsys)
    assert code == 0, err
    assert f"metrics on {dev} (the dev file): F1" in out
