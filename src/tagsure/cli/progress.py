"""A live progress bar for training (loss, tokens/s, ETA) and a line per epoch."""

from __future__ import annotations

import time

from tqdm import tqdm

from tagsure.training.trainer import EpochRecord, format_record


class TqdmProgress:
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
        self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
        self.bar.update()

    def epoch_end(self, record: EpochRecord) -> None:
        if self.bar is not None:
            self.bar.close()
        tqdm.write(f"epoch {record.epoch:3d}  {format_record(record)}")
