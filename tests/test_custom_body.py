"""A fourth body, defined and registered here only: a tiny GRU over the shared word features.

With no change outside this file it trains through ``tagsure.train``, saves, reloads exactly in
a fresh process (which imports this module, so the body is registered there too), compiles with
the same tags and exports to ONNX with the tags PyTorch gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tagsure import Tagger, TrainConfig, load_corpus, train
from tagsure.config_dict import JsonConfig
from tagsure.models.features import WordFeatureFrame
from tagsure.models.frame import Inputs
from tagsure.models.registry import register
from tests.helpers import BUNDLED, RELOAD_SCRIPT, write_conll

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class TinyGRUConfig(JsonConfig):
    settings_name = "tiny GRU"
    data_derived = ("num_words", "num_chars", "num_labels")

    num_words: int
    num_chars: int
    num_labels: int
    word_dim: int = 16
    casing_dim: int = 4
    char_encoder: str = "cnn"
    char_dim: int = 8
    char_size: int = 8
    hidden_size: int = 16
    dropout: float = 0.1
    word_dropout: float = 0.05
    head: str = "crf"
    lowercase_words: bool = True


@register("tests.TinyGRU.v1", kind="tiny-gru")
class TinyGRUTagger(WordFeatureFrame):
    """Word features -> a forward GRU -> the frame's emission layer and head."""

    config_class = TinyGRUConfig

    def build(self, config: TinyGRUConfig) -> int:
        width = self.build_word_features(config)
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(width, config.hidden_size, batch_first=True)
        return config.hidden_size

    def features(self, inputs: Inputs) -> torch.Tensor:
        return self.dropout(torch.cat(self.word_features(inputs), dim=2))  # (B, T, F)

    def body(self, x: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        # Forward only: padding comes after a sentence's tokens, so it never reaches them.
        return self.dropout(self.gru(x)[0])  # (B, T, H)

    @property
    def body_graph_safe(self) -> bool:
        return False  # Dynamo does not trace nn.GRU


def reload_here_and_there(model_path: Path, data_path: Path, out_dir: Path) -> dict:
    """helpers.RELOAD_SCRIPT in a fresh process that first imports this module (the body)."""
    script = "import tests.test_custom_body\n" + RELOAD_SCRIPT
    subprocess.run(
        [sys.executable, "-c", script, str(model_path), str(data_path), str(out_dir)],
        check=True,
        cwd=ROOT,
    )
    result = json.loads((out_dir / "reloaded.json").read_text())
    result["emissions"] = load_file(str(out_dir / "emissions.safetensors"))
    return result


def test_a_gru_body_trains_saves_reloads_compiles_and_exports(tmp_path: Path) -> None:
    from tagsure.serving.onnx_runtime import OnnxTagger
    from tagsure.storage.onnx_export import export_onnx
    from tagsure.training.compiled import compile_tagger

    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(tmp_path / "train.txt", corpus.sentences[:80])
    dev_path = write_conll(tmp_path / "dev.txt", corpus.sentences[80:120])
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(train_path), "dev": str(dev_path)},
            "model": {"architecture": "tiny-gru", "hidden_size": 12},
            "training": {"epochs": 1, "batch_size": 16, "seed": 3},
        }
    )
    model_path = tmp_path / "model.tagsure"
    tagger = train(config, out=model_path).tagger
    assert isinstance(tagger.model, TinyGRUTagger) and tagger.model.gru.hidden_size == 12
    dev = load_corpus(dev_path)
    sentences = [s.tokens for s in dev.sentences]
    emissions = tagger.emissions(sentences)
    tags, _ = tagger.tag(sentences)

    after = reload_here_and_there(model_path, dev_path, tmp_path)
    for i, emission in enumerate(emissions):
        assert torch.equal(emission, after["emissions"][str(i)]), f"sentence {i}: emissions differ"
    assert after["tags"] == tags
    assert after["metrics"] == json.loads(json.dumps(tagger.evaluate(dev).to_dict()))
    loaded = Tagger.load(model_path)
    assert loaded.model.architecture == "tests.TinyGRU.v1" and loaded.tag(sentences)[0] == tags

    assert compile_tagger(tagger, "eager").tag(sentences)[0] == tags

    pytest.importorskip("onnxruntime")
    export_onnx(loaded, tmp_path / "model.onnx")
    assert OnnxTagger(tmp_path / "model.onnx").tag(sentences)[0] == tags
