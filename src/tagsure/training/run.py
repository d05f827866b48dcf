"""The loop every training run shares: epochs, deadline, checkpoints, best snapshot, progress.

Resume is exact: a checkpoint holds all that decides the next step and a trainer's batch order
depends only on the seed and the epoch, so a resumed run replays the epoch and skips the batches
done. Data-parallel training plugs in here: shard ``epoch_batches`` by rank, set ``writes``
false on all ranks but the first, and make ``out_of_time`` agree across ranks.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from logging import Logger
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import torch

from tagsure.training.log import MetricsLog
from tagsure.training.resume_state import ResumeState, save_resume_state


class EpochRecordLike(Protocol):  # a dataclass, logged as JSON
    __dataclass_fields__: ClassVar[dict[str, Any]]
    epoch: int
    minutes: float
    best: bool
    partial: bool  # stopped by the deadline before its last batch


Batch = TypeVar("Batch")
Record = TypeVar("Record", bound=EpochRecordLike)
Record_contra = TypeVar("Record_contra", contravariant=True)


class RunProgress(Protocol[Record_contra]):
    """What a run reports while it goes; the CLI draws it, the library only logs."""

    def epoch_start(self, epoch: int, batches: int) -> None: ...
    def batch_end(self, loss: float, tokens: int) -> None: ...
    def epoch_end(self, record: Record_contra) -> None: ...


@dataclass
class LoggingProgress(Generic[Record]):
    """A log line per epoch, ``describe(record)``, on the trainer's logger."""

    describe: Callable[[Record], str]
    logger: Logger

    def epoch_start(self, epoch: int, batches: int) -> None: ...
    def batch_end(self, loss: float, tokens: int) -> None: ...
    def epoch_end(self, record: Record) -> None:
        self.logger.info("epoch %d: %s", record.epoch, self.describe(record))


class Step(NamedTuple):
    loss: float  # what progress shows for the step
    total: float  # what the epoch's loss sums: the step's mean loss times what it is a mean over
    tokens: int  # tokens (an LM's: characters) the step trained on


@dataclass
class RunState:
    """The loop's counters; checkpointed, under each trainer's names (:attr:`Run.state_names`)."""

    epoch: int = 1
    batches_done: int = 0  # in the current epoch
    steps: int = 0
    best: float = -1.0  # the best score so far; a run starts it at its worst (Run.first_best)
    best_epoch: int = 0
    since_best: int = 0
    train_seconds: float = 0.0  # in training steps only
    train_tokens: int = 0
    elapsed_seconds: float = 0.0  # wall time, summed over sessions
    epoch_loss: float = 0.0  # the sum of the epoch's Step.total
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)  # the epoch records so far


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Run(ABC, Generic[Batch, Record]):
    """One training run: its counters, best weights, checkpoints and loop (see the module)."""

    record_type: type[Record]  # the trainer's epoch record, rebuilt from the history
    higher_is_better: ClassVar[bool] = True  # of the score close_epoch returns
    first_best: ClassVar[float] = -1.0
    # The checkpoint's name of a RunState field where it differs from the field's; None: the
    # field is not checkpointed. The file's names and order never change, so old runs resume.
    state_names: ClassVar[Mapping[str, str | None]] = {}
    writes = True  # false on all ranks but one of a data-parallel run: one process writes files

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        epochs: int,
        max_minutes: float | None,
        checkpoint_dir: str | Path | None,
        checkpoint_every: int,
        log_path: Path | None = None,
    ) -> None:
        self.model, self.optimizer = model, optimizer
        self.epochs, self.max_minutes = epochs, max_minutes
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.checkpoint_every = checkpoint_every  # optimizer steps; 0: at epoch ends only
        self.state = RunState(best=self.first_best)
        self.best_model = snapshot(model)
        self.carried: dict[str, torch.Tensor] = {}  # tensors a step leaves to the next one
        self.log = MetricsLog(log_path) if log_path and self.writes else None
        self.started = time.perf_counter()  # minus the time of earlier sessions, once looping

    # What a trainer supplies: its batches (the same on every call for an epoch), one optimizer
    # step, the closed epoch's record and held-out score (None: none, each epoch is the best),
    # and what its checkpoint holds besides the counters, to rebuild the run. Optional hooks: a
    # new best; between epochs (annealing), a reason to stop.
    @abstractmethod
    def epoch_batches(self) -> Sequence[Batch]: ...
    @abstractmethod
    def step(self, batch: Batch) -> Step: ...
    @abstractmethod
    def close_epoch(self) -> tuple[Record, float | None]: ...
    @abstractmethod
    def checkpoint_document(self) -> dict[str, Any]: ...
    def on_best(self, record: Record) -> None: ...
    def after_epoch(self) -> str | None:
        return None

    def loop(self, progress: RunProgress[Record]) -> str:
        """Train to the end, leave the best weights in the model, and say why it stopped."""
        state = self.state
        self.started = time.perf_counter() - state.elapsed_seconds
        reason: str | None = None  # to stop early
        while state.epoch <= self.epochs:
            batches = self.epoch_batches()
            progress.epoch_start(state.epoch, len(batches))
            self.model.train()
            for batch in batches[state.batches_done :]:
                if self.out_of_time():
                    reason = f"reached the time limit of {self.max_minutes} minutes"
                    break
                started = time.perf_counter()
                step = self.step(batch)
                state.epoch_seconds += time.perf_counter() - started
                state.epoch_loss += step.total
                state.epoch_tokens += step.tokens
                state.batches_done += 1
                state.steps += 1
                progress.batch_end(step.loss, step.tokens)
                if self.checkpoint_every and state.steps % self.checkpoint_every == 0:
                    self.save()
            if reason:  # the deadline, mid-epoch: resuming (with more time) continues the epoch
                self.save()
                if state.batches_done:  # and what ran of it is scored, marked partial
                    progress.epoch_end(self.end_epoch(partial=True))
                break
            progress.epoch_end(self.end_epoch())
            reason = self.after_epoch()
            self.save()  # also after the last epoch: resume with more epochs extends the run
            if reason:
                break
        self.model.load_state_dict(self.best_model)
        return reason or f"reached {self.epochs} epochs"

    def out_of_time(self) -> bool:  # max_minutes of wall time, evaluation included
        deadline = self.started + self.max_minutes * 60 if self.max_minutes else None
        return deadline is not None and time.perf_counter() > deadline

    def end_epoch(self, partial: bool = False) -> Record:
        """Score the epoch, keep the best weights, log; then reset the epoch's counters.

        ``partial``: the deadline stopped the epoch; its record says so and averages its loss
        over the batches that ran (the checkpoint, written before, holds the epoch unclosed).
        """
        state = self.state
        state.train_seconds += state.epoch_seconds
        state.train_tokens += state.epoch_tokens
        record, score = self.close_epoch()
        improved = score is None or (
            score > state.best if self.higher_is_better else score < state.best
        )
        if improved:
            state.best = state.best if score is None else score
            state.best_epoch, state.since_best = state.epoch, 0
            self.best_model = snapshot(self.model)
            self.on_best(record)
        else:
            state.since_best += 1
        record.best, record.partial = improved, partial
        record.minutes = (time.perf_counter() - self.started) / 60
        state.history.append(asdict(record))
        if self.log:
            self.log.write(asdict(record))
        state.epoch, state.batches_done = state.epoch + 1, 0
        state.epoch_loss, state.epoch_tokens, state.epoch_seconds = 0.0, 0, 0.0
        return record

    def history(self) -> list[Record]:
        return [self.record_type(**record) for record in self.state.history]

    def save(self) -> None:
        """Checkpoint the run (with a checkpoint folder), exactly as it stands."""
        self.state.elapsed_seconds = time.perf_counter() - self.started
        if self.checkpoint_dir is None or not self.writes:
            return
        values = asdict(self.state)
        document = self.checkpoint_document()
        document["state"] = {name: values[key] for key, name in self._saved_names().items()}
        model, optimizer = snapshot(self.model), self.optimizer.state_dict()
        checkpoint = ResumeState(
            document, model, self.best_model, optimizer, torch.get_rng_state(), self.carried
        )
        save_resume_state(self.checkpoint_dir, checkpoint)

    def restore(self, checkpoint: ResumeState) -> None:
        """Continue from ``checkpoint`` (of a run built from its document)."""
        counters = checkpoint.document["state"]
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.best_model = checkpoint.best_model
        self.state = RunState(**{key: counters[name] for key, name in self._saved_names().items()})
        torch.set_rng_state(checkpoint.torch_rng)
        self.carried = checkpoint.extra
        if self.log:  # what was logged after the checkpoint is replayed, so rewrite the log
            for record in self.state.history:
                self.log.write(record)

    def _saved_names(self) -> dict[str, str]:
        """RunState field -> its name in the checkpoint, in the file's order."""
        names = {f.name: self.state_names.get(f.name, f.name) for f in fields(RunState)}
        return {key: name for key, name in names.items() if name is not None}
