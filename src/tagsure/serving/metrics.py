"""The server's Prometheus metrics, on a registry of its own (one per app, so tests can run
several apps in one process). Under ``--workers N`` each process counts its own requests."""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagsure.serving.batcher import BatchStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
REQUEST_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 32768, 131072)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tagsure_requests",
            "HTTP requests answered, by route, status code and outcome (success or failure).",
            ["route", "code", "outcome"],
            registry=r,
        )
        self.in_progress = Gauge(
            "tagsure_requests_in_progress",
            "Prediction requests accepted, not yet answered.",
            registry=r,
        )
        self.request_seconds = Histogram(
            "tagsure_request_duration_seconds",
            "Time from arrival to answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "tagsure_queue_duration_seconds",
            "Time a request waited for the model.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "tagsure_inference_duration_seconds",
            "Time the model took per batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "tagsure_batch_size_requests",
            "Requests per model batch.",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "tagsure_batch_size_tokens",
            "Tokens per model batch.",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("tagsure_tokens", "Tokens tagged.", registry=r)
        self.queue_depth = Gauge(
            "tagsure_queue_depth", "Requests waiting for the model.", registry=r
        )
        self.queue_tokens = Gauge(
            "tagsure_queue_tokens", "Tokens waiting for the model.", registry=r
        )
        self.model_rate = Gauge(
            "tagsure_model_tokens_per_second",
            "The model's measured speed (moving average over batches); admission divides the "
            "tokens queued by it to refuse work over --max-queue-seconds. 0 until measured.",
            registry=r,
        )

    def observe_batch(self, stats: BatchStats) -> None:
        self.inference_seconds.observe(stats.inference_seconds)
        self.batch_requests.observe(stats.requests)
        self.batch_tokens.observe(stats.tokens)
        self.tokens.inc(stats.tokens)
        for seconds in stats.queue_seconds:
            self.queue_seconds.observe(seconds)

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        outcome = "success" if code < 400 else "failure"
        self.requests.labels(route, str(code), outcome).inc()
        self.request_seconds.labels(route).observe(seconds)

    def render(self, depth: tuple[int, int], tokens_per_second: float | None = None) -> bytes:
        self.queue_depth.set(depth[0])
        self.queue_tokens.set(depth[1])
        self.model_rate.set(tokens_per_second or 0.0)
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: every HTTP answer counted by route and status, and timed."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.observe_request(route, status, time.perf_counter() - started)
