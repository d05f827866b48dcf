"""`tagsure serve` as users run it: a subprocess on a free loopback port. It refuses a model that
fails verification, serves .onnx files, and on SIGTERM answers every accepted request, then
exits 0."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from safetensors.torch import save_file

from tagsure import Tagger, load_corpus
from tagsure.storage import model_file
from tagsure.storage.onnx_export import export_onnx
from tests.helpers import BUNDLED
from tests.serving import SRC, cli_server, expected, free_port, without_scores

IN_PROGRESS = re.compile(r"^tagsure_requests_in_progress (\S+)$", re.MULTILINE)
SENTENCES = [" ".join(s.tokens) for s in load_corpus(BUNDLED / "wikiann-en-test.txt").sentences]


def serve_command(model: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tagsure", "serve", str(model), "--port", str(free_port())]
    return subprocess.run(
        [*command, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )


def test_a_model_failing_its_fingerprint_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    document, tensors = model_file.read_model_file(tiny_model)
    tensors["emission.bias"] = tensors["emission.bias"] + 0.5  # a weight changed...
    probe = tensors.pop("fingerprint.emissions")
    document["weights_sha256"] = model_file.weights_digest(tensors)  # ...the digest forged
    tensors["fingerprint.emissions"] = probe
    forged = tmp_path / "forged.tagsure"
    metadata = {"format": "tagsure", "format_version": "1", "tagsure": json.dumps(document)}
    save_file(tensors, str(forged), metadata=metadata)
    done = serve_command(forged)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not reproduce its fingerprint" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    missing = serve_command(tmp_path / "nothing.tagsure")
    assert missing.returncode == 1 and "no such model file" in missing.stderr


def test_bad_flags_are_refused(tiny_model: Path) -> None:
    done = serve_command(tiny_model, "--payload-limit", "lots")
    assert done.returncode == 1 and "not a size: 'lots'" in done.stderr


def test_serves_an_onnx_file(tiny_model: Path, tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    export_onnx(Tagger.load(tiny_model), onnx_path)
    from tagsure.serving.onnx_runtime import OnnxTagger

    texts = SENTENCES[:20]
    with cli_server(onnx_path) as (url, _):
        answer = httpx.post(url + "/predict", json={"inputs": texts, "parameters": {}})
        info = httpx.get(url + "/info").json()
    assert answer.status_code == 200
    assert answer.json() == expected(OnnxTagger(onnx_path), texts, return_tokens=False)
    assert info["model"]["runtime"] == "onnxruntime"


@pytest.mark.slow
def test_sigterm_under_load_answers_every_accepted_request(tiny_model: Path) -> None:
    tagger = Tagger.load(tiny_model)
    # 40 documents of ~2,000 tokens: several seconds of work, so most wait in the queue.
    texts = [" ".join(SENTENCES[i : i + 90]) for i in range(40)]
    want = expected(tagger, texts)

    async def load_then_sigterm(url: str, process: subprocess.Popen) -> tuple[list, float, int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

            async def one(text: str) -> tuple[httpx.Response, float]:
                body = {"inputs": text, "parameters": {"return_tokens": True}}
                answer = await client.post("/predict", json=body)
                return answer, time.monotonic()

            requests = [asyncio.create_task(one(t)) for t in texts]
            deadline = time.monotonic() + 60
            while True:  # until at least 10 are inside the server, mid-flight
                metrics = (await client.get("/metrics")).text
                busy = int(float(IN_PROGRESS.search(metrics).group(1)))  # type: ignore[union-attr]
                if busy >= 10:
                    break
                assert time.monotonic() < deadline, "the server never had 10 requests in flight"
                await asyncio.sleep(0.01)
            process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            return await asyncio.gather(*requests, return_exceptions=True), sent, busy

    # A generous timeout: this is about SIGTERM, and a loaded CI machine is slow (504 is not lost).
    flags = ("--max-batch-tokens", "512", "--timeout", "120")
    with cli_server(tiny_model, *flags) as (url, process):
        answers, sigterm, busy = asyncio.run(load_then_sigterm(url, process))
        code = process.wait(60)
        stderr = process.stderr.read()
    assert code == 0, stderr
    assert all(isinstance(a, tuple) for a in answers), answers  # no request dropped
    assert [a.status_code for a, _ in answers] == [200] * 40
    assert sum(done > sigterm for _, done in answers) >= busy  # those in flight were finished
    for (answer, _), mine in zip(answers, want, strict=True):
        assert without_scores(answer.json()) == without_scores(mine)
    with pytest.raises(httpx.ConnectError):  # and nothing is accepted any more
        httpx.get(url + "/health")
