"""Taggers of every type for the batch tests (streaming CLI, Ray, Spark), trained once per run.

The models are cached under pytest's base temp folder, so each test module that asks for them
reuses the files the first one wrote instead of training again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tagsure import TrainConfig, load_corpus, train
from tagsure.storage.onnx_export import export_onnx
from tests.helpers import BUNDLED, tiny_config, train_tiny_lms, write_conll
from tests.hf_models import make_encoder_dir

TEXTS = [
    "Angela Merkel met Emmanuel Macron in Paris. Then she flew to Berlin.",
    "The University of Oxford is in England .",
    "Barack Obama visited the United Nations in New York on Monday .",
    "Nothing to see here .",
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(module: str) -> None:
    """Import ``module`` or skip; in CI a missing engine fails instead of skipping."""
    if in_ci():
        __import__(module)
    else:
        pytest.importorskip(module)


def documents(n: int = 60) -> list[str]:
    """``n`` documents of 1-3 bundled WikiANN sentences plus the hand-written texts."""
    sentences = [" ".join(s.tokens) for s in load_corpus(BUNDLED / "wikiann-en-dev.txt").sentences]
    docs = [" ".join(sentences[i : i + 1 + i % 3]) for i in range(n)]
    return TEXTS + docs


# Every tagger type: BiLSTM, BiLSTM with character LMs, transformer, pretrained encoder, ONNX.
KINDS = ["bilstm", "charlm", "transformer", "pretrained", "onnx"]


def batch_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """bilstm, charlm (a bilstm stacking two tiny character LMs), transformer, pretrained (tiny
    BERT) and onnx (the bilstm exported)."""
    folder = tmp_path_factory.getbasetemp() / "batch-models"
    paths = {
        "bilstm": folder / "bilstm.tagsure",
        "charlm": folder / "charlm.tagsure",
        "transformer": folder / "transformer.tagsure",
        "pretrained": folder / "pretrained.tagsure",
        "onnx": folder / "bilstm.onnx",
    }
    if all(p.exists() for p in paths.values()):
        return paths
    folder.mkdir(exist_ok=True)
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(folder / "train.txt", corpus.sentences[:200])
    dev_path = write_conll(folder / "dev.txt", corpus.sentences[300:360])
    result = train(tiny_config(train_path, dev_path), out=paths["bilstm"])
    export_onnx(result.tagger, paths["onnx"])
    text = folder / "text.txt"
    text.write_text("\n".join(" ".join(s.tokens) for s in corpus.sentences[:600]))
    lms = [str(p) for p in train_tiny_lms(folder, text)]
    train(tiny_config(train_path, dev_path, char_language_models=lms), out=paths["charlm"])
    transformer = {"architecture": "transformer", "heads": 2, "layers": 1, "ff_size": 32}
    train(tiny_config(train_path, dev_path, **transformer), out=paths["transformer"])
    encoder = make_encoder_dir(folder / "bert", "bert")
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": {"architecture": "pretrained", "pretrained": str(encoder), "head": "softmax"},
            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "seed": 3},
        }
    )
    train(config, out=paths["pretrained"])
    return paths


def expected_rows(model: Path, texts: list[str]) -> list[list[dict]]:
    """What ``Tagger.predict`` (or ``OnnxTagger.predict``) gives, as entity structs."""
    from tagsure.predictors import PredictorSpec
    from tagsure.rows import entity_row

    predictor = PredictorSpec(str(model)).load()
    return [[entity_row(e) for e in p.entities] for p in predictor.predict(texts)]


def same_entities(got: list[dict], want: list[dict]) -> bool:
    """Equal structs; scores compared at float32 precision (Arrow and Spark store float)."""
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if {k: a[k] for k in a if k != "score"} != {k: b[k] for k in b if k != "score"}:
            return False
        if (a["score"] is None) != (b["score"] is None):
            return False
        if a["score"] is not None and abs(a["score"] - b["score"]) > 1e-6:
            return False
    return True
