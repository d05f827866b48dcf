"""Run the app under uvicorn: one process, or ``--workers N`` processes sharing the port.

SIGTERM (or Ctrl-C) makes uvicorn stop accepting connections and wait up to ``grace`` seconds
for accepted requests; then the app's shutdown finishes whatever the batcher still holds. The
process then exits 0: a SIGTERM is the normal way a server is told to stop.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import uvicorn

from tagsure.serving.loading import LoadedModel, load_model
from tagsure.serving.memory import bound_malloc
from tagsure.serving.settings import ServeSettings

SETTINGS_ENV = "TAGSURE_SERVE_SETTINGS"


def run(settings: ServeSettings, model: LoadedModel) -> None:
    """Serve until SIGTERM/SIGINT; ``model`` is the verified model (workers load their own)."""
    bound_malloc()
    common: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.grace + 0.999),
        log_level="warning",
        access_log=False,
    )
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = json.dumps(settings.to_env())
        uvicorn.run(
            "tagsure.serving.server:worker_app", factory=True, workers=settings.workers, **common
        )
        return
    from tagsure.serving.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings, model), **common))
    # uvicorn re-raises the SIGTERM it caught once it has shut down; by then every accepted
    # request has been answered, so let it end the process normally instead.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def worker_app():  # -> FastAPI; one per `--workers` process, with its own copy of the model
    from tagsure.serving.app import create_app

    settings = ServeSettings.from_env(json.loads(os.environ[SETTINGS_ENV]))
    bound_malloc()
    # Loaded (and verified) before uvicorn lets this worker accept from the shared socket: a
    # worker still loading would take requests off it and answer them 503 while its siblings
    # are ready, and a health probe would see one worker's state as the server's.
    return create_app(settings, load_model(*settings.placed_model()))
