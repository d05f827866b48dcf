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

from tagsure import Tagger, load_corpus, train
from tagsure.heads.crf import CRF
from tagsure.heads.viterbi_numpy import viterbi
from tagsure.serving.onnx_runtime import OnnxTagger
from tagsure.storage.onnx_export import export_onnx
from tests.helpers import BUNDLED, tiny_config, write_conll

TAGGERS = [
    ("bilstm", "crf"),
    ("bilstm", "softmax"),
    ("transformer", "crf"),
    ("transformer", "softmax"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Tagger]:
    """One small trained tagger of each type (2 epochs on 300 bundled WikiANN sentences)."""
    folder = tmp_path_factory.mktemp("onnx")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(folder / "train.txt", corpus.sentences[:300])
    dev_path = write_conll(folder / "dev.txt", corpus.sentences[300:400])
    taggers = {}
    for kind, head in TAGGERS:
        extra = {"heads": 2, "ff_size": 32} if kind == "transformer" else {}
        config = tiny_config(train_path, dev_path, architecture=kind, head=head, **extra)
        taggers[kind, head] = train(config).tagger
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


@pytest.mark.parametrize(("kind", "head"), TAGGERS)
def test_onnx_runtime_tags_equal_pytorch_on_wikiann(
    trained: dict, kind: str, head: str, tmp_path: Path
) -> None:
    tagger = trained[kind, head]
    path = tmp_path / "model.onnx"
    export_onnx(tagger, path)
    runtime = OnnxTagger(path)  # only the .onnx file: no .tagsure file was ever written
    sentences = [s.tokens for s in load_corpus(BUNDLED / "wikiann-en-test.txt").sentences]
    assert runtime.tag(sentences)[0] == tagger.tag(sentences)[0]
    # Emissions themselves agree to float tolerance, batch by batch (dynamic B, T, U, L).
    data = tagger.encoder.encode(sentences[:300])
    for ids in (np.arange(64), np.arange(64, 65), np.arange(100, 300)):
        batch = data.batch(ids)
        with torch.no_grad():
            expected = tagger.model.emissions(batch).numpy()
        got = runtime.emissions_of(batch)
        assert got.shape == expected.shape
        mask = batch.mask.numpy()
        np.testing.assert_allclose(got[mask], expected[mask], atol=1e-4, rtol=1e-4)


def test_the_onnx_file_is_self_contained_and_dynamic(trained: dict, tmp_path: Path) -> None:
    tagger = trained["bilstm", "crf"]
    path = tmp_path / "model.onnx"
    export_onnx(tagger, path)
    model = onnx.load(str(path))
    document = json.loads({p.key: p.value for p in model.metadata_props}["tagsure"])
    assert document["labels"] == tagger.labels
    assert document["vocabularies"]["words"] == tagger.encoder.words.items
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
@pytest.mark.parametrize(("kind", "head"), [("bilstm", "crf"), ("transformer", "crf")])
def test_onnx_runtime_tags_equal_pytorch_on_conll_dev(
    trained: dict, kind: str, head: str, conll_dev: Path, tmp_path: Path
) -> None:
    tagger = trained[kind, head]
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
