"""Training progress on the console: a live bar per epoch (loss, tokens/s), then its line.

What :func:`tagsure.train` shows unless told ``verbose=False``, and what ``tagsure train`` shows.
The bar is drawn only on a terminal; the epoch lines are always written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from tagsure.training.log import EpochRecord, LMEpochRecord, format_lm_record, format_record


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
