"""``inspect_path`` on every kind of file tagsure meets, written for real in tmp_path."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tagsure.storage.foreign import CheckpointError
from tagsure.storage.inspect import Inspection, inspect_path

torch.set_num_threads(1)

HIDDEN = 32


class TinyTagger(nn.Module):
    def __init__(self, num_labels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Embedding(20, HIDDEN), nn.LayerNorm(HIDDEN))
        self.head = nn.Linear(HIDDEN, num_labels)


def save_st(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None):
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def as_json(result: Inspection) -> dict:
    """The JSON a CLI would print, parsed back: proves to_dict() is really serialisable."""
    return json.loads(json.dumps(result.to_dict()))


def tagsure_file(path: Path, labels: list[str], head_rows: int) -> Path:
    """A file in the tagsure model format, with the lead's BiLSTM-CRF tensor names."""
    k = head_rows
    tensors = {
        "words.weight": torch.randn(50, 8),
        "casing.weight": torch.randn(6, 4),
        "encoder.lstm.weight_ih_l0": torch.randn(64, 12),
        "emission.weight": torch.randn(k, 32),
        "emission.bias": torch.randn(k),
        "head.transitions": torch.randn(k, k),
        "head.start": torch.randn(k),
        "head.end": torch.randn(k),
        "head.transition_mask": torch.ones(k, k, dtype=torch.bool),
    }
    doc = {
        "format_version": 1,
        "architecture": "tagsure.BiLSTMCRF.v1",
        "model_config": {"num_words": 50, "num_labels": k, "hidden_size": 16, "head": "crf"},
        "labels": labels,
        "tag_scheme": "BIOES",
        "vocabularies": {"words": [f"w{i}" for i in range(50)], "chars": list("abc")},
        "training": {"epochs": 2},
        "metrics": {"dev_f1": 0.81},
        "versions": {"tagsure": "0.1.0"},
    }
    metadata = {"format": "tagsure", "format_version": "1", "tagsure": json.dumps(doc)}
    return save_st(tensors, path, metadata)


LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


def test_tagsure_model_file(tmp_path: Path) -> None:
    result = inspect_path(tagsure_file(tmp_path / "m.tagsure", LABELS, head_rows=5))
    assert result.kind == "tagsure model file"
    assert result.architecture == "tagsure.BiLSTMCRF.v1"
    assert result.labels == LABELS and result.num_labels == 5 and result.tag_scheme == "BIOES"
    assert result.head is not None
    assert (result.head.tensor, result.head.output_size) == ("emission.weight", 5)
    assert result.head.crf_tensor == "head.transitions" and result.head.crf_size == 5
    assert result.head_matches_labels is True and result.warnings == []
    assert result.config == {"num_words": 50, "num_labels": 5, "hidden_size": 16, "head": "crf"}

    text = result.format_text()
    assert "tagsure model file" in text
    assert "5 labels: O, B-PER, I-PER, E-PER, S-PER" in text
    assert "emission.weight: token classification head with 5 labels (matches the 5 labels)" in text
    assert "head.transitions (5 x 5)" in text
    data = as_json(result)
    assert data["tagsure"]["vocabularies"] == {"words": 50, "chars": 3}  # sizes, not contents
    assert data["tagsure"]["metrics"] == {"dev_f1": 0.81}
    assert data["head"]["output_size"] == 5 and data["head_matches_labels"] is True
    names = {t["name"]: t for t in data["tensors"]}
    assert names["emission.weight"]["shape"] == [5, 32]
    assert names["head.transition_mask"]["dtype"] == "bool"
    expected_total = 50 * 8 + 6 * 4 + 64 * 12 + 5 * 32 + 5 + 25 + 5 + 5 + 25
    assert data["total_parameters"] == expected_total == result.total_parameters


def test_tagsure_file_whose_head_disagrees_with_labels_warns(tmp_path: Path) -> None:
    result = inspect_path(tagsure_file(tmp_path / "bad.tagsure", LABELS[:4], head_rows=5))
    assert result.head_matches_labels is False
    assert any("emission.weight has 5 outputs but there are 4 labels" in w for w in result.warnings)
    assert any("CRF head.transitions is 5 x 5 but there are 4 labels" in w for w in result.warnings)
    text = result.format_text()
    assert "(MISMATCH: 4 labels)" in text and "Warnings:" in text


def test_dataparallel_safetensors(tmp_path: Path) -> None:
    state = nn.DataParallel(TinyTagger()).state_dict()
    result = inspect_path(save_st(state, tmp_path / "dp.safetensors"))
    assert result.kind == "safetensors"
    assert result.prefixes == ["module."]
    assert result.head is not None and result.head.tensor == "module.head.weight"
    assert result.head.description == "token classification head with 3 labels"
    assert result.head_matches_labels is None  # no labels known: nothing to compare
    assert "wrapper prefix : module. (nn.DataParallel / DistributedDataParallel" in (
        result.format_text()
    )
    data = as_json(result)
    assert data["prefixes"] == ["module."]
    assert [t["name"] for t in data["tensors"]] == sorted(state)  # safetensors sorts names
    assert data["total_parameters"] == 20 * HIDDEN + 2 * HIDDEN + 3 * HIDDEN + 3


def test_compiled_and_compiled_dataparallel_prefixes(tmp_path: Path) -> None:
    compiled = torch.compile(TinyTagger()).state_dict()
    result = inspect_path(save_st(compiled, tmp_path / "c.safetensors"))
    assert result.prefixes == ["_orig_mod."]
    assert "_orig_mod. (torch.compile)" in result.format_text()

    both = torch.compile(nn.DataParallel(TinyTagger())).state_dict()
    path = tmp_path / "cdp.pt"
    torch.save(both, path)
    result = inspect_path(path)
    assert result.kind == "pytorch checkpoint"
    assert result.prefixes == ["_orig_mod.", "module."]
    assert result.head is not None and result.head.output_size == 3


def test_lightning_checkpoint(tmp_path: Path) -> None:
    model = TinyTagger()
    path = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "epoch": 3,
            "optimizer_states": [torch.optim.SGD(model.parameters(), lr=0.1).state_dict()],
            "hyper_parameters": {"lr": 0.1, "num_labels": 3},
        },
        path,
    )
    result = inspect_path(path)
    assert result.kind == "pytorch checkpoint"
    assert result.container_key == "state_dict"
    assert result.prefixes == ["model."]
    assert result.extras["epoch"] == "3"
    assert result.extras["optimizer_states"] == "list of 1"
    assert result.config == {"lr": 0.1, "num_labels": 3}
    assert result.head is not None and result.head.tensor == "model.head.weight"
    text = result.format_text()
    assert "container key  : state_dict" in text
    assert "model. (PyTorch Lightning)" in text
    assert "model.head.weight" in text and "(3, 32)" in text


def hf_dir(
    tmp_path: Path, name: str, config: dict, tensors: dict[str, torch.Tensor], *, bin: bool = False
) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    if bin:
        torch.save(tensors, directory / "pytorch_model.bin")
    else:
        save_st(tensors, directory / "model.safetensors")
    return directory


def bert_body(vocab: int = 100) -> dict[str, torch.Tensor]:
    return {
        "bert.embeddings.word_embeddings.weight": torch.zeros(vocab, HIDDEN),
        "bert.encoder.layer.0.attention.self.query.weight": torch.zeros(HIDDEN, HIDDEN),
        "bert.encoder.layer.0.output.dense.weight": torch.zeros(HIDDEN, HIDDEN),
    }


TOKEN_CONFIG = {
    "architectures": ["BertForTokenClassification"],
    "model_type": "bert",
    "hidden_size": HIDDEN,
    "vocab_size": 100,
    "id2label": {"0": "O", "1": "B-LOC", "2": "I-LOC"},
    "label2id": {"O": 0, "B-LOC": 1, "I-LOC": 2},
}


@pytest.mark.parametrize("use_bin", [False, True])
def test_hf_token_classification_directory(tmp_path: Path, use_bin: bool) -> None:
    tensors = bert_body() | {
        "classifier.weight": torch.zeros(3, HIDDEN),
        "classifier.bias": torch.zeros(3),
    }
    directory = hf_dir(tmp_path, "ner", TOKEN_CONFIG, tensors, bin=use_bin)
    (directory / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (directory / "tokenizer_config.json").write_text("{}")

    result = inspect_path(directory)
    assert result.kind == "huggingface model directory"
    assert result.architecture == "BertForTokenClassification"
    assert result.labels == ["O", "B-LOC", "I-LOC"] and result.num_labels == 3
    assert result.vocab_size == 100 and result.hidden_size == HIDDEN
    assert result.tokenizer_files == ["tokenizer_config.json", "vocab.txt"]
    assert result.head is not None
    assert (result.head.tensor, result.head.kind, result.head.output_size) == (
        "classifier.weight",
        "token classification",
        3,
    )
    assert result.head_matches_labels is True and result.warnings == []
    assert result.prefixes == []
    text = result.format_text()
    assert "3 labels: O, B-LOC, I-LOC" in text
    assert "classifier.weight: token classification head with 3 labels (matches the 3 labels)" in (
        text
    )
    data = as_json(result)
    assert data["head"]["output_size"] == 3 and data["num_labels"] == 3
    assert data["files"][0].endswith("pytorch_model.bin" if use_bin else "model.safetensors")


def test_hf_masked_lm_directory_reports_an_lm_head(tmp_path: Path) -> None:
    config = {"architectures": ["BertForMaskedLM"], "vocab_size": 100, "hidden_size": HIDDEN}
    tensors = bert_body() | {
        "cls.predictions.transform.dense.weight": torch.zeros(HIDDEN, HIDDEN),
        "cls.predictions.decoder.weight": torch.zeros(100, HIDDEN),
        "cls.predictions.bias": torch.zeros(100),
    }
    result = inspect_path(hf_dir(tmp_path, "mlm", config, tensors))
    assert result.head is not None
    assert (result.head.tensor, result.head.kind, result.head.output_size) == (
        "cls.predictions.decoder.weight",
        "LM head",
        100,
    )
    assert result.num_labels is None and result.warnings == []
    assert result.tokenizer_files == []
    text = result.format_text()
    assert "LM head (vocabulary-sized output, 100)" in text
    assert "no tokenizer files" in text


def test_token_config_with_lm_weights_warns(tmp_path: Path) -> None:
    """The failure tagsure exists for: labels say 3, the weights predict the vocabulary."""
    tensors = bert_body() | {"cls.predictions.decoder.weight": torch.zeros(100, HIDDEN)}
    result = inspect_path(hf_dir(tmp_path, "wrong", TOKEN_CONFIG, tensors))
    assert result.head is not None and result.head.kind == "LM head"
    assert result.head_matches_labels is False
    assert any(
        "lists 3 labels but the head cls.predictions.decoder.weight is an LM head" in w
        for w in result.warnings
    )


def test_hf_head_of_another_size_warns(tmp_path: Path) -> None:
    tensors = bert_body() | {"classifier.weight": torch.zeros(50, HIDDEN)}
    result = inspect_path(hf_dir(tmp_path, "other", TOKEN_CONFIG, tensors))
    assert result.head is not None and result.head.output_size == 50
    assert result.head_matches_labels is False
    assert any(
        "classifier.weight has 50 outputs but there are 3 labels" in w for w in result.warnings
    )
    assert as_json(result)["warnings"] == result.warnings


def test_classifier_with_hidden_layer_picks_the_output_projection(tmp_path: Path) -> None:
    tensors = {
        "roberta.embeddings.word_embeddings.weight": torch.zeros(100, HIDDEN),
        "classifier.dense.weight": torch.zeros(HIDDEN, HIDDEN),
        "classifier.out_proj.weight": torch.zeros(4, HIDDEN),
    }
    result = inspect_path(save_st(tensors, tmp_path / "roberta.safetensors"))
    assert result.head is not None and result.head.tensor == "classifier.out_proj.weight"
    assert result.head.output_size == 4


def test_code_pickle_is_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    with path.open("wb") as fh:
        pickle.dump({"model": {"w": torch.zeros(2)}, "x": Payload()}, fh, protocol=2)
    with pytest.raises(CheckpointError) as info:
        inspect_path(path)
    assert str(path) in str(info.value)
    assert "pickle that would run code" in str(info.value)
    assert "tagsure will not execute it" in str(info.value)
    assert not marker.exists()


def test_truncated_safetensors_fails_naming_the_file(tmp_path: Path) -> None:
    full = save_st(TinyTagger().state_dict(), tmp_path / "full.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(full.read_bytes()[:-100])
    with pytest.raises(CheckpointError) as info:
        inspect_path(cut)
    assert str(cut) in str(info.value)
    assert "truncated safetensors file" in str(info.value)
    assert "100 missing" in str(info.value)


def test_directory_and_path_errors_are_explained(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"ghost\.pt: no such file"):
        inspect_path(tmp_path / "ghost.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"empty: not a model directory"):
        inspect_path(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: cannot read the model config"):
        inspect_path(broken)
    only_config = tmp_path / "only_config"
    only_config.mkdir()
    (only_config / "config.json").write_text(json.dumps(TOKEN_CONFIG))
    result = inspect_path(only_config)
    assert result.tensors == [] and any(w.startswith("no weights") for w in result.warnings)
