"""Start-up: `tagsure --help`, `--version` and usage errors import neither torch nor the other
heavy libraries; `import tagsure` is cheap and its public names still load on first use.

Each check runs the command in a fresh interpreter (as `python -m tagsure` does) and reads, at
exit, which modules that process imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BUNDLED

HEAVY = ("torch", "numpy", "transformers", "fastapi", "ray", "pyspark", "safetensors", "tqdm")
# Run `tagsure ARGS` in this interpreter, then print (to stderr) the heavy modules it imported.
PROBE = f"""
import atexit, json, runpy, sys
atexit.register(lambda: print("IMPORTED " + json.dumps(
    sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr))
sys.argv = ["tagsure", *sys.argv[1:]]
runpy.run_module("tagsure", run_name="__main__")
"""


def run_probe(*args: str) -> tuple[int, str, str, list[str]]:
    """(exit code, stdout, stderr without the probe's line, heavy modules imported)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300
    )
    *lines, last = done.stderr.splitlines()
    assert last.startswith("IMPORTED "), done.stderr
    heavy = json.loads(last.removeprefix("IMPORTED "))
    return done.returncode, done.stdout, "\n".join(lines), heavy


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        [],
        ["predict", "--help"],
        ["train", "--help"],
        ["lm", "train", "--help"],
        ["serve", "--help"],
    ],
)
def test_help_imports_no_heavy_library(args: list[str]) -> None:
    code, out, err, heavy = run_probe(*args)
    assert code == 0, err
    assert out.startswith("Usage: tagsure"), out
    assert heavy == []


def test_version_imports_no_heavy_library() -> None:
    from tagsure.version import __version__

    code, out, _, heavy = run_probe("--version")
    assert (code, out, heavy) == (0, f"tagsure {__version__}\n", [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict"], "tagsure: error: Missing argument 'MODEL'. (see 'tagsure predict --help')"),
        (
            ["evaluate", "--bogus", "m", "d"],
            "tagsure: error: No such option: --bogus (see 'tagsure evaluate --help')",
        ),
        (["nope"], "tagsure: error: No such command 'nope'. (see 'tagsure --help')"),
    ],
)
def test_usage_errors_import_no_heavy_library(args: list[str], message: str) -> None:
    code, out, err, heavy = run_probe(*args)
    assert (code, out, err, heavy) == (2, "", message, [])


def test_a_missing_model_file_is_one_line_without_torch(tmp_path: Path) -> None:
    code, _, err, heavy = run_probe("predict", str(tmp_path / "missing.tagsure"), "-")
    assert (code, heavy) == (1, [])
    assert err == f"tagsure: error: {tmp_path / 'missing.tagsure'}: no such model file"


def test_import_tagsure_is_cheap_and_names_load_on_first_use() -> None:
    script = (
        "import sys, tagsure\n"
        "assert 'torch' not in sys.modules and 'tagsure.tagger' not in sys.modules\n"
        "from tagsure import Tagger, TagsureError\n"
        "import tagsure.tagger, tagsure.errors\n"
        "assert Tagger is tagsure.tagger.Tagger and tagsure.Tagger is Tagger\n"
        "assert TagsureError is tagsure.errors.TagsureError\n"
        "assert all(hasattr(tagsure, name) for name in tagsure.__all__)\n"
        "assert set(tagsure.__all__) <= set(dir(tagsure))\n"
        "try:\n"
        "    tagsure.Nope\n"
        "except AttributeError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "module 'tagsure' has no attribute 'Nope'\n"


def test_onnx_predict_equals_the_torch_model(tiny_model: Path, tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    text = tmp_path / "text.txt"
    sentences = [s.tokens for s in _dev_sentences()[:20]]
    text.write_text("".join(" ".join(tokens) + "\n" for tokens in sentences), encoding="utf-8")
    code, _, err, _ = run_probe("export", str(tiny_model), str(onnx_path), "--format", "onnx")
    assert code == 0, err
    code, from_torch, err, heavy = run_probe("predict", str(tiny_model), str(text))
    assert (code, "torch" in heavy) == (0, True), err
    code, from_onnx, err, heavy = run_probe("predict", str(onnx_path), str(text))
    assert (code, "torch" in heavy) == (0, False), err
    rows, expected = (
        [json.loads(line) for line in out.splitlines()] for out in (from_onnx, from_torch)
    )
    assert len(rows) == 20 and sum(len(r["entities"]) for r in rows) > 0
    # The same entities; scores (mean marginals) as ONNX Runtime's float32 arithmetic rounds.
    scores = [e.pop("score") for r in rows for e in r["entities"]]
    assert scores == pytest.approx([e.pop("score") for r in expected for e in r["entities"]], 1e-5)
    assert rows == expected


def _dev_sentences() -> list:
    from tagsure.data.conll import load_corpus

    return load_corpus(BUNDLED / "wikiann-en-dev.txt").sentences


SENTENCE = "Angela Merkel met Emmanuel Macron in Paris to discuss the European Union."


def test_onnx_predict_imports_no_torch(tiny_model: Path, tmp_path: Path) -> None:
    """`tagsure predict MODEL.onnx`, raw text and CoNLL input, never imports torch, and tags
    as the torch tagger does."""
    from tagsure import Tagger, export_onnx

    tagger = Tagger.load(tiny_model)
    onnx_path, text, conll = tmp_path / "model.onnx", tmp_path / "one.txt", tmp_path / "one.conll"
    export_onnx(tagger, onnx_path)
    text.write_text(SENTENCE + "\n", encoding="utf-8")
    sentence = [s.tokens for s in _dev_sentences()[:1]][0]
    conll.write_text("".join(f"{token}\n" for token in sentence), encoding="utf-8")

    code, out, err, heavy = run_probe("predict", str(onnx_path), str(text))
    assert (code, "torch" in heavy) == (0, False), err
    [row] = [json.loads(line) for line in out.splitlines()]
    expected = tagger.predict(SENTENCE)
    assert expected.entities
    assert [e.pop("score") for e in row["entities"]] == pytest.approx(
        [e.score for e in expected.entities], abs=1e-5
    )
    entities = [{k: v for k, v in e.to_dict().items() if k != "score"} for e in expected.entities]
    assert row == {"text": SENTENCE, "entities": entities}

    code, out, err, heavy = run_probe("predict", str(onnx_path), str(conll), "--input", "conll")
    assert (code, "torch" in heavy) == (0, False), err
    [tags] = tagger.tag([sentence])[0]
    assert out.split() == [cell for pair in zip(sentence, tags, strict=True) for cell in pair]


def test_onnx_tagger_reads_every_built_in_architecture_without_torch() -> None:
    """The architectures whose vectorizers the ONNX tagger reads without their torch class are
    the registry's, by name."""
    from tagsure.models import registry
    from tagsure.serving import onnx_runtime

    registered = [registry.by_kind(kind) for kind in registry.kinds()]
    names = {a.name for a in registered if a.network.__module__ in registry.BUILT_IN}
    assert len(names) == len(registry.BUILT_IN)  # another test may have registered its own body
    assert names == {*onnx_runtime.WORD_ARCHITECTURES, *onnx_runtime.SUBWORD_ARCHITECTURES}
