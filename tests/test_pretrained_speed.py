"""What makes the pretrained tagger fast, checked for its results: prediction groups sentences by
subwords, the encoder runs windows sorted and cut to each group's longest (the same states as
one padded pass), and the ONNX export carries ONNX Runtime's fused attention."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from tagsure import load_corpus
from tagsure.layers import pretrained
from tagsure.storage.onnx_export import export_onnx
from tests.helpers import BUNDLED
from tests.hf_models import make_encoder_dir
from tests.test_pretrained import sentence_tagger

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tagger(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("speed")
    corpus = (BUNDLED / "wikiann-en-train.txt", BUNDLED / "wikiann-en-dev.txt")
    return sentence_tagger(make_encoder_dir(folder / "bert", "bert"), corpus, max_subwords=40)


def sentences(count: int) -> list[list[str]]:
    return [s.tokens for s in load_corpus(BUNDLED / "wikiann-en-test.txt").sentences[:count]]


def test_batch_lengths_count_each_sentences_subwords(tagger) -> None:
    words = [["Ouagadougou", "is", "far"], ["Paris"], []]
    data = tagger.vectorizer.encode(words)
    specials = len(tagger.vectorizer.settings.prefix_ids + tagger.vectorizer.settings.suffix_ids)
    expected = [sum(map(len, tagger.vectorizer.word_pieces(w))) + specials for w in words]
    assert data.batch_lengths.tolist() == expected
    assert expected[0] > 3 + specials  # more subwords than words: the reason to sort by them


def test_sorted_windows_give_the_states_of_one_padded_pass(tagger, monkeypatch) -> None:
    monkeypatch.setattr(pretrained, "EVAL_WINDOWS", 3)  # several groups of different widths
    long = [w for s in sentences(40) for w in s][:120]  # windowed (40 subwords a window)
    data = tagger.vectorizer.encode([*sentences(9), long])
    batch = data.batch(np.arange(10))
    encoder = tagger.model.encoder.eval()
    ids, attention = batch.input_ids, batch.attention_mask
    assert len(set(attention.sum(1).tolist())) > 3  # windows of many lengths
    with torch.no_grad():
        (sorted_states,) = encoder.sorted_states(ids, attention)  # (W, S, H)
        (one_pass,) = encoder.subword_states(ids, attention)
    real = attention.bool()
    torch.testing.assert_close(sorted_states[real], one_pass[real], atol=1e-5, rtol=1e-4)
    # Computed: each group of 3 windows (longest first) up to its longest; the rest stays zero.
    lengths = sorted(attention.sum(1).tolist(), reverse=True)
    cells = sum(len(g) * g[0] for g in (lengths[i : i + 3] for i in range(0, len(lengths), 3)))
    assert int(sorted_states.any(dim=2).sum()) == cells < ids.numel()
    # And the words' vectors of a prediction are those of the one-pass network.
    with torch.no_grad():
        got = tagger.model.emissions(batch)
        expected = tagger.model.emission(tagger.model.hidden(vars(batch)))
    torch.testing.assert_close(got[batch.mask], expected[batch.mask], atol=1e-5, rtol=1e-4)


def test_onnx_export_fuses_attention_and_restores_sdpa(tagger, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime.transformers.optimizer")
    from tagsure.serving.onnx_runtime import OnnxTagger

    hf = tagger.model.encoder.model
    before = hf.config._attn_implementation
    path = tmp_path / "model.onnx"
    export_onnx(tagger, path)
    assert hf.config._attn_implementation == before  # the torch tagger is left as it was
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count("Attention") == hf.config.num_hidden_layers  # one fused kernel a layer
    test = sentences(200)
    runtime = OnnxTagger(path)
    for got, expected in zip(runtime.emissions(test), tagger.emissions(test), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert runtime.tag(test)[0] == tagger.tag(test)[0]


def test_a_fused_encoder_exports_to_int8_and_tags_like_fp32(tagger, tmp_path: Path) -> None:
    # ONNX Runtime's quantizer could not type the fused kernels' outputs (a RuntimeError)
    pytest.importorskip("onnxruntime.transformers.optimizer")
    from tagsure.serving.onnx_runtime import OnnxTagger

    path = tmp_path / "model-int8.onnx"
    export_onnx(tagger, path, quantize="int8")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert ops & {"QAttention", "MatMulInteger", "DynamicQuantizeMatMul"}
    runtime = OnnxTagger(path)
    assert runtime.quantized == "int8"
    test = sentences(100)
    int8, fp32 = runtime.tag(test)[0], tagger.tag(test)[0]
    same = sum(a == b for x, y in zip(int8, fp32, strict=True) for a, b in zip(x, y, strict=True))
    assert same / sum(map(len, fp32)) > 0.9
