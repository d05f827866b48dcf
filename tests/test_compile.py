"""torch.compile: the transformer compiles with fullgraph=True (no graph break, train step and
inference); compiled results equal eager ones; the BiLSTM hybrid equals eager.

Backends are the cheap ones ("eager": Dynamo only, which is where graph breaks happen;
"aot_eager": plus the AOT-autograd trace of the backward). Inductor is benchmarked, not tested.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import tagsure
from tagsure import TrainConfig, load_corpus, train
from tagsure.data.batching import bucketed_batches
from tagsure.data.schemes import TagScheme, convert
from tagsure.tagger import Tagger
from tagsure.training import compiled
from tagsure.training.compiled import compile_network, compile_tagger, crf_width, pad_batch
from tagsure.training.setup import prepare_model
from tests.helpers import BUNDLED, write_conll

SRC = Path(tagsure.__file__).resolve().parent


def setup(kind: str, head: str, sentences: int = 120) -> tuple[object, torch.nn.Module, object]:
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    chosen = corpus.sentences[:sentences]
    model = {"architecture": kind, "head": head, "hidden_size": 16, "word_dim": 16}
    model |= {"dropout": 0.0, "word_dropout": 0.0}  # so compiled and eager draw no random masks
    if kind == "transformer":
        model |= {"heads": 2, "ff_size": 32}
    torch.manual_seed(0)
    encoder, net = prepare_model(TrainConfig.from_dict({"model": model}), corpus, TagScheme.BIOES)
    tags = [convert(s.tags or [], corpus.scheme, TagScheme.BIOES) for s in chosen]
    return encoder, net, encoder.encode([s.tokens for s in chosen], tags)


def short_batches(data: object) -> list[np.ndarray]:
    """Two batches of short sentences (T <= 8 after padding), of batch sizes 1 and 6."""
    order = np.argsort(data.lengths)
    return [order[[0]], order[10:16]]


def batches(data: object) -> list[np.ndarray]:
    """Batches of several shapes: lengths 1 to the longest, batch sizes 1 to 16."""
    order = np.argsort(data.lengths)
    return [order[:16], order[-5:], order[[0]], order[40:47], order[-1:]]


def assert_train_steps_equal_eager(
    net: torch.nn.Module, compiled_net: object, data: object
) -> None:
    """Loss and every gradient of the compiled step equal eager ones on short batches."""
    for ids in short_batches(data):
        batch = data.batch(ids)
        net.zero_grad()
        eager_loss = net.loss(batch)
        eager_loss.backward()
        eager_grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        net.zero_grad()
        loss = compiled_net.loss(batch)
        loss.backward()
        torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-4)
        for name, grad in eager_grads.items():
            got = dict(net.named_parameters())[name].grad
            torch.testing.assert_close(got, grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_transformer_train_step_compiles_fullgraph_and_equals_eager(head: str) -> None:
    _, net, data = setup("transformer", head)
    net.train()
    # fullgraph=True makes any graph break an error; with the CRF in the graph, the whole
    # step (emissions, CRF forward algorithm, backward through AOT autograd) is one graph.
    # Static shapes here only to keep the test quick: AOT tracing is much slower symbolic.
    compiled_net = compile_network(net, "aot_eager", dynamic=False, crf_in_graph=True)
    assert_train_steps_equal_eager(net, compiled_net, data)


def test_dynamo_explain_finds_no_graph_break_in_the_transformer() -> None:
    _, net, data = setup("transformer", "crf")
    batch = pad_batch(data.batch(short_batches(data)[1]))
    net.train()
    compiled_net = compile_network(net, "eager", crf_in_graph=True)
    step, tensors = compiled_net._graph_loss, compiled_net._tensors(batch)
    explanation = torch._dynamo.explain(step)(batch.tags, *tensors)
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1
    net.eval()
    explanation = torch._dynamo.explain(net)(*tensors)
    assert (explanation.graph_break_count, explanation.graph_count) == (0, 1)


@pytest.mark.parametrize("crf_in_graph", [False, True])
def test_transformer_inference_compiled_equals_eager(crf_in_graph: bool) -> None:
    encoder, net, data = setup("transformer", "crf")
    net.eval()
    fast = compile_network(net, "eager", crf_in_graph=crf_in_graph)
    torch._dynamo.utils.counters.clear()
    with torch.no_grad():
        # With the CRF loops in the graph, long batches mean long unrolled loops to trace.
        for ids in short_batches(data) if crf_in_graph else batches(data):
            batch = data.batch(ids)
            torch.testing.assert_close(fast.emissions(batch), net.emissions(batch))
            assert torch.equal(fast.decode(batch), net.decode(batch))
            if crf_in_graph:
                torch.testing.assert_close(
                    fast.head.marginals(net.emissions(batch), batch.mask),
                    net.head.marginals(net.emissions(batch), batch.mask),
                )
    # Dynamic shapes: five batch shapes did not make five emission graphs.
    frames = torch._dynamo.utils.counters["frames"]
    assert frames["ok"] <= (8 if crf_in_graph else 3), dict(frames)


@pytest.mark.parametrize("head", ["crf", "softmax"])
def test_bilstm_hybrid_equals_eager(head: str) -> None:
    _, net, data = setup("bilstm", head)
    fast = compile_network(net, "eager")
    assert any("char CNN" in part for part in fast.compiled_parts)
    for ids in batches(data)[:3]:
        batch = data.batch(ids)
        net.train()
        net.zero_grad()
        eager_loss = net.loss(batch)
        eager_loss.backward()
        eager_grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        net.zero_grad()
        loss = fast.loss(batch)
        loss.backward()
        torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-4)
        for name, grad in eager_grads.items():
            got = dict(net.named_parameters())[name].grad
            torch.testing.assert_close(got, grad, rtol=1e-4, atol=1e-5, msg=name)
        net.eval()
        with torch.no_grad():
            torch.testing.assert_close(fast.emissions(batch), net.emissions(batch))
            assert torch.equal(fast.decode(batch), net.decode(batch))


def test_compiled_tagger_gives_identical_tags_on_real_text() -> None:
    encoder, net, _ = setup("bilstm", "crf")
    net.eval()
    tagger = Tagger(net, encoder, TagScheme.BIOES, TagScheme.IOB2)
    dev = load_corpus(BUNDLED / "wikiann-en-dev.txt")
    sentences = [s.tokens for s in dev.sentences[:200]]
    assert compile_tagger(tagger, "eager").tag(sentences)[0] == tagger.tag(sentences)[0]


def test_train_with_compile_flag_follows_the_eager_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "DEFAULT_BACKEND", "eager")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(tmp_path / "train.txt", corpus.sentences[:120])
    dev_path = write_conll(tmp_path / "dev.txt", corpus.sentences[120:160])
    histories = []
    for compile_steps in (False, True):
        config = TrainConfig.from_dict(
            {
                "data": {"train": str(train_path), "dev": str(dev_path)},
                "model": {"architecture": "transformer", "hidden_size": 16, "heads": 2},
                "training": {"epochs": 2, "batch_size": 16, "compile": compile_steps},
            }
        )
        config.model |= {"dropout": 0.0, "word_dropout": 0.0, "ff_size": 32}
        histories.append(train(config).history)
    eager, fast = histories
    for a, b in zip(eager, fast, strict=True):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3)
        assert b.dev["f1"] == pytest.approx(a.dev["f1"], abs=0.02)


def test_padding_for_compiled_batches_keeps_the_real_tokens() -> None:
    _, _, data = setup("bilstm", "crf")
    batch = data.batch([int(np.argmin(data.lengths))])  # one sentence of one token
    padded = pad_batch(batch)
    assert padded.words.shape == (2, 8) and min(padded.chars.shape) >= 2
    assert padded.mask.sum() == batch.mask.sum() and padded.num_tokens == batch.num_tokens
    assert [crf_width(t) for t in (1, 8, 9, 17, 124)] == [8, 8, 16, 32, 128]
    assert len(bucketed_batches(data.lengths, 16)) == 8


def test_nothing_switches_graph_errors_to_eager_mode() -> None:
    assert torch._dynamo.config.suppress_errors is False
    offenders = [
        str(path)
        for path in SRC.rglob("*.py")
        if "suppress_errors =" in path.read_text() or "suppress_errors=" in path.read_text()
    ]
    assert offenders == []


@pytest.fixture(scope="module")
def pretrained_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, object]:
    """A tiny random BERT encoder with a softmax head and character features, prepared on
    WikiANN (dropout off so that eager and compiled steps draw no random masks)."""
    pytest.importorskip("transformers")
    from tests.hf_models import make_encoder_dir

    directory = make_encoder_dir(tmp_path_factory.mktemp("bert") / "bert", "bert")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    chosen = corpus.sentences[:120]
    model = {"architecture": "pretrained", "pretrained": str(directory), "head": "softmax"}
    model |= {"char_encoder": "cnn", "pooling": "first_last", "dropout": 0.0}
    torch.manual_seed(0)
    config = TrainConfig.from_dict({"model": model})
    encoder, net = prepare_model(config, corpus, TagScheme.BIOES)
    tags = [convert(s.tags or [], corpus.scheme, TagScheme.BIOES) for s in chosen]
    for module in net.modules():  # the HF config's own dropout too
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return net, encoder.encode([s.tokens for s in chosen], tags)


def test_pretrained_tagger_compiles_fullgraph_train_step_and_inference(pretrained_setup) -> None:
    net, data = pretrained_setup
    compiled_net = compile_network(net, "aot_eager", dynamic=False)
    net.train()
    assert_train_steps_equal_eager(net, compiled_net, data)
    net.eval()
    fast = compile_network(net, "eager")
    with torch.no_grad():
        for ids in batches(data):
            batch = data.batch(ids)
            torch.testing.assert_close(fast.emissions(batch), net.emissions(batch))
            assert torch.equal(fast.decode(batch), net.decode(batch))
    batch = data.batch(short_batches(data)[1])
    explanation = torch._dynamo.explain(fast.model)(*fast._tensors(batch))
    assert (explanation.graph_break_count, explanation.graph_count) == (0, 1)
