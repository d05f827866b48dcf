"""What training reports: a record per epoch and its line, the JSONL metrics log, the curve PNG."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagsure.storage.atomic import atomic_write_bytes


@dataclass
class EpochRecord:
    epoch: int
    minutes: float  # wall time since training started, evaluation included
    train_loss: float  # mean per sentence, over the sentences the epoch ran
    learning_rate: float
    train_tokens_per_s: float  # tokens / seconds spent in training steps only
    dev: dict[str, float] = field(default_factory=dict)  # precision, recall, f1, accuracy
    best: bool = False
    partial: bool = False  # the time limit stopped it before its last batch


def format_record(record: EpochRecord) -> str:
    dev = record.dev
    text = (
        f"loss {record.train_loss:.3f}  lr {record.learning_rate:.2g}  "
        f"{record.train_tokens_per_s:,.0f} tok/s  {record.minutes:.1f} min"
    )
    if dev:
        text += (
            f"  dev P {100 * dev['precision']:.2f} R {100 * dev['recall']:.2f} "
            f"F1 {100 * dev['f1']:.2f}" + ("  *" if record.best else "")
        )
    return text + ("  (partial epoch)" if record.partial else "")


@dataclass
class LMEpochRecord:
    epoch: int
    minutes: float
    train_bpc: float
    holdout_bpc: float
    chars_per_s: float
    best: bool = False
    partial: bool = False  # the time limit stopped it before its last step


def format_lm_record(record: LMEpochRecord) -> str:
    return (
        f"train {record.train_bpc:.3f} bpc  held-out {record.holdout_bpc:.3f} bpc  "
        f"{record.chars_per_s:,.0f} chars/s  {record.minutes:.1f} min"
        + ("  *" if record.best else "")
        + ("  (partial epoch)" if record.partial else "")
    )


class MetricsLog:
    """One JSON object per epoch, flushed as it is written so a crash keeps the log so far."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def plot_curve(history: Sequence[EpochRecord], path: str | Path) -> None:
    """Dev F1 and training loss against minutes, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    from matplotlib import pyplot as plt

    minutes = [r.minutes for r in history]
    fig, loss_axis = plt.subplots(figsize=(7, 4), dpi=100)
    loss_axis.plot(minutes, [r.train_loss for r in history], color="tab:gray", label="train loss")
    partial = [r for r in history if r.partial]  # cut by the time limit: an open circle
    loss_axis.scatter(
        [r.minutes for r in partial],
        [r.train_loss for r in partial],
        facecolors="none",
        edgecolors="tab:gray",
        label="partial epoch",
    )
    loss_axis.set_xlabel("minutes")
    loss_axis.set_ylabel("train loss per sentence")
    if any(r.dev for r in history):
        f1_axis = loss_axis.twinx()
        f1_axis.plot(
            minutes,
            [100 * r.dev.get("f1", 0.0) for r in history],
            marker="o",
            color="tab:blue",
            label="dev F1",
        )
        f1_axis.set_ylabel("dev F1 (%)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
