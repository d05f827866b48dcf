"""Live progress bars: training (loss, tokens/s, ETA, a line per epoch) and prediction (words/s)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from tagsure.training.lm_trainer import LMEpochRecord, format_lm_record
from tagsure.training.trainer import EpochRecord, format_record


class TqdmProgress:
    loss_name, rate_name = "loss", "tok_s"
    format: Callable[[Any], str] = staticmethod(format_record)

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.tokens = 0
        self.started = 0.0

    def epoch_start(self, epoch: int, batches: int) -> None:
        self.bar = tqdm(
            total=batches,
            desc=f"epoch {epoch}",
            unit="batch",
            leave=False,
            disable=None,
            dynamic_ncols=True,
        )
        self.tokens, self.started = 0, time.perf_counter()

    def batch_end(self, loss: float, tokens: int) -> None:
        assert self.bar is not None
        self.tokens += tokens
        rate = self.tokens / max(time.perf_counter() - self.started, 1e-9)
        self.bar.set_postfix({self.loss_name: f"{loss:.3f}", self.rate_name: f"{rate:,.0f}"})
        self.bar.update()

    def epoch_end(self, record: EpochRecord | LMEpochRecord) -> None:
        if self.bar is not None:
            self.bar.close()
        tqdm.write(f"epoch {record.epoch:3d}  {self.format(record)}")


class TqdmLMProgress(TqdmProgress):
    loss_name, rate_name = "bpc", "chars_s"
    format: Callable[[Any], str] = staticmethod(format_lm_record)


class PredictProgress:
    """Rows and words/s of a streaming predict on stderr; ``enabled`` None: only on a TTY."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.bar = tqdm(
            unit=" words", unit_scale=True, disable=None if enabled is None else not enabled
        )
        self.rows = 0

    def update(self, rows: int, words: int) -> None:
        self.rows += rows
        self.bar.set_postfix_str(f"{self.rows:,} rows", refresh=False)
        self.bar.update(words)

    def __enter__(self) -> PredictProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
