"""ONNX export: NumPy Viterbi equals the torch CRF; ONNX Runtime tags equal PyTorch's for every
tagger type on real corpora; the .onnx file is self-contained; the CLI round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tagsure import Tagger, TrainConfig, load_corpus, train
from tagsure.heads.crf import CRF
from tagsure.heads.viterbi_numpy import viterbi
from tagsure.serving.onnx_runtime import OnnxTagger
from tagsure.storage.onnx_export import export_onnx
from tests.helpers import BUNDLED, tiny_config, train_tiny_lms, write_conll
from tests.hf_models import make_encoder_dir

# Every tagger type: name -> [model] settings (architecture and head; LM files and encoder
# directories are filled in by the fixture).
TAGGERS = {
    "bilstm-crf": {"architecture": "bilstm", "head": "crf"},
    "bilstm-softmax": {"architecture": "bilstm", "head": "softmax"},
    "transformer-crf": {"architecture": "transformer", "head": "crf", "heads": 2, "ff_size": 32},
    "transformer-softmax": {"architecture": "transformer", "head": "softmax", "heads": 2},
    "bilstm-char-lms": {"architecture": "bilstm", "head": "crf", "char_language_models": []},
    "bilstm-char-lms-pooled": {
        "architecture": "bilstm",
        "head": "crf",
        "char_language_models": [],
        "char_lm_pooling": "mean",
    },
    "pretrained-bert-softmax": {"architecture": "pretrained", "head": "softmax"},
    "pretrained-roberta-crf-chars": {
        "architecture": "pretrained",
        "head": "crf",
        "char_encoder": "cnn",
        "pooling": "first_last",
    },
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tagger]:
    """One small trained tagger of each type (2 epochs on 300 bundled WikiANN sentences)."""
    folder = tmp_path_factory.mktemp("onnx")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(folder / "train.txt", corpus.sentences[:300])
    dev_path = write_conll(folder / "dev.txt", corpus.sentences[300:400])
    text = folder / "text.txt"
    text.write_text("\n".join(" ".join(s.tokens) for s in corpus.sentences[:1000]))
    lms = [str(p) for p in train_tiny_lms(folder, text)]
    taggers = {}
    for name, settings in TAGGERS.items():
        model = dict(settings)
        if "char_language_models" in model:
            model["char_language_models"] = lms
        if model["architecture"] == "pretrained":
            kind = name.split("-")[1]
            model["pretrained"] = str(make_encoder_dir(folder / kind, kind))
            config = TrainConfig.from_dict(
                {
                    "data": {"train": str(train_path), "dev": str(dev_path)},
                    "model": model,
                    "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3},
                }
            )
        else:
            architecture = model.pop("architecture")
            config = tiny_config(train_path, dev_path, architecture=architecture, **model)
        taggers[name] = train(config).tagger
    return taggers


def test_numpy_viterbi_equals_the_torch_crf() -> None:
    torch.manual_seed(0)
    k = 5
    allowed = [(i, j) for i in range(k) for j in range(k) if (i + j) % 3]
    crf = CRF(k, allowed, [0, 1, 2], [0, 3, 4])
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    lengths = torch.tensor([7, 1, 0, 4, 7, 2])
    emissions = torch.randn(6, 7, k) * 3
    emissions[4] = 0.0  # all-equal scores: ties must break the same way
    mask = torch.arange(7)[None, :] < lengths[:, None]
    expected = crf.decode(emissions, mask).numpy()
    trans, start, end = (x.detach().numpy() for x in crf._scores())
    assert np.array_equal(viterbi(emissions.numpy(), mask.numpy(), trans, start, end), expected)


@pytest.mark.parametrize("name", TAGGERS)
def test_onnx_runtime_tags_equal_pytorch_on_wikiann(
    trained: dict, name: str, tmp_path: Path
) -> None:
    tagger = trained[name]
    path = tmp_path / "model.onnx"
    export_onnx(tagger, path)
    runtime = OnnxTagger(path)  # only the .onnx file: no .tagsure file was ever written
    sentences = [s.tokens for s in load_corpus(BUNDLED / "wikiann-en-test.txt").sentences]
    assert runtime.tag(sentences)[0] == tagger.tag(sentences)[0]
    # Emissions themselves agree to float tolerance, batch by batch (dynamic B, T, U, L).
    data = tagger.vectorizer.encode(sentences[:300])
    tagger._attach_features(data)  # LM features of the whole input (pooled: over all of it)
    for ids in (np.arange(64), np.arange(64, 65), np.arange(100, 300)):
        batch = data.batch(ids)
        with torch.no_grad():
            expected = tagger.model.emissions(batch).numpy()
        pooled = None
        if "pooled" in name:  # the pooled half of the cached features, as the runtime pools
            pooled = batch.features[:, :, batch.features.shape[2] // 2 :]
        got = runtime.emissions_of(batch, pooled)
        assert got.shape == expected.shape
        mask = batch.mask.numpy()
        np.testing.assert_allclose(got[mask], expected[mask], atol=1e-4, rtol=1e-4)
    # A fresh process tags (and scores) the same with the .onnx file alone, and imports no torch.
    done = subprocess.run(
        [sys.executable, "-c", TORCH_FREE_TAG, str(path), json.dumps(sentences[:20])],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    tags, scores = runtime.tag(sentences[:20], with_scores=True)
    assert json.loads(done.stdout) == [tags, [s.tolist() for s in scores or []]]


TORCH_FREE_TAG = """
import json, sys
from tagsure.serving.onnx_runtime import OnnxTagger
tags, scores = OnnxTagger(sys.argv[1]).tag(json.loads(sys.argv[2]), with_scores=True)
assert "torch" not in sys.modules, "torch was imported"
print(json.dumps([tags, [s.tolist() for s in scores]]))
"""


def test_the_onnx_file_is_self_contained_and_dynamic(trained: dict, tmp_path: Path) -> None:
    tagger = trained["bilstm-crf"]
    path = tmp_path / "model.onnx"
    export_onnx(tagger, path)
    model = onnx.load(str(path))
    document = json.loads({p.key: p.value for p in model.metadata_props}["tagsure"])
    assert document["labels"] == tagger.labels
    assert document["vocabularies"]["words"] == tagger.vectorizer.words.items
    assert document["onnx"]["decoder"]["kind"] == "crf"
    assert np.array_equal(
        np.asarray(document["onnx"]["decoder"]["transitions"], dtype=np.float32),
        tagger.model.head._scores()[0].detach().numpy(),
    )
    dims = {
        i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in model.graph.input
    }
    assert dims["words"] == ["batch", "steps"]
    assert dims["chars"] == ["unique_tokens", "word_chars"]
    predictions = OnnxTagger(path).predict(["Angela Merkel visited Paris ."])
    assert predictions[0].tokens == ["Angela", "Merkel", "visited", "Paris", "."]


def test_a_foreign_onnx_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "foreign.onnx"
    onnx.save(
        helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]),
        str(path),
    )
    with pytest.raises(ValueError, match="without tagsure metadata.*tagsure export --format onnx"):
        OnnxTagger(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", TAGGERS)
def test_onnx_runtime_tags_equal_pytorch_on_conll_dev(
    trained: dict, name: str, conll_dev: Path, tmp_path: Path
) -> None:
    tagger = trained[name]
    export_onnx(tagger, tmp_path / "model.onnx")
    sentences = [s.tokens for s in load_corpus(conll_dev).sentences]
    assert OnnxTagger(tmp_path / "model.onnx").tag(sentences)[0] == tagger.tag(sentences)[0]


def test_cli_export_and_predict_onnx_match_predict(tiny_model: Path, tmp_path: Path) -> None:
    data = BUNDLED / "wikiann-en-dev.txt"
    onnx_path = tmp_path / "model.onnx"

    def tagsure(*args: str) -> str:
        command = [sys.executable, "-m", "tagsure", *args]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    assert "exported" in tagsure("export", str(tiny_model), str(onnx_path), "--format", "onnx")
    assert tagsure("predict", "--onnx", str(onnx_path), str(data)) == tagsure(
        "predict", str(tiny_model), str(data)
    )
