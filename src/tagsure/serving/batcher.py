"""One queue and one model thread: concurrent requests tagged together in token-budget batches.

Request handlers :meth:`Batcher.submit` the sentences of a request and await its future. The
model thread takes the oldest request, then more, oldest first, while the batch stays within
``max_batch_tokens``, waiting at most ``max_wait_ms`` for company, and only when other requests
are on their way (``admitted``), so a lone client never waits. It tags the whole batch with one
``predict`` call and hands every request the predictions of its own sentences. A request larger
than the budget is a batch by itself. A request whose caller gave up (timeout) is skipped if it
hasn't started.

Admission is decided before any work is spent on a request: :meth:`Batcher.admitted` refuses at
once (:class:`QueueFull`, a 429) when ``max_queue`` requests are already on their way, or when
the tokens ahead of it (queued, running, and reserved by requests still being split) would take
the model longer than ``max_queue_seconds`` at the rate it has been measured to run (its own
size doesn't count: an idle server takes any request the payload limit lets in), or when the
oldest request still unanswered has already waited that long (the model's measured speed
overstates it when the cores are contended). So an
overloaded server answers 429 in microseconds instead of queueing work it can't finish before
the timeout (a 504), and the requests it does admit are answered in bounded time.
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
    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(reason)
        self.retry_after, self.reason = retry_after, reason


@dataclass
class Ticket:
    """An admitted request: the tokens it reserved until its sentences are queued."""

    reserved: int
    submitted: bool = False


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
        max_queue_seconds: float = float("inf"),
        tokens_per_second: float | None = None,
        predict_mixed: Predict | None = None,
    ) -> None:
        self.predict = predict
        # A batch of several requests is tagged with this (sentences grouped by length, say);
        # a request alone goes to ``predict`` exactly as ``Tagger.predict`` would see it.
        self.predict_mixed = predict_mixed or predict
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.max_queue_seconds = max_queue_seconds
        self.on_batch = on_batch
        self._queue: deque[Job] = deque()
        self._queued_tokens = 0
        self._running_tokens = 0
        self._running_jobs = 0
        self._reserved_tokens = 0  # estimates of admitted requests not yet submitted
        self._expected = 0  # requests admitted by a handler, not yet answered
        self._arriving = 0  # of those, not yet submitted (still being parsed and split)
        self._open: dict[int, float] = {}  # admitted, unanswered requests: id -> admission time
        self._condition = threading.Condition()
        self._stopping = False
        # Measured on every batch but the first (it pays for lazy set-up), as a moving average;
        # until then admission is by count only.
        self._tokens_per_second = tokens_per_second
        self._batches = 0
        self._last_end = 0.0  # when the last batch ended
        self._thread: threading.Thread | None = None

    # -- handler side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tagsure-model", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def admitted(self, tokens: int = 0) -> Iterator[Ticket]:
        """Admit a request of about ``tokens`` tokens, or refuse it (:class:`QueueFull`,
        :class:`NotAccepting`) before any work is spent on it. While inside, the request is on
        its way (parsing, splitting): batches wait for it, and its tokens count as queued."""
        with self._condition:
            if self._stopping or self._thread is None:
                raise NotAccepting("the server is shutting down")
            # The estimate from the model's speed, or what the oldest request still unanswered
            # has already waited, if longer: under contention (GIL, cores) the model runs
            # slower than its measured speed, and the backlog shows it first.
            now = time.perf_counter()
            oldest = now - min(self._open.values()) if self._open else 0.0
            wait = max(self._wait_seconds(), oldest)
            if self._expected - self._running_jobs >= self.max_queue:
                reason = f"{self.max_queue} requests queued (--max-queue)"
                raise QueueFull(max(1.0, wait), reason)
            if wait > self.max_queue_seconds:
                reason = (
                    f"about {wait:.1f} s of work queued, over the {self.max_queue_seconds:g} s "
                    "limit (--max-queue-seconds)"
                )
                raise QueueFull(max(1.0, wait - self.max_queue_seconds), reason)
            self._expected += 1
            self._arriving += 1
            self._reserved_tokens += tokens
            ticket = Ticket(tokens)
            self._open[id(ticket)] = now
        try:
            yield ticket
        finally:
            with self._condition:
                del self._open[id(ticket)]
                self._expected -= 1
                self._reserved_tokens -= ticket.reserved
                if not ticket.submitted:
                    self._arriving -= 1
                    self._condition.notify()  # a batch waiting for it need wait no longer

    def _wait_seconds(self) -> float:
        """How long the model needs for the tokens ahead of a new request."""
        if self._tokens_per_second is None:
            return 0.0
        ahead = self._queued_tokens + self._running_tokens + self._reserved_tokens
        return ahead / self._tokens_per_second

    def submit(self, sentences: Sequence[Sequence[str]], ticket: Ticket | None = None) -> Job:
        """Queue an admitted request's sentences (inside :meth:`admitted`, with its ticket)."""
        job = Job([list(s) for s in sentences], sum(map(len, sentences)))
        with self._condition:
            if self._stopping or self._thread is None:
                raise NotAccepting("the server is shutting down")
            if ticket is not None and not ticket.submitted:  # real tokens replace the estimate
                self._reserved_tokens -= ticket.reserved
                self._arriving -= 1
                ticket.reserved, ticket.submitted = 0, True
            self._queue.append(job)
            self._queued_tokens += job.tokens
            self._condition.notify()
        return job

    def tokens_per_second(self) -> float | None:
        return self._tokens_per_second

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
                # Wait only for requests being split right now: a lone client never waits.
                if left <= 0 or self._stopping or self._arriving == 0:
                    break
                self._condition.wait(left)
            return batch

    def _done(self, tokens: int, arrived: float) -> None:
        """The running batch is over: nothing runs now, and its speed updates the estimate.

        The speed is the tokens over the wall time the batch held the model, from the end of
        the previous batch (or from its first request's arrival, if the model was idle then):
        the gaps between batches count, so under contention for the cores and the GIL the
        estimate falls with the speed the queue really drains at, not only the forward's."""
        with self._condition:
            now = time.perf_counter()
            self._running_tokens = self._running_jobs = 0
            self._batches += 1
            seconds = now - max(self._last_end, arrived)
            self._last_end = now
            if tokens and seconds > 0 and self._batches > 1:
                rate, measured = self._tokens_per_second, tokens / seconds
                self._tokens_per_second = measured if rate is None else 0.8 * rate + 0.2 * measured

    def _pop(self) -> Job:
        job = self._queue.popleft()
        self._queued_tokens -= job.tokens
        return job

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            # A caller that timed out cancelled its future; skip its work.
            jobs = [job for job in batch if job.future.set_running_or_notify_cancel()]
            with self._condition:
                self._running_tokens = sum(job.tokens for job in jobs)
                self._running_jobs = len(jobs)
            if jobs:
                self._tag(jobs)

    def _tag(self, jobs: list[Job]) -> None:
        started = time.perf_counter()
        sentences = [s for job in jobs for s in job.sentences]
        try:
            run = self.predict if len(jobs) == 1 else self.predict_mixed
            predictions = run(sentences) if sentences else []
        except Exception as err:  # a bug, or an input the model can't take: fail these jobs only
            logger.exception("tagging a batch of %d requests failed", len(jobs))
            self._done(0, started)
            for job in jobs:
                job.future.set_exception(err)
            return
        seconds = time.perf_counter() - started
        tokens = sum(job.tokens for job in jobs)
        # before any answer: a caller's next request sees it done
        self._done(tokens, min(job.enqueued for job in jobs))
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
