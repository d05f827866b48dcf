"""Every error status of the server, over real HTTP, with its JSON body: 401, 404, 413, 422, 429,
500, 503, 504; and the batcher's own rules (token budget, waiting, own results)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tagsure.serving.batcher import Batcher, QueueFull
from tagsure.serving.loading import LoadedModel
from tests.serving import loaded, serving

TEXT = "Angela Merkel visited Paris with officials from the European Union ."


class Gated:
    """A tagger whose ``predict`` waits until the test opens the gate (or fails, if told to)."""

    def __init__(self, tagger: Any, fail: str | None = None) -> None:
        self.tagger, self.fail = tagger, fail
        self.labels = tagger.labels
        self.gate, self.entered = threading.Event(), threading.Event()

    def predict(self, texts: Any, with_scores: bool = True) -> Any:
        self.entered.set()
        self.gate.wait(30)
        if self.fail:
            raise RuntimeError(self.fail)
        return self.tagger.predict(texts, with_scores=with_scores)


def gated(path: Path, fail: str | None = None) -> tuple[LoadedModel, Gated]:
    model = loaded(path)
    gate = Gated(model.tagger, fail)
    return dataclasses.replace(model, tagger=gate), gate


def check(response: httpx.Response, status: int, error_type: str, phrase: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "error_type"}
    assert body["error_type"] == error_type
    assert phrase in body["error"], body["error"]
    assert "Traceback" not in response.text
    return body


def test_401_without_the_bearer_key(tiny_model: Path) -> None:
    with serving(loaded(tiny_model), api_key="s3cret") as url:
        body = {"inputs": TEXT}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            answer = httpx.post(url + "/predict", json=body, headers=headers)
            check(answer, 401, "unauthorized", "Authorization: Bearer KEY")
            assert answer.headers["WWW-Authenticate"] == "Bearer"
        check(httpx.get(url + "/info"), 401, "unauthorized", "API key")
        check(httpx.get(url + "/metrics"), 401, "unauthorized", "API key")
        good = {"Authorization": "Bearer s3cret"}
        assert httpx.post(url + "/predict", json=body, headers=good).status_code == 200
        assert httpx.get(url + "/info", headers=good).json()["settings"]["api_key"] is True
        assert "s3cret" not in httpx.get(url + "/info", headers=good).text
        assert httpx.get(url + "/health").status_code == 200  # probes need no key


def test_413_over_the_payload_limit_or_the_client_batch(tiny_model: Path) -> None:
    with serving(loaded(tiny_model), payload_limit=1000, max_client_batch=4) as url:
        big = {"inputs": TEXT * 20}
        check(httpx.post(url + "/predict", json=big), 413, "payload_too_large", "1000 bytes")

        def chunks():  # no Content-Length: counted as it arrives
            yield b'{"inputs": "'
            for _ in range(30):
                yield b"Paris is big. " * 5
            yield b'"}'

        chunked = httpx.post(url + "/predict", content=chunks())
        check(chunked, 413, "payload_too_large", "over the payload limit")
        many = {"inputs": ["Paris ."] * 5}
        check(httpx.post(url + "/predict", json=many), 413, "too_many_inputs", "limit is 4")
        assert httpx.post(url + "/predict", json={"inputs": ["Paris ."] * 4}).status_code == 200


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"inputs": 5}, "inputs: give a string, a list of strings"),
        ({}, "inputs: required"),
        ({"inputs": "x", "parameters": {"return_token": True}}, "parameters.return_token: Extra"),
        ({"inputs": "x", "parameters": {"return_tokens": "maybe"}}, "parameters.return_tokens"),
        ({"inputs": [["Paris"]]}, "lists of words need parameters.is_split_into_words"),
        ({"inputs": "x", "parameters": {"is_split_into_words": True}}, "inputs is a string"),
        ({"inputs": "x", "model": "/etc/passwd"}, "model: Extra inputs are not permitted"),
        (b"{bad json", "the body is not valid JSON"),
    ],
)
def test_422_names_the_field(tiny_model: Path, body: object, phrase: str) -> None:
    with serving(loaded(tiny_model)) as url:
        if isinstance(body, bytes):
            answer = httpx.post(url + "/predict", content=body)
        else:
            answer = httpx.post(url + "/predict", json=body)
        check(answer, 422, "invalid_request", phrase)


def test_404_and_405_in_the_same_shape(tiny_model: Path) -> None:
    with serving(loaded(tiny_model)) as url:
        check(httpx.get(url + "/nothing"), 404, "not_found", "Not Found")
        check(httpx.get(url + "/predict"), 405, "method_not_allowed", "Method Not Allowed")


def test_429_with_retry_after_when_the_queue_is_full(tiny_model: Path) -> None:
    model, gate = gated(tiny_model)

    async def scenario(url: str) -> tuple[list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {"inputs": TEXT}
            running = asyncio.create_task(client.post("/predict", json=body))
            while not gate.entered.is_set():  # the first is in the model, held at the gate
                await asyncio.sleep(0.01)
            queued = asyncio.create_task(client.post("/predict", json=body))
            await asyncio.sleep(0.3)  # ...the second waits in the queue (max_queue=1)
            refused = await client.post("/predict", json=body)
            gate.gate.set()
            return [await running, await queued], refused

    with serving(model, max_queue=1) as url:
        answered, refused = asyncio.run(scenario(url))
        metrics = httpx.get(url + "/metrics").text
    check(refused, 429, "overloaded", "at capacity")
    assert int(refused.headers["Retry-After"]) >= 1
    assert [a.status_code for a in answered] == [200, 200]
    assert 'code="429",outcome="failure",route="/predict"} 1.0' in metrics


def test_429_when_the_work_ahead_is_over_max_queue_seconds(tiny_model: Path) -> None:
    model, gate = gated(tiny_model)
    gate.gate.set()

    async def scenario(url: str) -> tuple[httpx.Response, httpx.Response, str]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            body = {"inputs": TEXT}
            for _ in range(3):  # the model's speed is measured from the second batch on
                assert (await client.post("/predict", json=body)).status_code == 200
            metrics = (await client.get("/metrics")).text
            gate.gate.clear()
            gate.entered.clear()
            running = asyncio.create_task(client.post("/predict", json=body))
            while not gate.entered.is_set():
                await asyncio.sleep(0.01)
            refused = await client.post("/predict", json=body)  # work ahead: over 0 s
            gate.gate.set()
            return await running, refused, metrics

    with serving(model, max_queue_seconds=0.0) as url:
        running, refused, metrics = asyncio.run(scenario(url))
    assert running.status_code == 200
    check(refused, 429, "overloaded", "over the 0 s limit (--max-queue-seconds)")
    assert int(refused.headers["Retry-After"]) >= 1
    speed = [line for line in metrics.splitlines() if line.startswith("tagsure_model_tokens")]
    assert float(speed[0].split()[1]) > 0


def test_504_past_the_timeout_and_the_server_goes_on(tiny_model: Path) -> None:
    model, gate = gated(tiny_model)
    with serving(model, timeout=0.5) as url:
        started = time.monotonic()
        late = httpx.post(url + "/predict", json={"inputs": TEXT}, timeout=10)
        assert time.monotonic() - started < 3
        check(late, 504, "timeout", "0.5 s timeout")
        gate.gate.set()
        assert httpx.post(url + "/predict", json={"inputs": TEXT}).status_code == 200


def test_503_until_the_model_is_loaded(tiny_model: Path) -> None:
    release = threading.Event()

    def slow_loader() -> LoadedModel:
        release.wait(30)
        return loaded(tiny_model)

    with serving(loader=slow_loader) as url:
        assert httpx.get(url + "/livez").json() == {"status": "alive"}
        for route in ("/health", "/readyz"):
            answer = check(httpx.get(url + route), 503, "loading", "still loading")
            assert answer
        refused = httpx.post(url + "/predict", json={"inputs": TEXT})
        check(refused, 503, "loading", "still loading")
        assert refused.headers["Retry-After"] == "1"
        release.set()
        deadline = time.monotonic() + 30
        while httpx.get(url + "/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert httpx.get(url + "/readyz").json() == {"status": "ready"}
        assert httpx.post(url + "/predict", json={"inputs": TEXT}).status_code == 200


def test_a_failing_model_answers_500_without_its_traceback(tiny_model: Path) -> None:
    model, gate = gated(tiny_model, fail="secret internals at /home/x/model.py line 3")
    gate.gate.set()
    with serving(model) as url:
        answer = httpx.post(url + "/predict", json={"inputs": TEXT})
    body = check(answer, 500, "internal", "internal server error")
    assert "secret" not in answer.text and "model.py" not in str(body)


def test_cors_is_off_unless_asked(tiny_model: Path) -> None:
    origin = {"Origin": "https://example.org"}
    with serving(loaded(tiny_model)) as url:
        assert (
            "access-control-allow-origin" not in httpx.get(url + "/health", headers=origin).headers
        )
    with serving(loaded(tiny_model), cors_origins=["https://example.org"]) as url:
        answer = httpx.get(url + "/health", headers=origin)
        assert answer.headers["access-control-allow-origin"] == "https://example.org"


# -- the batcher on its own -------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[list[str]]] = []

    def __call__(self, sentences: list[list[str]]) -> list[str]:
        self.batches.append(sentences)
        return [" ".join(s) for s in sentences]


def test_batches_respect_the_token_budget_and_answer_each_job() -> None:
    record = Recorder()
    batcher = Batcher(record, max_batch_tokens=10, max_wait_ms=200, max_queue=100)
    batcher.start()
    with contextlib.ExitStack() as admitted:  # six requests on their way, then queued in turn
        tickets = [admitted.enter_context(batcher.admitted(4)) for _ in range(6)]
        jobs = [batcher.submit([[f"w{k}", "a", "b"], ["."]], t) for k, t in enumerate(tickets)]
        results = [job.future.result(5) for job in jobs]  # 4 tokens each: 2 fit in 10
    with batcher.admitted(25) as ticket:
        big = batcher.submit([["x"] * 25], ticket)  # over the budget: a batch by itself
        assert big.future.result(5).predictions == [" ".join(["x"] * 25)]
    batcher.stop(5)
    for k, result in enumerate(results):
        assert result.predictions == [f"w{k} a b", "."]
        assert result.queue_seconds >= 0 and result.inference_seconds >= 0
    assert [sum(map(len, b)) for b in record.batches] == [8, 8, 8, 25]


def test_a_lone_request_does_not_wait_for_company() -> None:
    batcher = Batcher(Recorder(), max_batch_tokens=1000, max_wait_ms=2000, max_queue=10)
    batcher.start()
    for _ in range(3):
        started = time.perf_counter()
        with batcher.admitted(1) as ticket:
            batcher.submit([["Paris"]], ticket).future.result(5)
        assert time.perf_counter() - started < 0.5  # not the 2 s max_wait
    batcher.stop(5)


def test_admission_refuses_work_the_model_cannot_start_in_time() -> None:
    gate = threading.Event()

    def slow(sentences: list[list[str]]) -> list[str]:
        gate.wait(10)
        return [" ".join(s) for s in sentences]

    # 100 tokens/s measured; refuse once more than 1 s of work is ahead of a new request.
    batcher = Batcher(slow, 1000, 0, 100, max_queue_seconds=1.0, tokens_per_second=100.0)
    batcher.start()
    with batcher.admitted(80) as first:  # an idle server takes a request of any size
        running = batcher.submit([["w"] * 80], first)
        with batcher.admitted(60) as second:  # 0.8 s ahead: admitted, reserves its 60 tokens
            with pytest.raises(QueueFull) as refused:  # 1.4 s ahead
                with batcher.admitted(1):
                    pass
            assert "about 1.4 s of work queued, over the 1 s limit" in refused.value.reason
            assert refused.value.retry_after == 1.0
            queued = batcher.submit([["w"] * 60], second)
        gate.set()
        assert len(running.future.result(5).predictions) == 1
        assert len(queued.future.result(5).predictions) == 1
    with batcher.admitted(1):  # nothing ahead any more
        pass
    batcher.stop(5)


def test_the_admission_rate_counts_the_time_a_batch_waited_for_the_model() -> None:
    """A forward of 10 ms, but the model thread held up 0.3 s before it (the cores or the GIL
    busy elsewhere): the rate admission plans with is the one the queue drained at."""

    def quick(sentences: list[list[str]]) -> list[str]:
        time.sleep(0.01)
        return [" ".join(s) for s in sentences]

    batcher = Batcher(quick, 10, 0, 100)
    batcher.start()
    batcher.submit([["w"] * 10]).future.result(5)  # the first batch is not measured
    with batcher._condition:  # the model thread can't take the next batch while this is held
        job = batcher.submit([["w"] * 10])
        time.sleep(0.3)
    job.future.result(5)
    rate = batcher.tokens_per_second()
    assert rate is not None and rate < 10 / 0.3 * 1.1  # not 10 / 0.01 = 1,000 tokens/s
    batcher.stop(5)
