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
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tagsure.data.conll import load_corpus
from tagsure.data.devices import resolve_device
from tagsure.errors import InputError
from tagsure.layers.char_lm import CharLanguageModel, CharLMConfig, build_dictionary
from tagsure.storage.lm_file import save_lm
from tagsure.training.config import LMTrainConfig
from tagsure.training.distributed import SINGLE, World, join, rank_device
from tagsure.training.log import LMEpochRecord, format_lm_record
from tagsure.training.resume_state import ResumeState, load_resume_state
from tagsure.training.run import LoggingProgress, Run, RunProgress, Step

logger = logging.getLogger(__name__)


def read_training_text(config: LMTrainConfig) -> str:
    """All training text, files joined by line breaks; a CoNLL file gives a sentence per line."""
    parts = []
    for path in config.text:
        try:
            parts.append(Path(path).read_text(encoding="utf-8"))
        except UnicodeDecodeError as err:
            data = Path(path).read_bytes()
            line = data[: err.start].count(b"\n") + 1
            raise InputError(f"{path}:{line}: not UTF-8 text ({err.reason})") from None
    for path in config.conll:
        corpus = load_corpus(path)
        parts.append("\n".join(" ".join(s.tokens) for s in corpus.sentences) + "\n")
    if not parts:
        raise InputError("no training text: pass --text and/or --conll files")
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
    progress: RunProgress[LMEpochRecord] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    device: str | None = None,
) -> list[LMEpochRecord]:
    """Train an LM as ``config`` says; the best model by held-out bits per char goes to ``out``.
    ``device`` (cpu, cuda, cuda:N, mps, auto) is where it trains.

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
    lm, world = CharLanguageModel(lm_config), join(where=str(checkpoint_dir or ""))
    run = _LMRun(config, lm, text, out, checkpoint_dir, checkpoint_every, world, device)
    run.loop(progress or LoggingProgress(format_lm_record, logger))
    return run.history()


def resume_lm(
    checkpoint_dir: str | Path,
    progress: RunProgress[LMEpochRecord] | None = None,
    epochs: int | None = None,
    out: str | Path | None = None,
    device: str | None = None,
) -> list[LMEpochRecord]:
    """Continue the LM training run whose checkpoint is in ``checkpoint_dir`` (on ``device``).

    With ``epochs``, the run goes on to that many epochs in all (to extend a finished run);
    with ``out``, the LM is written there instead of where the first run wrote it.
    """
    checkpoint = load_resume_state(checkpoint_dir)
    document = checkpoint.document
    config = LMTrainConfig(**document["config"])
    if epochs is not None:
        config.epochs = epochs
    lm = CharLanguageModel(CharLMConfig.from_dict(document["lm_config"]))
    lm.load_state_dict(checkpoint.model, strict=True)
    text = read_training_text(config)
    world = join(where=str(checkpoint_dir))
    world.check_resume(document.get("world_size", 1), config.batch_size, checkpoint_dir, "streams")
    every = document["checkpoint_every"]
    target = document["out"] if out is None else str(out)
    run = _LMRun(config, lm, text, target, checkpoint_dir, every, world, device)
    run.restore(checkpoint)
    run.loop(progress or LoggingProgress(format_lm_record, logger))
    return run.history()


class _LMRun(Run[int, LMEpochRecord]):
    """An LM's training run: a batch is a step's index in the streams; the score held-out bpc."""

    record_type = LMEpochRecord
    higher_is_better = False
    first_best = math.inf
    state_names = {  # the LM checkpoint's names; it has no early stopping
        "batches_done": "step_in_epoch",
        "best": "best_bpc",
        "best_epoch": None,
        "since_best": None,
        "train_tokens": "train_chars",
        "epoch_tokens": "epoch_chars",
    }

    def __init__(
        self,
        config: LMTrainConfig,
        lm: CharLanguageModel,
        text: str,
        out: str | Path,
        checkpoint_dir: str | Path | None,
        checkpoint_every: int,
        world: World = SINGLE,
        device: str | None = None,
    ) -> None:
        self.config, self.lm, self.out = config, lm, Path(out)
        self.device = rank_device(resolve_device(device), world)  # the streams stay on the CPU
        lm.to(self.device)
        self.world, self.writes = world, world.writes
        train_text, holdout_text = split_holdout(text, config.holdout)
        # batch_size streams per process, of batch_size x processes cut from the text (B, N)
        streams = _streams(lm.encode_text(train_text), config.batch_size * world.size)
        self.streams = streams[world.rows(streams.size(0))]
        self.holdout = _streams(lm.encode_text(holdout_text), min(config.batch_size, 16))
        optimizer = torch.optim.AdamW(lm.parameters(), lr=config.learning_rate, fused=True)
        super().__init__(
            lm, optimizer, config.epochs, config.max_minutes, checkpoint_dir, checkpoint_every
        )

    def checkpoint_document(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "lm_config": self.lm.config.to_dict(),
            "out": str(self.out),
            "checkpoint_every": self.checkpoint_every,
            "world_size": self.world.size,
        }

    def epoch_batches(self) -> range:
        return range((self.streams.size(1) - 1) // self.config.sequence_length)

    def step(self, index: int) -> Step:
        """One optimizer step on the streams' ``index``-th window; its loss is in bits per char."""
        length, world = self.config.sequence_length, self.world
        world.seed_step(self.config.seed, self.state.steps)
        window = self.streams[:, index * length : (index + 1) * length + 1].to(self.device)
        carried = (self.carried["h"], self.carried["c"]) if self.carried else None
        hidden, (h, c) = self.lm(window[:, :-1], carried)  # (B, S, H)
        self.carried = {"h": h.detach(), "c": c.detach()}
        logits = self.lm.logits(hidden)  # (B, S, V)
        loss = F.cross_entropy(logits.flatten(0, 1), window[:, 1:].flatten())
        self.optimizer.zero_grad(set_to_none=True)
        (loss / world.size if world.parallel else loss).backward()  # the mean of all streams
        nats, chars = loss.item(), window.numel() - window.size(0)
        if world.parallel:
            (summed,) = world.sum_gradients(list(self.lm.parameters()), nats)
            nats, chars = summed / world.size, chars * world.size
        torch.nn.utils.clip_grad_norm_(self.lm.parameters(), self.config.clip_grad_norm)
        self.optimizer.step()
        return Step(nats / math.log(2), nats * chars, chars)

    def save(self) -> None:
        """The checkpoint holds every rank's carried state, (layers, all streams, H)."""
        own = self.carried
        self.carried = {k: self.world.gather_rows(v, dim=1) for k, v in own.items()}
        super().save()
        self.carried = own
        self.world.barrier("waiting for rank 0 to write the checkpoint")

    def restore(self, checkpoint: ResumeState) -> None:
        super().restore(checkpoint)
        self.carried = {k: v.to(self.device) for k, v in self.carried.items()}
        if self.world.parallel:  # this rank's streams of the carried state
            self.carried = {
                k: v[:, self.world.rows(v.size(1))].clone() for k, v in self.carried.items()
            }

    def out_of_time(self) -> bool:  # every rank stops at the same step
        return bool(self.max_minutes) and self.world.any(super().out_of_time())

    @torch.no_grad()
    def holdout_bpc(self) -> float:
        self.lm.eval()
        total, count, carried = 0.0, 0, None
        length = self.config.sequence_length
        for start in range(0, self.holdout.size(1) - 1, length):
            window = self.holdout[:, start : start + length + 1].to(self.device)  # (B, S + 1)
            hidden, carried = self.lm(window[:, :-1], carried)
            logits = self.lm.logits(hidden)
            targets = window[:, 1:].flatten()
            total += float(F.cross_entropy(logits.flatten(0, 1), targets, reduction="sum"))
            count += targets.numel()
        return total / max(count, 1) / math.log(2)

    def close_epoch(self) -> tuple[LMEpochRecord, float | None]:
        state = self.state
        self.carried = {}  # the next epoch reads the streams from their start
        record = LMEpochRecord(
            epoch=state.epoch,
            minutes=0.0,
            train_bpc=state.epoch_loss / max(state.epoch_tokens, 1) / math.log(2),
            holdout_bpc=self.holdout_bpc(),
            chars_per_s=state.epoch_tokens / max(state.epoch_seconds, 1e-9),
        )
        return record, record.holdout_bpc

    def on_best(self, record: LMEpochRecord) -> None:
        """The best LM so far goes to ``out``, with what it was trained on."""
        self.lm.config.training = {
            "sources": [Path(s).name for s in [*self.config.text, *self.config.conll]],
            "epochs": self.state.epoch,
            "holdout_bpc": record.holdout_bpc,
            "train_chars_seen": self.state.train_tokens,
            "train_hours": self.state.train_seconds / 3600,
        }
        if self.writes:
            save_lm(self.lm, self.out)
        self.world.barrier("waiting for rank 0 to write the LM")


def _streams(ids: np.ndarray, count: int) -> torch.Tensor:
    """``ids`` cut into ``count`` contiguous streams of equal length: (count, len // count)."""
    width = len(ids) // count
    if width < 2:
        raise InputError(
            f"{len(ids)} characters are too few for {count} streams; give more text "
            "or a smaller batch size"
        )
    return torch.from_numpy(ids[: width * count].reshape(count, width).copy())
