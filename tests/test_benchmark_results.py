"""The benchmarks' results JSON name no path of one machine, and what writes them keeps it so."""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = sorted((REPO / "benchmarks" / "results").glob("*.json"))
sys.path.insert(0, str(REPO / "benchmarks"))
from _portable import portable, portable_path  # noqa: E402  (beside the benchmark scripts)

MACHINE = re.compile(r"(?:^|[\s=\"'])(/work|/tmp|/root|/home|/Users|/var|/opt|/mnt)/")


def strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


def test_the_results_are_there() -> None:
    assert {"conll03.json", "graph.json", "char_lm.json"} <= {p.name for p in RESULTS}


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.name)
def test_results_json_hold_no_machine_path(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    found = [s[:120] for s in strings(document) if MACHINE.search(s)]
    assert not found, f"{path.name}: machine paths {found}"
    assert portable(document) == document, f"{path.name}: an absolute path is left"


def test_portable_writes_what_a_fresh_clone_would() -> None:
    data = REPO.parent / "shared" / "data"
    temp = Path(tempfile.gettempdir())
    document = {
        "config": {"train": str(data / "conll2003-en" / "train.txt")},
        "models": [str(REPO / "runs" / "lm" / "e8" / "lm-forward.tagsure-lm")],
        "command": f"python benchmarks/graph.py --workdir {temp / 'bench'} "
        f"--add pretrained={REPO.parent / 'elsewhere' / 'm.tagsure'} --out=x.json",
        "table": "| a / b | 3/4 | https://example.org/a |",
    }
    assert portable(document) == {
        "config": {"train": "../shared/data/conll2003-en/train.txt"},
        "models": ["runs/lm/e8/lm-forward.tagsure-lm"],
        "command": "python benchmarks/graph.py --workdir $TMPDIR/bench "
        "--add pretrained=../elsewhere/m.tagsure --out=x.json",
        "table": "| a / b | 3/4 | https://example.org/a |",
    }
    assert portable_path("/nowhere/known") == "/nowhere/known"


def test_portable_names_the_data_variable_when_it_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TAGSURE_SHARED_DATA", str(tmp_path))
    assert portable(str(tmp_path / "conll2003-en" / "dev.txt")) == (
        "$TAGSURE_SHARED_DATA/conll2003-en/dev.txt"
    )
