"""One queue and one model thread: concurrent requests tagged together in token-budget batches.

Request handlers :meth:`Batcher.submit` the sentences of a request and await its future. The
model thread takes the oldest request, then more, oldest first, while the batch stays within
``max_batch_tokens``, waiting at most ``max_wait_ms`` for company, and only when other requests
are on their way (``expecting``), so a lone client never waits. It tags the whole batch with one
``predict`` call and hands every request the predictions of its own sentences. A request larger
than the budget is a batch by itself. A full queue refuses at once (:class:`QueueFull`, a 429);
a request whose caller gave up (timeout) is skipped if it hasn't started.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

Predict = Callable[[list[list[str]]], list[Any]]


class QueueFull(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("the server's queue is full")
        self.retry_after = retry_after


class NotAccepting(Exception):
    """The batcher is stopping (SIGTERM) or not started."""


@dataclass
class Outcome:
    predictions: list[Any]  # one per submitted sentence, in order
    queue_seconds: float
    inference_seconds: float


@dataclass
class Job:
    sentences: list[list[str]]
    tokens: int
    enqueued: float = field(default_factory=time.perf_counter)
    future: Future[Outcome] = field(default_factory=Future)


@dataclass
class BatchStats:
    requests: int
    tokens: int
    queue_seconds: list[float]
    inference_seconds: float


class Batcher:
    def __init__(
        self,
        predict: Predict,
        max_batch_tokens: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self.predict = predict
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: deque[Job] = deque()
        self._queued_tokens = 0
        self._expected = 0  # requests admitted by a handler, not yet answered
        self._condition = threading.Condition()
        self._stopping = False
        self._tokens_per_second = 5000.0  # updated from every batch; sizes Retry-After
        self._thread: threading.Thread | None = None

    # -- handler side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tagsure-model", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Mark a request as on its way (parsing, splitting), so batches wait for it."""
        with self._condition:
            self._expected += 1
        try:
            yield
        finally:
            with self._condition:
                self._expected -= 1

    def submit(self, sentences: Sequence[Sequence[str]]) -> Job:
        job = Job([list(s) for s in sentences], sum(map(len, sentences)))
        with self._condition:
            if self._stopping or self._thread is None:
                raise NotAccepting("the server is shutting down")
            if len(self._queue) >= self.max_queue:
                seconds = (self._queued_tokens + job.tokens) / self._tokens_per_second
                raise QueueFull(retry_after=max(1.0, seconds))
            self._queue.append(job)
            self._queued_tokens += job.tokens
            self._condition.notify()
        return job

    def depth(self) -> tuple[int, int]:
        """Requests and tokens waiting in the queue."""
        with self._condition:
            return len(self._queue), self._queued_tokens

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish the queued ones, then end the model thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- model thread ---------------------------------------------------------------------------

    def _take(self) -> list[Job] | None:
        """The next batch (None once stopping with nothing left)."""
        with self._condition:
            while not self._queue:
                if self._stopping:
                    return None
                self._condition.wait()
            batch = [self._pop()]
            tokens = batch[0].tokens
            deadline = time.perf_counter() + self.max_wait
            while tokens < self.max_batch_tokens:
                if self._queue:
                    if tokens + self._queue[0].tokens > self.max_batch_tokens:
                        break
                    batch.append(self._pop())
                    tokens += batch[-1].tokens
                    continue
                left = deadline - time.perf_counter()
                if left <= 0 or self._stopping or self._expected <= len(batch):
                    break
                self._condition.wait(left)
            return batch

    def _pop(self) -> Job:
        job = self._queue.popleft()
        self._queued_tokens -= job.tokens
        return job

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            # A caller that timed out cancelled its future; skip its work.
            jobs = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if jobs:
                self._tag(jobs)

    def _tag(self, jobs: list[Job]) -> None:
        started = time.perf_counter()
        sentences = [s for job in jobs for s in job.sentences]
        try:
            predictions = self.predict(sentences) if sentences else []
        except Exception as err:  # a bug, or an input the model can't take: fail these jobs only
            logger.exception("tagging a batch of %d requests failed", len(jobs))
            for job in jobs:
                job.future.set_exception(err)
            return
        seconds = time.perf_counter() - started
        tokens = sum(job.tokens for job in jobs)
        if tokens and seconds > 0:
            self._tokens_per_second = 0.8 * self._tokens_per_second + 0.2 * tokens / seconds
        cursor = 0
        for job in jobs:
            n = len(job.sentences)
            job.future.set_result(
                Outcome(predictions[cursor : cursor + n], started - job.enqueued, seconds)
            )
            cursor += n
        if self.on_batch is not None:
            self.on_batch(
                BatchStats(len(jobs), tokens, [started - job.enqueued for job in jobs], seconds)
            )
