"""`tagsure serve`: parse the flags, load and verify the model, run the server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tagsure.cli.options import Device, InferencePrecision
from tagsure.serving.settings import ServeSettings, parse_size

D = ServeSettings(model=Path())  # the defaults, shown in --help


def serve(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A .tagsure model file or an exported .onnx.")
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = (
        D.host
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = D.port,
    workers: Annotated[
        int, typer.Option(help="Processes, each with its own model (for more cores).")
    ] = D.workers,
    threads: Annotated[
        int, typer.Option(help="Torch/ONNX threads per worker; 0: cores / workers.")
    ] = D.threads,
    max_batch_tokens: Annotated[
        int, typer.Option(help="Tokens per model batch, over concurrent requests.")
    ] = D.max_batch_tokens,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch waits for more requests.")
    ] = D.max_wait_ms,
    max_queue: Annotated[
        int, typer.Option(help="Requests waiting for the model; more get 429.")
    ] = D.max_queue,
    max_queue_seconds: Annotated[
        float, typer.Option(help="Seconds of work queued ahead, at the measured rate; 429 above.")
    ] = D.max_queue_seconds,
    timeout: Annotated[
        float, typer.Option(help="Seconds per request; later answers are 504.")
    ] = D.timeout,
    payload_limit: Annotated[
        str, typer.Option(help="Largest request body (413 above), e.g. 2MB.")
    ] = "2MB",
    max_client_batch: Annotated[
        int, typer.Option(help="Most inputs in one request (413 above).")
    ] = D.max_client_batch,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="TAGSURE_API_KEY",
            help="Require 'Authorization: Bearer KEY' (or set TAGSURE_API_KEY).",
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allow browser calls from this origin (repeatable).")
    ] = None,
    grace: Annotated[
        float, typer.Option(help="Seconds SIGTERM waits for accepted requests.")
    ] = D.grace,
    device: Device = D.device,
    precision: InferencePrecision = D.precision,
) -> None:
    """Serve a tagger over HTTP: POST /predict, a page at /, /health, /info, /metrics."""
    from tagsure.serving import server
    from tagsure.serving.loading import load_model

    settings = ServeSettings(
        model=model,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        max_queue_seconds=max_queue_seconds,
        timeout=timeout,
        payload_limit=parse_size(payload_limit),
        max_client_batch=max_client_batch,
        api_key=api_key or None,
        cors_origins=cors_origin or [],
        grace=grace,
        device=device,
        precision=precision,
    )
    loaded = load_model(*settings.placed_model())  # refuses an unverified model
    print(
        f"tagsure: serving {model} ({loaded.architecture}, {loaded.verification}) on "
        f"http://{host}:{port}/",
        file=sys.stderr,
        flush=True,
    )
    server.run(settings, loaded)
