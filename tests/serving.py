"""Helpers for the server tests: a real uvicorn server on a free loopback port, in a thread or
as a `tagsure serve` subprocess, started and stopped by the test; and the answer /predict must
give, computed from ``Tagger.predict``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tagsure.serving.app import create_app
from tagsure.serving.loading import LoadedModel, load_model
from tagsure.serving.settings import ServeSettings

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(model: LoadedModel | None = None, loader: Any = None, **settings: Any) -> Iterator[str]:
    """The app under uvicorn in a thread; yields its base URL, stops it on exit."""
    port = free_port()
    path = model.path if model is not None else Path("model")
    app = create_app(ServeSettings(model=path, port=port, **settings), model, loader)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def loaded(path: Path) -> LoadedModel:
    return load_model(path, threads=1)


@contextlib.contextmanager
def cli_server(model: Path, *flags: str, port: int | None = None) -> Iterator[tuple[str, Any]]:
    """`tagsure serve MODEL FLAGS` as a subprocess; yields (base URL, process) once healthy."""
    port = port or free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "tagsure", "serve", str(model), "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--threads", "1", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tagsure serve exited: {process.stderr.read()}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("tagsure serve did not become healthy")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def expected(
    tagger: Any, inputs: Sequence[str | Sequence[str]], return_tokens: bool = True
) -> list[Any]:
    """What /predict must answer for ``inputs`` (a list), from ``tagger.predict`` itself."""
    results = []
    for item, prediction in zip(inputs, tagger.predict(list(inputs)), strict=True):
        if isinstance(item, str):
            text, offsets = item, prediction.offsets
            spans = [(e.start, e.end) for e in prediction.entities]
        else:  # token indices -> character offsets into the words joined by spaces
            text = " ".join(item)
            starts = [sum(len(w) + 1 for w in item[:i]) for i in range(len(item))]
            offsets = [(s, s + len(w)) for s, w in zip(starts, item, strict=True)]
            spans = [(offsets[e.start][0], offsets[e.end - 1][1]) for e in prediction.entities]
        entities = [
            {"entity_group": e.label, "score": e.score, "word": e.text, "start": s, "end": end}
            for e, (s, end) in zip(prediction.entities, spans, strict=True)
        ]
        assert all(text[s:end] == e["word"] for e, (s, end) in zip(entities, spans, strict=True))
        if return_tokens:
            results.append(
                {
                    "entities": entities,
                    "tokens": prediction.tokens,
                    "offsets": [list(o) for o in offsets],
                    "tags": prediction.tags,
                }
            )
        else:
            results.append(entities)
    return results


def without_scores(result: Any) -> Any:
    """The same answer with every score dropped (scores differ in the last bits when requests
    share a batch with others: a different batch shape rounds differently)."""
    if isinstance(result, list):
        return [without_scores(r) for r in result]
    if isinstance(result, dict):
        return {k: without_scores(v) for k, v in result.items() if k != "score"}
    return result
