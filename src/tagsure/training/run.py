"""The loop every training run shares: epochs of steps, the deadline, checkpoints, the best
snapshot, progress, and exact resume.

A trainer subclasses :class:`Run` and supplies only what is its own: the epoch's batches
(:meth:`Run.epoch_batches`), one optimizer step (:meth:`Run.step`), the epoch's record and score
(:meth:`Run.close_epoch`) and what its checkpoint holds besides the run's counters
(:meth:`Run.checkpoint_document`); it may add a stopping rule (:meth:`Run.after_epoch`), act on a
new best (:meth:`Run.on_best`) and carry tensors across steps (:meth:`Run.extra_tensors`).

Resume is exact because everything that decides the next step is checkpointed (weights, best
weights, optimizer, torch's RNG, the counters, a trainer's carried tensors) and a trainer's batch
order depends only on the seed and the epoch: a resumed run replays the epoch's batches and skips
the ones done.

Data-parallel training plugs in here: its trainer shards :meth:`Run.epoch_batches` by rank, sets
:attr:`Run.writes` false on every rank but the first, and overrides :meth:`Run.out_of_time` so
that all ranks agree to stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from logging import Logger
from pathlib import Path
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

import torch

from tagsure.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tagsure.training.log import MetricsLog


class EpochRecordLike(Protocol):
    """What the loop sets on a trainer's epoch record (a dataclass, logged as JSON)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    epoch: int
    minutes: float
    best: bool


Batch = TypeVar("Batch")
Record = TypeVar("Record", bound=EpochRecordLike)
Record_contra = TypeVar("Record_contra", contravariant=True)


class RunProgress(Protocol[Record_contra]):
    """What a run reports while it goes; the CLI draws it, the library only logs."""

    def epoch_start(self, epoch: int, batches: int) -> None: ...

    def batch_end(self, loss: float, tokens: int) -> None: ...

    def epoch_end(self, record: Record_contra) -> None: ...


class LoggingProgress(Generic[Record]):
    """A log line per epoch, ``describe(record)``, on the trainer's logger."""

    def __init__(self, describe: Callable[[Record], str], logger: Logger) -> None:
        self.describe, self.logger = describe, logger

    def epoch_start(self, epoch: int, batches: int) -> None:
        pass

    def batch_end(self, loss: float, tokens: int) -> None:
        pass

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


def read_checkpoint(directory: str | Path) -> Checkpoint:
    """The resume state a run left in ``directory``."""
    return load_checkpoint(directory)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Run(Generic[Batch, Record]):
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
        *,
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
        self.log = MetricsLog(log_path) if log_path and self.writes else None
        self.started = time.perf_counter()  # minus the time of earlier sessions, once looping

    # What a trainer supplies.

    def epoch_batches(self) -> Sequence[Batch]:
        """All batches of the epoch ``self.state.epoch``, in order, the same on every call."""
        raise NotImplementedError

    def step(self, batch: Batch) -> Step:
        """One optimizer step on ``batch``."""
        raise NotImplementedError

    def close_epoch(self) -> tuple[Record, float | None]:
        """The epoch's record (``best`` and ``minutes`` are set after) and its score, evaluated
        on held-out data; None when there is none, and then every epoch counts as the best."""
        raise NotImplementedError

    def checkpoint_document(self) -> dict[str, Any]:
        """What the checkpoint holds besides the counters: enough to rebuild the run."""
        raise NotImplementedError

    def on_best(self, record: Record) -> None:
        """The epoch just closed is the best so far (its weights are already kept)."""

    def after_epoch(self) -> str | None:
        """Between epochs (say, annealing): the reason to stop now, or None."""
        return None

    def extra_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors carried from step to step (an LM's hidden state), to checkpoint."""
        return {}

    def restore_extra(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    # The loop.

    def loop(self, progress: RunProgress[Record]) -> str:
        """Train to the end, leave the best weights in the model, and say why it stopped."""
        state = self.state
        self.started = time.perf_counter() - state.elapsed_seconds
        stop_reason = f"reached {self.epochs} epochs"
        while state.epoch <= self.epochs:
            batches = self.epoch_batches()
            progress.epoch_start(state.epoch, len(batches))
            self.model.train()
            out_of_time = False
            for batch in batches[state.batches_done :]:
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
                if self.out_of_time():
                    out_of_time = True
                    break
            progress.epoch_end(self.end_epoch())
            if out_of_time:
                stop_reason = f"reached the time limit of {self.max_minutes} minutes"
                break
            reason = self.after_epoch()
            if reason is not None:
                stop_reason = reason
                break
            self.save()
        self.model.load_state_dict(self.best_model)
        return stop_reason

    def out_of_time(self) -> bool:
        """Past ``max_minutes`` of wall time (evaluation included) since the run began."""
        if not self.max_minutes:
            return False
        return time.perf_counter() > self.started + self.max_minutes * 60

    def end_epoch(self) -> Record:
        """Score the epoch, keep the best weights, log; then reset the epoch's counters."""
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
        record.best = improved
        record.minutes = (time.perf_counter() - self.started) / 60
        state.history.append(asdict(record))
        if self.log:
            self.log.write(asdict(record))
        state.epoch += 1
        state.batches_done = 0
        state.epoch_loss, state.epoch_tokens, state.epoch_seconds = 0.0, 0, 0.0
        return record

    def history(self) -> list[Record]:
        return [self.record_type(**record) for record in self.state.history]

    # Checkpoints.

    def save(self) -> None:
        """Checkpoint the run (with a checkpoint folder), exactly as it stands."""
        self.state.elapsed_seconds = time.perf_counter() - self.started
        if self.checkpoint_dir is None or not self.writes:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        values = asdict(self.state)
        counters = {name: values[key] for key, name in self._saved_names().items()}
        checkpoint = Checkpoint(
            self.checkpoint_document() | {"state": counters},
            snapshot(self.model),
            self.best_model,
            self.optimizer.state_dict(),
            torch.get_rng_state(),
            self.extra_tensors(),
        )
        save_checkpoint(self.checkpoint_dir, checkpoint)

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from ``checkpoint`` (of a run built from its document)."""
        counters = checkpoint.document["state"]
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.best_model = checkpoint.best_model
        self.state = RunState(**{key: counters[name] for key, name in self._saved_names().items()})
        torch.set_rng_state(checkpoint.torch_rng)
        self.restore_extra(checkpoint.extra)
        if self.log:  # what was logged after the checkpoint is replayed, so rewrite the log
            for record in self.state.history:
                self.log.write(record)

    def _saved_names(self) -> dict[str, str]:
        """RunState field -> its name in the checkpoint, in the file's order."""
        names = {f.name: self.state_names.get(f.name, f.name) for f in fields(RunState)}
        return {key: name for key, name in names.items() if name is not None}
