"""Model files whose document was edited: every field is checked, and each fault is one
ModelFileError naming the file and the field (or the tensors), never a traceback."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tagsure import Tagger
from tagsure.errors import ModelFileError

Mutation = Callable[[dict[str, Any]], Any]


def rewrite(model: Path, out: Path, mutate: Mutation) -> Path:
    """A copy of ``model`` whose JSON document went through ``mutate`` (tensors unchanged)."""
    with safe_open(str(model), "pt") as handle:
        metadata = handle.metadata()
    document = json.loads(metadata["tagsure"])
    mutate(document)
    save_file(
        load_file(str(model)), str(out), metadata={**metadata, "tagsure": json.dumps(document)}
    )
    return out


def config(**values: Any) -> Mutation:
    return lambda d: d["model_config"].update(values)


CASES: list[tuple[str, Mutation, str]] = [
    ("model_config missing", lambda d: d.pop("model_config"), "'model_config' is malformed"),
    ("a size as text", config(hidden_size="16"), "'model_config' is malformed (hidden_size"),
    ("an unknown setting", config(colour=1), "unknown BiLSTM settings ['colour']"),
    ("an unknown head", config(head="nope"), "unknown head 'nope'"),
    ("dropout as text", config(dropout="x"), "'model_config' is malformed"),
    (
        "labels as text",
        lambda d: d.update(labels="O"),
        "'labels' is malformed (expected a JSON list",
    ),
    ("a label too few", lambda d: d.update(labels=d["labels"][:-1]), "labels but its head has"),
    ("an unknown scheme", lambda d: d.update(tag_scheme="XYZ"), "'tag_scheme' is malformed"),
    ("output scheme missing", lambda d: d.pop("output_scheme"), "'output_scheme' is malformed"),
    ("vocabularies missing", lambda d: d.pop("vocabularies"), "'vocabularies' is malformed"),
    (
        "a vocabulary as a number",
        lambda d: d["vocabularies"].update(words=3),
        "'vocabularies' is malformed",
    ),
    ("metrics without numbers", lambda d: d.update(metrics={"dev": 3}), "'metrics' is malformed"),
    ("training as a list", lambda d: d.update(training=[1]), "'training' is malformed"),
    ("digest as a number", lambda d: d.update(weights_sha256=5), "'weights_sha256' is malformed"),
    ("fingerprint as text", lambda d: d.update(fingerprint="x"), "'fingerprint' is malformed"),
    (
        "a probe tag list too few",
        lambda d: d["fingerprint"].update(tags=d["fingerprint"]["tags"][:-1]),
        "'fingerprint' is malformed",
    ),
    (
        "probe sentences missing",
        lambda d: d["fingerprint"].pop("sentences"),
        "'fingerprint' is malformed (missing 'sentences')",
    ),
    # The config no longer matches the weights: every mismatched tensor is named.
    (
        "a wider hidden layer",
        config(hidden_size=32),
        "the weights do not match the tagsure.BiLSTMCRF.v1 network its model_config describes",
    ),
    (
        "narrower word vectors",
        config(word_dim=8),
        "words.weight is F32 [1226, 16] in the file, F32 [1226, 8] in the network",
    ),
    (
        "a character vocabulary cut short",
        lambda d: d["vocabularies"].update(chars=d["vocabularies"]["chars"][:5]),
        "'vocabularies' is malformed (5 chars for the",
    ),
]


@pytest.fixture(scope="module")
def sizes(tiny_model: Path) -> dict[str, Any]:
    with safe_open(str(tiny_model), "pt") as handle:
        return json.loads(handle.metadata()["tagsure"])["model_config"]


@pytest.mark.parametrize(("name", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
def test_an_edited_document_is_one_model_file_error(
    tiny_model: Path,
    tmp_path: Path,
    sizes: dict[str, Any],
    name: str,
    mutate: Mutation,
    message: str,
) -> None:
    message = message.replace("1226", str(sizes["num_words"]))
    bad = rewrite(tiny_model, tmp_path / "edited.tagsure", mutate)
    with pytest.raises(ModelFileError) as raised:
        Tagger.load(bad)
    text = str(raised.value)
    assert text.startswith(f"{bad}: ") and "\n" not in text
    assert message in text, text


def test_a_wider_hidden_layer_names_every_mismatched_tensor(
    tiny_model: Path, tmp_path: Path
) -> None:
    bad = rewrite(tiny_model, tmp_path / "wide.tagsure", config(hidden_size=32))
    with pytest.raises(ModelFileError) as raised:
        Tagger.load(bad)
    text = str(raised.value)
    from tagsure.storage.model_file import read_model_file

    _, tensors = read_model_file(tiny_model)
    sized = [n for n in tensors if n.startswith(("encoder.", "emission.weight"))]
    assert len(sized) == 9
    for tensor in sized:
        assert f"{tensor} is F32" in text, tensor
    assert "emission.weight is F32 [13, 32] in the file, F32 [13, 64] in the network" in text


def test_the_cli_shows_an_edited_file_as_one_line(tiny_model: Path, tmp_path: Path) -> None:
    bad = rewrite(tiny_model, tmp_path / "wide.tagsure", config(hidden_size=32))
    done = subprocess.run(
        [sys.executable, "-m", "tagsure", "predict", str(bad), "-"],
        input="Angela Merkel met Emmanuel Macron .\n",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"tagsure: error: {bad}: the weights do not match")


def test_a_resumed_document_is_checked_the_same_way(tiny_model: Path, tmp_path: Path) -> None:
    """tagger_from_document (resume) checks tensors against the document before loading."""
    from tagsure.storage.model_file import tagger_from_document

    with safe_open(str(tiny_model), "pt") as handle:
        document = json.loads(handle.metadata()["tagsure"])
    tensors = load_file(str(tiny_model))
    tensors.pop("fingerprint.emissions")
    edited = copy.deepcopy(document)
    edited["model_config"]["hidden_size"] = 32
    with pytest.raises(ModelFileError, match="run/: the weights do not match"):
        tagger_from_document(edited, tensors, "run/", Tagger)
