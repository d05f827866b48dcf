"""`/predict` over real HTTP answers exactly what `Tagger.predict` gives, for every tagger type
and for ONNX; concurrent requests each get their own answer; long inputs come back whole."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tagsure import TrainConfig, load_corpus, train
from tagsure.data.text import split_sentences
from tagsure.serving.onnx_runtime import OnnxTagger
from tagsure.storage.onnx_export import export_onnx
from tests.helpers import BUNDLED, tiny_config, train_tiny_lms, write_conll
from tests.hf_models import make_encoder_dir
from tests.serving import expected, loaded, serving, without_scores

TEST = load_corpus(BUNDLED / "wikiann-en-test.txt").sentences
SENTENCES = [" ".join(s.tokens) for s in TEST[:60]]
# Documents of 1-4 sentences, an empty one, one with non-ASCII text and odd spacing.
TEXTS = [" ".join(SENTENCES[i : i + 1 + i % 4]) for i in range(0, 40, 3)] + [
    "",
    "  \n ",
    "Zoë Müller flew to São Paulo .\n\nThen  she   met  Angela Merkel .",
    "I did n't play my tennis . \" I wo n't go , \" said Boris Becker .",  # CoNLL-style
]

TAGGERS = {
    "bilstm-crf": {"architecture": "bilstm"},
    "bilstm-char-lms": {"architecture": "bilstm", "char_language_models": []},
    "transformer-crf": {"architecture": "transformer", "heads": 2, "ff_size": 32},
    "pretrained-bert": {"architecture": "pretrained", "head": "softmax"},
}


BILSTM_TRAINING = {
    "warmup_fraction": 0.0,
    "head_learning_rate": None,
    "clip_grad_norm": 5.0,
    "group_by_length": True,
    "loss_average": "sentence",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved tiny tagger of each type (2 epochs on 300 bundled sentences), and ONNX files."""
    folder = tmp_path_factory.mktemp("serve")
    corpus = load_corpus(BUNDLED / "wikiann-en-train.txt")
    train_path = write_conll(folder / "train.txt", corpus.sentences[:300])
    dev_path = write_conll(folder / "dev.txt", corpus.sentences[300:400])
    text = folder / "text.txt"
    text.write_text("\n".join(" ".join(s.tokens) for s in corpus.sentences[:600]))
    paths = {}
    for name, settings in TAGGERS.items():
        model = dict(settings)
        if "char_language_models" in model:
            model["char_language_models"] = [str(p) for p in train_tiny_lms(folder, text)]
        if model["architecture"] == "pretrained":
            model["pretrained"] = str(make_encoder_dir(folder / "bert", "bert"))
            config = TrainConfig.from_dict(
                {
                    "data": {"train": str(train_path), "dev": str(dev_path)},
                    "model": model,
                    # the trainer's general defaults, not the pretrained architecture's
                    # fine-tuning recipe: a tiny random encoder learns from scratch here
                    "training": {
                        "epochs": 3,
                        "batch_size": 16,
                        "learning_rate": 5e-3,
                        **BILSTM_TRAINING,
                    },
                }
            )
        else:
            config = tiny_config(train_path, dev_path, **model)
        paths[name] = folder / f"{name}.tagsure"
        result = train(config, out=paths[name])
        if name in ("bilstm-crf", "pretrained-bert"):
            paths[f"{name}-onnx"] = folder / f"{name}.onnx"
            export_onnx(result.tagger, paths[f"{name}-onnx"])
    return paths


def post(url: str, inputs: object, **parameters: object) -> httpx.Response:
    body = {"inputs": inputs, "parameters": parameters}
    return httpx.post(url + "/predict", json=body, timeout=60)


@pytest.mark.parametrize("name", [*TAGGERS, "bilstm-crf-onnx", "pretrained-bert-onnx"])
def test_results_equal_tagger_predict(name: str, models: dict[str, Path]) -> None:
    model = loaded(models[name])
    tagger = model.tagger
    assert isinstance(tagger, OnnxTagger) == name.endswith("-onnx")
    words = [s.tokens for s in TEST[60:70]]
    with serving(model) as url:
        answer = post(url, TEXTS, return_tokens=True)
        assert answer.status_code == 200, answer.text
        assert answer.json() == expected(tagger, TEXTS)  # scores too: the same batch
        assert sum(len(r["entities"]) for r in answer.json()) > 0  # a test that can fail
        # One text: its entities alone, as Hugging Face answers a single input.
        single = post(url, TEXTS[1])
        assert single.json() == expected(tagger, [TEXTS[1]], return_tokens=False)[0]
        # Pre-tokenised: offsets into the words joined by single spaces.
        split = post(url, words, is_split_into_words=True, return_tokens=True)
        assert split.status_code == 200, split.text
        assert split.json() == expected(tagger, words)
        one = post(url, words[0], is_split_into_words=True)
        assert one.json() == expected(tagger, [words[0]], return_tokens=False)[0]
        assert float(single.headers["X-Inference-Time"]) > 0
        assert float(single.headers["X-Queue-Time"]) >= 0
        info = httpx.get(url + "/info").json()
    assert info["model"]["runtime"] == ("onnxruntime" if name.endswith("-onnx") else "torch")
    assert info["model"]["labels"] == list(tagger.labels)
    assert info["settings"]["max_batch_tokens"] == 8192
    assert "split into sentences" in info["long_inputs"]
    if not name.endswith("-onnx"):
        assert len(info["model"]["fingerprint_sha256"]) == 64
    # ONNX too: its scores come from NumPy's forward-backward over the ONNX emissions
    assert all(0 < e["score"] <= 1 for r in answer.json() for e in r["entities"])


def test_fifty_concurrent_requests_each_get_their_own_answer(tiny_model: Path) -> None:
    model = loaded(tiny_model)
    texts = [" ".join(SENTENCES[i : i + 1 + i % 3]) for i in range(50)]
    assert len(set(texts)) == 50
    want = expected(model.tagger, texts)

    async def all_at_once(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            body = [{"inputs": t, "parameters": {"return_tokens": True}} for t in texts]
            return await asyncio.gather(*(client.post("/predict", json=b) for b in body))

    with serving(model, max_batch_tokens=400, max_wait_ms=20) as url:
        answers = asyncio.run(all_at_once(url))
        metrics = httpx.get(url + "/metrics").text
    assert [a.status_code for a in answers] == [200] * 50
    for text, answer, mine in zip(texts, answers, want, strict=True):
        got = answer.json()
        assert got["tokens"] == mine["tokens"], text
        assert without_scores(got) == without_scores(mine)
        for a, b in zip(got["entities"], mine["entities"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-6)
    # They were batched together: fewer batches than requests, none over the token budget.
    batches = metric(metrics, "tagsure_batch_size_requests_count")
    assert 1 <= batches < 50
    assert metric(metrics, "tagsure_batch_size_requests_sum") == 50
    assert metric(metrics, 'tagsure_requests_total{code="200",outcome="success",route="/predict"}')
    tokens = sum(len(w["tokens"]) for w in want)
    assert metric(metrics, "tagsure_tokens_total") == tokens


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and "}" not in name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.slow
def test_a_100000_token_document_comes_back_whole(tiny_model: Path) -> None:
    model = loaded(tiny_model)
    paragraphs, tokens = [], 0
    while tokens < 100_000:  # paragraphs of 1-5 bundled sentences, until 100,000 tokens
        k = len(paragraphs) % 50
        paragraphs.append(" ".join(SENTENCES[k : k + 1 + k % 5]))
        tokens += sum(map(len, split_sentences(paragraphs[-1])))
    document = "\n\n".join(paragraphs)
    want = expected(model.tagger, [document])[0]
    assert len(want["tokens"]) >= 100_000
    with serving(model, timeout=120) as url:
        answer = post(url, document, return_tokens=True)
    assert answer.status_code == 200, answer.text[:500]
    got = answer.json()
    assert len(got["tokens"]) == len(want["tokens"])
    assert got == want
    assert all(document[s:e] == t for t, (s, e) in zip(got["tokens"], got["offsets"], strict=True))
    assert all(document[e["start"] : e["end"]] == e["word"] for e in got["entities"])
    assert len(json.dumps(document)) < 2 * 1024 * 1024  # it fits the default payload limit


def test_a_long_sentence_is_windowed_by_a_pretrained_encoder_not_truncated(
    models: dict[str, Path],
) -> None:
    model = loaded(models["pretrained-bert"])
    words = [w for s in TEST[:40] for w in s.tokens if w.isalpha()]
    sentence = " ".join(words)  # hundreds of words, far over the encoder's 64 positions
    assert len(split_sentences(sentence)) == 1 and len(words) > 200
    with serving(model) as url:
        answer = post(url, sentence, return_tokens=True).json()
        info = httpx.get(url + "/info").json()
    assert answer == expected(model.tagger, [sentence])[0]
    assert len(answer["tags"]) == len(split_sentences(sentence)[0])
    assert "windows" in info["long_inputs"] and "no word is dropped" in info["long_inputs"]


def test_the_transformer_gets_sentences_of_at_most_max_positions(models: dict[str, Path]) -> None:
    model = loaded(models["transformer-crf"])
    limit = model.split.max_sentence_tokens
    assert limit == 512
    words = [w for s in TEST for w in s.tokens if w.isalpha()][: 2 * limit + 100]
    sentence = " ".join(words)
    tokens = split_sentences(sentence)[0]
    pieces = [[t.text for t in tokens[i : i + limit]] for i in range(0, len(tokens), limit)]
    with serving(model) as url:
        answer = post(url, sentence, return_tokens=True).json()
        info = httpx.get(url + "/info").json()
    assert answer["tokens"] == [t.text for t in tokens]
    assert answer["tags"] == [tag for p in model.tagger.predict(pieces) for tag in p.tags]
    assert answer["offsets"] == [[t.start, t.end] for t in tokens]
    assert f"longer than {limit} tokens" in info["long_inputs"]
