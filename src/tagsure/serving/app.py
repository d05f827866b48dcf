"""The HTTP server: routes over one loaded model and its batcher (see docs/serving.md).

:func:`create_app` builds the FastAPI app from :class:`ServeSettings` and either a loaded model
or a loader run in a background thread at start-up (then ``/health`` says 503 until it is done).
The routes are thin: parse, split into sentences, submit to the batcher, merge, answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

import tagsure
from tagsure.serving.batcher import Batcher, NotAccepting, QueueFull, Ticket
from tagsure.serving.errors import ApiError, describe_validation, install
from tagsure.serving.grouping import group_ratio, grouped
from tagsure.serving.limits import PayloadLimit
from tagsure.serving.loading import LoadedModel
from tagsure.serving.memory import freeze_loaded
from tagsure.serving.metrics import Metrics, RequestMetrics
from tagsure.serving.schemas import (
    ErrorOut,
    PredictRequest,
    PredictResponse,
    Status,
)
from tagsure.serving.segmentation import Segmented, merge, segment_text, segment_words
from tagsure.serving.settings import ServeSettings

logger = logging.getLogger(__name__)
PAGE = Path(__file__).parent / "page"
# Inputs longer than this are split into sentences, and their answers merged and encoded, on
# the text thread, off the event loop: the loop only moves bytes, so /health answers at once.
INLINE_CHARS = 2_000
REQUEST = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 413, 422, 429, 503, 504)
}


class ServerState:
    """What the routes share: the model once loaded, its batcher, the metrics."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.model: LoadedModel | None = None
        self.batcher: Batcher | None = None
        self.failure: str | None = None
        self.stopping = False

    def attach(self, model: LoadedModel) -> None:
        s = self.settings

        def predict(sentences: list[list[str]]) -> list[Any]:
            return model.tagger.predict(sentences, with_scores=True)

        batcher = Batcher(
            predict,
            s.max_batch_tokens,
            s.max_wait_ms,
            s.max_queue,
            on_batch=self.metrics.observe_batch,
            max_queue_seconds=s.max_queue_seconds,
            predict_mixed=grouped(predict, group_ratio(model.tagger)),
        )
        batcher.start()
        self.batcher, self.model = batcher, model
        freeze_loaded()

    def ready(self) -> tuple[LoadedModel, Batcher]:
        if self.stopping:
            raise ApiError(503, "the server is shutting down", "shutting_down")
        if self.failure is not None:
            raise ApiError(503, f"the model failed to load: {self.failure}", "model_failed")
        if self.model is None or self.batcher is None:
            raise ApiError(
                503, "the model is still loading; retry shortly", "loading", {"Retry-After": "1"}
            )
        return self.model, self.batcher


def create_app(
    settings: ServeSettings,
    model: LoadedModel | None = None,
    loader: Callable[[], LoadedModel] | None = None,
) -> FastAPI:
    """The app for ``model``, or for what ``loader`` returns (run at start-up, in a thread)."""
    state = ServerState(settings)
    if model is not None:
        state.attach(model)
    # One thread for the text work of long inputs: a fixed pool, so that under load no more
    # threads (and malloc arenas) pile up than there are cores to run them.
    text_thread = ThreadPoolExecutor(1, thread_name_prefix="tagsure-text")

    async def off_loop(work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(text_thread, work)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if model is None and loader is not None:
            threading.Thread(target=load, name="tagsure-load", daemon=True).start()
        yield
        # uvicorn calls this after the last accepted request has been answered (or the grace
        # period is over): finish whatever is still queued, then stop the model thread.
        state.stopping = True
        if state.batcher is not None:
            await run_in_threadpool(state.batcher.stop, settings.grace)
        text_thread.shutdown(wait=False)

    def load() -> None:
        try:
            state.attach(loader())  # type: ignore[misc]
        except Exception as err:
            logger.error("tagsure serve: the model failed to load: %s", err)
            state.failure = str(err)

    app = FastAPI(
        title="tagsure",
        version=tagsure.__version__,
        lifespan=lifespan,
        docs_url=None,  # the docs page loads assets from a CDN; the server works offline
        redoc_url=None,
    )
    app.state.tagsure = state
    install(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Queue-Time", "X-Inference-Time", "Retry-After"],
        )
    app.add_middleware(PayloadLimit, limit=settings.payload_limit)
    app.add_middleware(RequestMetrics, metrics=state.metrics)

    def authorised(request: Request) -> None:
        if settings.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, key = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            key.strip().encode(), settings.api_key.encode()
        ):
            raise ApiError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer KEY'",
                "unauthorized",
                {"WWW-Authenticate": "Bearer"},
            )

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE / "index.html")

    app.mount("/page", StaticFiles(directory=PAGE), name="page")

    @app.get("/livez", response_model=Status)
    async def livez() -> dict[str, str]:
        """The process answers (it may still be loading the model)."""
        return {"status": "alive"}

    @app.get("/health", response_model=Status, responses=ERRORS)
    @app.get("/readyz", response_model=Status, responses=ERRORS)
    async def health() -> dict[str, str]:
        """200 once the model is loaded and verified; 503 before, and while shutting down."""
        state.ready()
        return {"status": "ready"}

    @app.get("/info", dependencies=[Depends(authorised)], responses=ERRORS)
    async def info() -> dict[str, Any]:
        loaded, _ = state.ready()
        return {
            "tagsure_version": tagsure.__version__,
            "model": loaded.info(),
            "long_inputs": loaded.split.description,
            "batching": "dynamic: concurrent requests share batches of up to "
            f"{settings.max_batch_tokens} tokens, waiting at most {settings.max_wait_ms} ms and "
            "only for requests being split; a batch of several requests is tagged in groups of "
            "similar sentence length",
            "admission": f"429 when {settings.max_queue} requests wait or when the work ahead "
            f"would take the model over {settings.max_queue_seconds:g} s at its measured speed",
            "settings": settings.public(),
        }

    @app.get("/metrics", dependencies=[Depends(authorised)])
    async def metrics() -> Response:
        batcher = state.batcher
        depth = batcher.depth() if batcher else (0, 0)
        rate = batcher.tokens_per_second() if batcher else None
        return Response(state.metrics.render(depth, rate), media_type=state.metrics.content_type)

    @app.post(
        "/predict",
        dependencies=[Depends(authorised)],
        response_model=PredictResponse,
        responses=ERRORS,
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": REQUEST}}}},
    )
    async def predict(request: Request) -> Response:
        """Entities (and with ``return_tokens``, tokens, offsets and tags) of every input.

        The body is read as JSON whatever its Content-Type (``curl -d`` sends a form type).
        """
        arrived = time.perf_counter()
        loaded, batcher = state.ready()
        body = parse(await request.body())
        inputs, single = normalise(body)
        if len(inputs) > settings.max_client_batch:
            raise ApiError(
                413,
                f"{len(inputs)} inputs in one request; the limit is {settings.max_client_batch} "
                "(--max-client-batch): send them in several requests",
                "too_many_inputs",
            )
        words = body.parameters.is_split_into_words
        size = sum(len(item) * (8 if words else 1) for item in inputs)  # characters, about
        state.metrics.in_progress.inc()
        try:
            with admitted(batcher, estimate_tokens(inputs, words)) as ticket:
                segmented = await text_work(lambda: split(inputs, words, loaded), size)
                outcome = await tagged(batcher, segmented, arrived, ticket)
        finally:
            state.metrics.in_progress.dec()
        answer = await text_work(lambda: encode(segmented, outcome, body, single), size)
        return Response(
            answer,
            media_type="application/json",
            headers={
                "X-Queue-Time": f"{outcome.queue_seconds * 1000:.3f}",
                "X-Inference-Time": f"{outcome.inference_seconds * 1000:.3f}",
            },
        )

    async def text_work(work: Callable[[], Any], size: int) -> Any:
        """Text work: inline when small, on the text thread when long."""
        return await off_loop(work) if size > INLINE_CHARS else work()

    async def tagged(
        batcher: Batcher, segmented: list[Segmented], arrived: float, ticket: Ticket
    ) -> Any:
        sentences = [s for item in segmented for s in item.sentences]
        left = settings.timeout - (time.perf_counter() - arrived)
        try:
            job = batcher.submit(sentences, ticket)
        except NotAccepting:
            raise ApiError(503, "the server is shutting down", "shutting_down") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), max(left, 0.001))
        except TimeoutError:
            job.future.cancel()  # skipped by the model thread if it hasn't started
            raise ApiError(
                504,
                f"no answer within the {settings.timeout:g} s timeout (--timeout); "
                "send smaller inputs or retry later",
                "timeout",
            ) from None

    return app


@contextlib.contextmanager
def admitted(batcher: Batcher, tokens: int) -> Iterator[Ticket]:
    """The batcher's admission as the HTTP errors a client sees (429, 503)."""
    try:
        with batcher.admitted(tokens) as ticket:
            yield ticket
    except QueueFull as full:
        raise ApiError(
            429,
            f"the server is at capacity ({full.reason}); retry after the time in Retry-After",
            "overloaded",
            {"Retry-After": str(int(full.retry_after + 0.999))},
        ) from None
    except NotAccepting:
        raise ApiError(503, "the server is shutting down", "shutting_down") from None


def estimate_tokens(inputs: list[Any], words: bool) -> int:
    """Tokens in the inputs, about, before they are split: words, or spaces in each text
    (segtok splits punctuation off words, so it gives a few more)."""
    if words:
        return sum(len(item) for item in inputs)
    return sum(item.count(" ") + 1 for item in inputs)


def split(inputs: list[Any], words: bool, loaded: LoadedModel) -> list[Segmented]:
    if words:
        return [segment_words(item, loaded.split) for item in inputs]
    return [segment_text(item, loaded.split) for item in inputs]


def encode(segmented: list[Segmented], outcome: Any, body: PredictRequest, single: bool) -> bytes:
    """The JSON answer: every input's sentences merged back, offsets into that input."""
    results, cursor = [], 0
    for item in segmented:
        n = len(item.sentences)
        part = outcome.predictions[cursor : cursor + n]
        results.append(merge(item, part, body.parameters.return_tokens))
        cursor += n
    if not body.parameters.return_tokens:
        results = [r["entities"] for r in results]
    payload = results[0] if single else results
    return json.dumps(payload, ensure_ascii=False).encode()


def parse(raw: bytes) -> PredictRequest:
    try:
        return PredictRequest.model_validate_json(raw)
    except ValidationError as err:
        raise ApiError(422, describe_validation(err), "invalid_request") from None


def normalise(body: PredictRequest) -> tuple[list[Any], bool]:
    """The inputs as a list, and whether the request gave a single one."""
    inputs, words = body.inputs, body.parameters.is_split_into_words
    if isinstance(inputs, str):
        if words:
            raise ApiError(
                422,
                "parameters.is_split_into_words: inputs is a string; with "
                "is_split_into_words give a list of words or a list of lists of words",
                "invalid_request",
            )
        return [inputs], True
    if inputs and all(isinstance(item, list) for item in inputs):
        if not words:
            raise ApiError(
                422,
                "inputs: lists of words need parameters.is_split_into_words = true",
                "invalid_request",
            )
        return list(inputs), False
    if words:  # one pre-tokenised sentence
        return [list(inputs)], True
    return list(inputs), False
