"""Train a character language model with truncated back-propagation through time.

The training text is cut into ``batch_size`` contiguous streams that are read side by side,
``sequence_length`` characters per step; the LSTM state is carried from one step to the next
(detached), so the model sees long contexts while gradients stay short. Each epoch ends with
bits per character on held-out text (the last ``holdout`` fraction of the text, cut at a line
break), and the best model so far is written to ``out``. Checkpoints hold the weights, optimizer,
RNG, the carried state and the position, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from tagsure.data.conll import load_corpus
from tagsure.encoders.char_lm import CharLanguageModel, CharLMConfig, build_dictionary
from tagsure.storage.lm_file import save_lm
from tagsure.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tagsure.training.trainer import LoggingProgress

logger = logging.getLogger(__name__)


@dataclass
class LMTrainConfig:
    text: list[str] = field(default_factory=list)  # raw text files, read as they are
    conll: list[str] = field(default_factory=list)  # tagged corpora: a sentence per line
    direction: str = "forward"
    hidden_size: int = 512
    embedding_dim: int = 100
    layers: int = 1
    dropout: float = 0.1
    max_chars: int = 300  # dictionary size; rarer characters become "unknown"
    sequence_length: int = 250  # characters per step (the truncation of back-propagation)
    batch_size: int = 64  # text streams read in parallel
    learning_rate: float = 2e-3
    clip_grad_norm: float = 1.0
    epochs: int = 10
    max_minutes: float | None = None
    holdout: float = 0.01
    seed: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LMEpochRecord:
    epoch: int
    minutes: float
    train_bpc: float
    holdout_bpc: float
    chars_per_s: float
    best: bool = False


@dataclass
class LMLoopState:
    epoch: int = 1
    step_in_epoch: int = 0
    steps: int = 0
    best_bpc: float = math.inf
    train_seconds: float = 0.0
    train_chars: int = 0
    elapsed_seconds: float = 0.0
    epoch_loss: float = 0.0  # summed cross-entropy (nats) over the epoch's characters
    epoch_chars: int = 0
    epoch_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


class LMProgress(Protocol):
    """The trainer's :class:`~tagsure.training.trainer.Progress`, with LM epoch records."""

    def epoch_start(self, epoch: int, batches: int) -> None: ...

    def batch_end(self, loss: float, tokens: int) -> None: ...

    def epoch_end(self, record: LMEpochRecord) -> None: ...


class LoggingLMProgress(LoggingProgress):
    def epoch_end(self, record: LMEpochRecord) -> None:  # type: ignore[override]
        logger.info("epoch %d: %s", record.epoch, format_lm_record(record))


def format_lm_record(record: LMEpochRecord) -> str:
    return (
        f"train {record.train_bpc:.3f} bpc  held-out {record.holdout_bpc:.3f} bpc  "
        f"{record.chars_per_s:,.0f} chars/s  {record.minutes:.1f} min"
        + ("  *" if record.best else "")
    )


def read_training_text(config: LMTrainConfig) -> str:
    """All training text, files joined by line breaks; a CoNLL file gives a sentence per line."""
    parts = []
    for path in config.text:
        try:
            parts.append(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            data = Path(path).read_bytes()
            line = data[: err.start].count(b"\n") + 1
            raise ValueError(f"{path}:{line}: not UTF-8 text ({err.reason})") from None
    for path in config.conll:
        corpus = load_corpus(path)
        parts.append("\n".join(" ".join(s.tokens) for s in corpus.sentences) + "\n")
    if not parts:
        raise ValueError("no training text: pass --text and/or --conll files")
    return "\n".join(parts)


def split_holdout(text: str, fraction: float) -> tuple[str, str]:
    """(training text, held-out text): the held-out part is the end, cut at a line break."""
    cut = int(len(text) * (1 - fraction))
    line_break = text.find("\n", cut)
    cut = line_break + 1 if line_break != -1 else cut
    return text[:cut], text[cut:]


def train_lm(
    config: LMTrainConfig,
    out: str | Path,
    progress: LMProgress | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
) -> list[LMEpochRecord]:
    """Train an LM as ``config`` says; the best model by held-out bits per char goes to ``out``.

    Example:
        >>> from tagsure.training.lm_trainer import LMTrainConfig, train_lm   # doctest: +SKIP
        >>> train_lm(LMTrainConfig(text=["wiki.txt"], direction="backward"),
        ...          out="lm-backward.tagsure-lm")                           # doctest: +SKIP
    """
    torch.manual_seed(config.seed)
    text = read_training_text(config)
    lm_config = CharLMConfig(
        chars=build_dictionary(Counter(text), config.max_chars),
        direction=config.direction,
        embedding_dim=config.embedding_dim,
        hidden_size=config.hidden_size,
        layers=config.layers,
        dropout=config.dropout,
    )
    run = _LMRun(config, CharLanguageModel(lm_config), text, out, checkpoint_dir, checkpoint_every)
    return run.loop(progress or LoggingLMProgress())


def resume_lm(
    checkpoint_dir: str | Path, progress: LMProgress | None = None, epochs: int | None = None
) -> list[LMEpochRecord]:
    """Continue the LM training run whose checkpoint is in ``checkpoint_dir``.

    With ``epochs``, the run goes on to that many epochs in all (to extend a finished run).
    """
    checkpoint = load_checkpoint(checkpoint_dir)
    document = checkpoint.document
    config = LMTrainConfig(**document["config"])
    if epochs is not None:
        config.epochs = epochs
    lm = CharLanguageModel(CharLMConfig.from_dict(document["lm_config"]))
    lm.load_state_dict(checkpoint.model, strict=True)
    text = read_training_text(config)
    run = _LMRun(config, lm, text, document["out"], checkpoint_dir, document["checkpoint_every"])
    run.restore(checkpoint)
    return run.loop(progress or LoggingLMProgress())


class _LMRun:
    def __init__(
        self,
        config: LMTrainConfig,
        lm: CharLanguageModel,
        text: str,
        out: str | Path,
        checkpoint_dir: str | Path | None,
        checkpoint_every: int,
    ) -> None:
        self.config, self.lm, self.out = config, lm, Path(out)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.checkpoint_every = checkpoint_every
        train_text, holdout_text = split_holdout(text, config.holdout)
        self.streams = _streams(lm.encode_text(train_text), config.batch_size)  # (B, N)
        self.holdout = _streams(lm.encode_text(holdout_text), min(config.batch_size, 16))
        self.sources = [*config.text, *config.conll]
        self.optimizer = torch.optim.AdamW(lm.parameters(), lr=config.learning_rate, fused=True)
        self.state = LMLoopState()
        self.carried: tuple[torch.Tensor, torch.Tensor] | None = None
        self.best = {k: v.detach().clone() for k, v in lm.state_dict().items()}

    @property
    def steps_per_epoch(self) -> int:
        return (self.streams.size(1) - 1) // self.config.sequence_length

    def restore(self, checkpoint: Checkpoint) -> None:
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.best = checkpoint.best_model
        self.state = LMLoopState(**checkpoint.document["state"])
        torch.set_rng_state(checkpoint.torch_rng)
        if "h" in checkpoint.extra:
            self.carried = (checkpoint.extra["h"], checkpoint.extra["c"])

    def save_checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        document = {
            "config": self.config.to_dict(),
            "lm_config": self.lm.config.to_dict(),
            "out": str(self.out),
            "checkpoint_every": self.checkpoint_every,
            "state": asdict(self.state),
        }
        extra = {"h": self.carried[0], "c": self.carried[1]} if self.carried else {}
        model = {k: v.detach().clone() for k, v in self.lm.state_dict().items()}
        save_checkpoint(
            self.checkpoint_dir,
            Checkpoint(
                document,
                model,
                self.best,
                self.optimizer.state_dict(),
                torch.get_rng_state(),
                extra,
            ),
        )

    def loop(self, progress: LMProgress) -> list[LMEpochRecord]:
        config, state = self.config, self.state
        started = time.perf_counter() - state.elapsed_seconds
        deadline = started + config.max_minutes * 60 if config.max_minutes else None
        length = config.sequence_length
        while state.epoch <= config.epochs:
            progress.epoch_start(state.epoch, self.steps_per_epoch)
            self.lm.train()
            out_of_time = False
            for step in range(state.step_in_epoch, self.steps_per_epoch):
                window = self.streams[:, step * length : (step + 1) * length + 1]  # (B, S + 1)
                loss, seconds = self.step(window)
                chars = window.numel() - window.size(0)
                state.epoch_loss += loss * chars
                state.epoch_chars += chars
                state.epoch_seconds += seconds
                state.step_in_epoch = step + 1
                state.steps += 1
                progress.batch_end(loss / math.log(2), chars)
                if self.checkpoint_every and state.steps % self.checkpoint_every == 0:
                    state.elapsed_seconds = time.perf_counter() - started
                    self.save_checkpoint()
                if deadline is not None and time.perf_counter() > deadline:
                    out_of_time = True
                    break
            progress.epoch_end(self.end_epoch(started))
            if out_of_time:
                break
            state.elapsed_seconds = time.perf_counter() - started
            self.save_checkpoint()
        self.lm.load_state_dict(self.best)
        return [LMEpochRecord(**r) for r in state.history]

    def step(self, window: torch.Tensor) -> tuple[float, float]:
        """One optimizer step on (B, S + 1) characters: (mean loss in nats, seconds)."""
        started = time.perf_counter()
        hidden, state = self.lm(window[:, :-1], self.carried)  # (B, S, H)
        self.carried = (state[0].detach(), state[1].detach())
        logits = self.lm.logits(hidden)  # (B, S, V)
        loss = F.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.lm.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        return loss.item(), time.perf_counter() - started

    @torch.no_grad()
    def holdout_bpc(self) -> float:
        self.lm.eval()
        total, count, carried = 0.0, 0, None
        length = self.config.sequence_length
        for start in range(0, self.holdout.size(1) - 1, length):
            window = self.holdout[:, start : start + length + 1]
            hidden, carried = self.lm(window[:, :-1], carried)
            logits = self.lm.logits(hidden)
            targets = window[:, 1:].flatten()
            total += float(F.cross_entropy(logits.flatten(0, 1), targets, reduction="sum"))
            count += targets.numel()
        return total / max(count, 1) / math.log(2)

    def end_epoch(self, started: float) -> LMEpochRecord:
        state = self.state
        state.train_seconds += state.epoch_seconds
        state.train_chars += state.epoch_chars
        record = LMEpochRecord(
            epoch=state.epoch,
            minutes=0.0,
            train_bpc=state.epoch_loss / max(state.epoch_chars, 1) / math.log(2),
            holdout_bpc=self.holdout_bpc(),
            chars_per_s=state.epoch_chars / max(state.epoch_seconds, 1e-9),
        )
        record.best = record.holdout_bpc < state.best_bpc
        record.minutes = (time.perf_counter() - started) / 60
        state.history.append(asdict(record))
        if record.best:
            state.best_bpc = record.holdout_bpc
            self.best = {k: v.detach().clone() for k, v in self.lm.state_dict().items()}
            self.lm.config.training = {
                "sources": [Path(s).name for s in self.sources],
                "epochs": state.epoch,
                "holdout_bpc": record.holdout_bpc,
                "train_chars_seen": state.train_chars,
                "train_hours": state.train_seconds / 3600,
            }
            save_lm(self.lm, self.out)
        state.epoch += 1
        state.step_in_epoch = 0
        state.epoch_loss, state.epoch_chars, state.epoch_seconds = 0.0, 0, 0.0
        self.carried = None  # each epoch reads the streams from their start
        return record


def _streams(ids: np.ndarray, count: int) -> torch.Tensor:
    """``ids`` cut into ``count`` contiguous streams of equal length: (count, len // count)."""
    width = len(ids) // count
    if width < 2:
        raise ValueError(
            f"{len(ids)} characters are too few for {count} streams; give more text "
            "or a smaller batch size"
        )
    return torch.from_numpy(ids[: width * count].reshape(count, width).copy())
