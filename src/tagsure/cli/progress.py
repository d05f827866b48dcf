"""Live progress bars: training (from :mod:`tagsure.training.progress`) and prediction (words/s)."""

from __future__ import annotations

from tqdm import tqdm

from tagsure.training.progress import TqdmLMProgress, TqdmProgress

__all__ = ["PredictProgress", "TqdmLMProgress", "TqdmProgress"]


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
