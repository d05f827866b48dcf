"""Every command's error paths: usage errors, missing files and bad values are one line on
stderr with a non-zero exit and no traceback; --version works; the help keeps its words."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tagsure.version import __version__
from tests.helpers import BUNDLED
from tests.helpers import run_cli as run

TEST_FILE = BUNDLED / "wikiann-en-test.txt"
NOPE = "no-such-file.txt"

# (arguments, exit code, a phrase of the message); {model} is a real model, {test} a real file.
CASES: list[tuple[list[str], int, str]] = [
    # usage errors: click's, as one line
    (["--bogus"], 2, "No such option: --bogus"),
    (["frobnicate"], 2, "No such command 'frobnicate'"),
    (["train", "--epoch", "3"], 2, "No such option: --epoch (Possible options: --epochs"),
    (["train", "--epochs", "many"], 2, "Invalid value for '--epochs'"),
    (["train", "--epochs", "0"], 2, "Invalid value for '--epochs'"),
    (["train", "--max-minutes", "-1"], 2, "Invalid value for '--max-minutes'"),
    (["train", "--batch-size", "0"], 2, "Invalid value for '--batch-size'"),
    (["train", "--train", NOPE], 2, f"Invalid value for '--train': file '{NOPE}' does not exist"),
    (["train", "--config", NOPE], 2, "Invalid value for '--config'"),
    (["train", "--resume", "no-such-run/"], 2, "Invalid value for '--resume'"),
    (["evaluate"], 2, "Missing argument 'MODEL'"),
    (["evaluate", "{model}"], 2, "Missing argument 'DATA'"),
    (["evaluate", "{model}", NOPE], 2, f"Invalid value for 'DATA': file '{NOPE}' does not exist"),
    (["evaluate", "{model}", "{test}", "--jsn"], 2, "No such option: --jsn"),
    (["predict", "{model}"], 2, "Missing argument 'DATA'"),
    (["predict", "{model}", "{test}", "--workers", "0"], 2, "Invalid value for '--workers'"),
    (["predict", "{model}", "{test}", "--format", "xml"], 2, "unknown output format 'xml'"),
    (["predict", "{model}", "{test}", "--engine", "spark"], 2, "unknown engine 'spark'"),
    (["export", "{model}"], 2, "Missing argument 'OUT'"),
    (["export", "{model}", "out.x", "--format", "tflite"], 2, "unknown export format 'tflite'"),
    (["verify"], 2, "Missing argument 'MODEL'"),
    (["verify", "{model}", NOPE], 2, "Invalid value for 'DATA'"),
    (["verify", "{model}", "--tolerance", "x"], 2, "Invalid value for '--tolerance'"),
    (["inspect"], 2, "Missing argument 'PATH'"),
    (["load-weights", "{model}", "{model}"], 2, "Missing option '--out'"),
    (["import-hf", "no-such-dir", "out.tagsure"], 2, "Invalid value for 'DIR'"),
    (["lm", "train"], 2, "Missing option '--out'"),
    (["lm", "train", "--out", "x.lm", "--text", NOPE], 2, "Invalid value for '--text'"),
    (["lm", "launch"], 2, "No such command 'launch'"),
    (["demo", "--minutes", "1"], 2, "No such option: --minutes"),
    (["serve", "{model}", "--port", "http"], 2, "Invalid value for '--port'"),
    # missing or wrong files: tagsure's own errors, one line
    (["evaluate", NOPE, "{test}"], 1, f"{NOPE}: no such file"),
    (["evaluate", "{test}", "{test}"], 1, "not a safetensors/tagsure model file"),
    (["predict", NOPE, "{test}"], 1, f"{NOPE}: no such file"),
    (["predict", "{model}", NOPE], 1, f"{NOPE}: no such file; give a file to tag"),
    (["predict", "{model}", "{test}", "--input", "xml"], 1, "unknown input format 'xml'"),
    (["export", NOPE, "out.onnx"], 1, f"{NOPE}: no such file"),
    (["verify", NOPE], 1, f"{NOPE}: no such file"),
    (["inspect", NOPE], 1, f"{NOPE}: no such file or directory"),
    (["load-weights", "{model}", NOPE, "--out", "x.tagsure"], 1, f"{NOPE}: no such file"),
    (["train", "--resume", "{folder}"], 1, "no training checkpoint to resume from"),
    (["train"], 1, "nothing to train on: give --train FILE"),
    (["train", "--config", "{config}"], 1, "gone.txt: no such file ([data] train in"),
    (["serve", NOPE], 1, f"{NOPE}: no such model file"),
]


@pytest.mark.parametrize(
    ("args", "code", "phrase"), CASES, ids=[" ".join(c[0]) or "bare" for c in CASES]
)
def test_an_error_is_one_line_without_traceback(
    args: list[str],
    code: int,
    phrase: str,
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path.parent / f"{tmp_path.name}.toml"  # outside tmp_path: it must stay empty
    config.write_text('[data]\ntrain = "gone.txt"\n')
    paths = {"model": tiny_model, "test": TEST_FILE, "folder": tmp_path, "config": config}
    filled = [a.format(**paths) if a.startswith("{") else a for a in args]
    got, out, err = run(filled, capsys)  # a traceback would raise out of run()
    assert (got, out) == (code, ""), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("tagsure: "), err
    assert phrase in err, err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_usage_errors_point_at_the_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = run(["lm", "train", "--direction"], capsys)
    assert err == (
        "tagsure: error: Option '--direction' requires an argument. "
        "(see 'tagsure lm train --help')\n"
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], capsys) == (0, f"tagsure {__version__}\n", "")
    done = subprocess.run(
        [sys.executable, "-m", "tagsure", "--version"], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"tagsure {__version__}\n", "")


@pytest.mark.parametrize("args", [[], ["lm"]])
def test_a_bare_command_prints_its_help(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(args, capsys)
    assert (code, err) == (0, "")
    assert out.startswith(f"Usage: tagsure {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND")
    assert "Commands:" in out


def _commands() -> list[tuple[str, ...]]:
    import typer

    from tagsure.cli.main import app

    root = typer.main.get_command(app)
    found = []
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        if hasattr(command, "commands"):
            found += [(name, sub) for sub in command.commands]
        else:
            found.append((name,))
    return found


def _words(text: str) -> str:
    """Text with its layout removed: whitespace runs as one space, hyphen breaks joined."""
    return re.sub(r"(?<=\w-) (?=\w)", "", " ".join(text.split()))


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p))
def test_the_rendered_help_keeps_every_word(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    """Each option's and argument's help text appears whole ([gold], [data] ... survive), and
    a flag shows no value placeholder."""
    import typer

    from tagsure.cli.main import app

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    code, out, _ = run([*path, "--help"], capsys)
    assert code == 0
    rendered = _words(out)
    assert _words(command.help or "").split("\n")[0] in rendered
    for param in command.params:
        if getattr(param, "help", None):
            assert _words(param.help) in rendered, (param.name, param.help)
        if getattr(param, "is_flag", False):
            flag = param.opts[0]
            assert re.search(rf"{re.escape(flag)} <", out) is None, f"{flag} shows a placeholder"
    assert "<bool>" not in out


def test_predict_and_train_help_keep_their_bracketed_words(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run(["predict", "--help"], capsys)
    assert "conll: token [gold] predicted per line" in _words(out)
    _, out, _ = run(["train", "--help"], capsys)
    assert "TOML file with [data], [model], [training] sections." in _words(out)
