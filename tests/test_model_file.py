"""The model file: exact reload in a fresh process, atomic writes, and clear errors."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tagsure import Tagger, load_corpus
from tagsure.errors import ModelFileError
from tagsure.storage import fingerprint, model_file
from tagsure.storage.document import read_safetensors_header
from tests.helpers import BUNDLED, ensure_model_can_train_save_and_load, tiny_config, write_conll


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_fresh_process_reload_is_exact_on_bundled_data(tmp_path: Path, head: str) -> None:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(tmp_path / "train.txt", corpus.sentences[:300])
    dev_path = write_conll(tmp_path / "dev.txt", corpus.sentences[300:400])
    ensure_model_can_train_save_and_load(
        tiny_config(train_path, dev_path, head=head), BUNDLED / "wikiann-en-test.txt", tmp_path
    )


@pytest.mark.slow
def test_fresh_process_reload_is_exact_on_conll2003(
    tmp_path: Path, conll_train: Path, conll_dev: Path
) -> None:
    train_corpus = load_corpus(conll_train)
    dev_corpus = load_corpus(conll_dev)
    train_path = write_conll(tmp_path / "train.txt", train_corpus.sentences[:1500])
    dev_path = write_conll(tmp_path / "dev.txt", dev_corpus.sentences[:500])
    config = tiny_config(train_path, dev_path, hidden_size=64, word_dim=50)
    _, metrics = ensure_model_can_train_save_and_load(config, conll_dev, tmp_path)
    assert metrics["micro"]["f1"] > 0.3  # it learned something: the comparison is not trivial


def test_the_file_is_safetensors_with_a_json_document(tiny_model: Path) -> None:
    header = read_safetensors_header(tiny_model)
    meta = header["__metadata__"]
    assert meta["format"] == "tagsure" and meta["format_version"] == "1"
    document = json.loads(meta["tagsure"])
    assert document["architecture"] == "tagsure.BiLSTMCRF.v1"
    assert document["labels"][0] == "O" and len(document["labels"]) == 13  # O + BIES x 3 types
    assert document["model_config"]["num_labels"] == 13
    assert header["emission.weight"]["shape"][0] == 13
    assert document["output_scheme"] == "IOB2" and document["tag_scheme"] == "BIOES"


def test_truncated_file_is_refused_with_a_clear_message(tiny_model: Path, tmp_path: Path) -> None:
    data = tiny_model.read_bytes()
    for cut in (4, 100, len(data) - 10):
        path = tmp_path / f"cut{cut}.tagsure"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated|too short"):
            Tagger.load(path)


def test_non_tagsure_files_are_refused(tmp_path: Path) -> None:
    import torch

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ModelFileError, match="not a tagsure model"):
        Tagger.load(plain)
    text = tmp_path / "notes.txt"
    text.write_text("hello, I am not a model at all")
    with pytest.raises(ModelFileError, match="not a safetensors/tagsure model file"):
        Tagger.load(text)
    with pytest.raises(ModelFileError, match="no such file"):
        Tagger.load(tmp_path / "missing.tagsure")


def rewrite_metadata(source: Path, target: Path, **changes: str) -> None:
    data = source.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"].update(changes)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    target.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + length :])


def test_newer_format_version_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    newer = tmp_path / "newer.tagsure"
    rewrite_metadata(tiny_model, newer, format_version="99")
    with pytest.raises(ModelFileError, match="format 99, newer than the 1 this tagsure reads"):
        Tagger.load(newer)


def test_a_changed_weight_is_detected(tiny_model: Path, tmp_path: Path) -> None:
    data = bytearray(tiny_model.read_bytes())
    data[-3] ^= 0xFF  # flip bits in the last tensor's bytes
    tampered = tmp_path / "tampered.tagsure"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="do not match the digest"):
        Tagger.load(tampered)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model.tagsure"
    target.write_bytes(b"previous model")
    tagger = Tagger.load(tiny_model)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        tagger.save(target)
    assert target.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tagsure"]
    monkeypatch.undo()
    tagger.save(target)
    assert Tagger.load(target).labels == tagger.labels


def test_head_size_mismatch_in_file_is_an_error(tiny_model: Path, tmp_path: Path) -> None:
    document, _ = model_file.read_model_file(tiny_model)
    document["labels"] = document["labels"][:3]
    bad = tmp_path / "bad.tagsure"
    rewrite_metadata(tiny_model, bad, tagsure=json.dumps(document))
    with pytest.raises(ModelFileError, match="lists 3 labels but its head has 13 outputs"):
        Tagger.load(bad)


def test_a_changed_weight_with_a_forged_digest_fails_the_fingerprint(
    tiny_model: Path, tmp_path: Path
) -> None:
    document, tensors = model_file.read_model_file(tiny_model)
    tensors["emission.bias"] = tensors["emission.bias"] + 0.5  # one weight changed...
    probe = tensors.pop("fingerprint.emissions")
    document["weights_sha256"] = model_file.weights_digest(tensors)  # ...and the digest forged
    tensors["fingerprint.emissions"] = probe
    forged = tmp_path / "forged.tagsure"
    metadata = {"format": "tagsure", "format_version": "1", "tagsure": json.dumps(document)}
    save_file(tensors, str(forged), metadata=metadata)
    with pytest.raises(ModelFileError, match="does not reproduce its fingerprint: emission scores"):
        Tagger.load(forged)
    assert Tagger.load(forged, verify=False).labels == document["labels"]


def test_verify_command_reports_and_fails_on_change(tiny_model: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    ok = subprocess.run(
        [sys.executable, "-m", "tagsure", "verify", str(tiny_model)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "emissions bit-identical" in ok.stdout and "verified" in ok.stdout
    document, tensors = model_file.read_model_file(tiny_model)
    tensors["emission.bias"] = tensors["emission.bias"] + 0.5
    probe = tensors.pop("fingerprint.emissions")
    document["weights_sha256"] = model_file.weights_digest(tensors)
    tensors["fingerprint.emissions"] = probe
    forged = tmp_path / "forged.tagsure"
    save_file(
        tensors,
        str(forged),
        metadata={"format": "tagsure", "format_version": "1", "tagsure": json.dumps(document)},
    )
    bad = subprocess.run(
        [sys.executable, "-m", "tagsure", "verify", str(forged)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "DIFFERENT: emission scores differ" in bad.stdout
    assert bad.stderr.startswith(f"tagsure: {forged}: verification failed")


def test_the_fingerprint_is_exact_whatever_thread_count_checks_it(tiny_model: Path) -> None:
    # Saved by a process with the default threads; checked by processes with 1 and 3: the probe
    # runs on one thread, so its emissions are bit-identical (the check held at tolerance 0).
    script = (
        "import sys, torch\n"
        "from tagsure.storage import fingerprint\n"
        "from tagsure import Tagger\n"
        "torch.set_num_threads(int(sys.argv[2]))\n"
        "tagger = Tagger.load(sys.argv[1], verify=False)\n"
        "check = fingerprint.verify(tagger, tagger.metadata['fingerprint'])\n"
        "print(check.ok, check.identical_emissions, check.tolerance, torch.get_num_threads())\n"
    )
    for threads in ("1", "3"):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tiny_model), threads],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        assert out == ["True", "True", "0.0", threads]
    stored = json.loads(read_safetensors_header(tiny_model)["__metadata__"]["tagsure"])
    assert stored["fingerprint"]["method"] == "sentence"


def test_the_probe_runs_longest_first_and_gives_the_bits_of_input_order(tiny_model: Path) -> None:
    # Longest first keeps MKL's buffer pool at one buffer (see fingerprint.run_probe); each
    # sentence is its own forward pass, so the emissions and tags are those of input order.
    tagger = Tagger.load(tiny_model, verify=False)
    sentences = tagger.metadata["fingerprint"].sentences
    assert sorted(sentences, key=len, reverse=True) != sentences  # the order matters here
    seen: list[int] = []
    emissions_of = tagger.emissions

    def recording(batch: list[list[str]]) -> list[torch.Tensor]:
        seen.append(len(batch[0]))
        return emissions_of(batch)

    tagger.emissions = recording  # type: ignore[method-assign]
    emissions, tags = fingerprint.run_probe(tagger, sentences, "sentence")
    assert seen == sorted(seen, reverse=True)
    with fingerprint._native_kernels():
        in_order = torch.cat([emissions_of([s])[0] for s in sentences])
        tags_in_order = [tagger.tag([s])[0][0] for s in sentences]
    assert torch.equal(emissions, in_order) and tags == tags_in_order
    assert fingerprint.digest(emissions) == tagger.metadata["fingerprint"].emissions_sha256
