"""The training loop: bucketed batches, AdamW or SGD, annealing, early stopping, best-on-dev,
checkpoints and exact resume.

A CPU run is reproducible bit for bit: the seed fixes initialisation and dropout (torch's
generator) and the batch order (a NumPy generator seeded with ``(seed, epoch)``, so an epoch's
order doesn't depend on what ran before it). A checkpoint holds the torch generator's state and
the number of batches done in the epoch, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tagsure.data.batching import bucketed_batches, shuffled_batches, split_by_padding
from tagsure.data.conll import Corpus
from tagsure.data.devices import autocast, autocast_cache, grad_scaler, move, resolve_device
from tagsure.data.schemes import TagScheme, convert
from tagsure.evaluation.metrics import Metrics, MetricsAccumulator
from tagsure.storage.fingerprint import choose_probe
from tagsure.storage.model_file import describe, tagger_from_document
from tagsure.tagger import Tagger
from tagsure.training.config import TrainConfig
from tagsure.training.distributed import SINGLE, World, join, rank_device
from tagsure.training.log import EpochRecord, format_record, plot_curve
from tagsure.training.resume_state import ResumeState, load_resume_state
from tagsure.training.run import LoggingProgress, Run, RunProgress, Step
from tagsure.training.schedule import apply_schedule
from tagsure.training.setup import build_optimizer, prepare_model, read_corpora

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    tagger: Tagger
    history: list[EpochRecord]
    best_epoch: int
    train_seconds: float  # time in training steps only
    train_tokens: int  # tokens processed by training steps
    stop_reason: str


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    progress: RunProgress[EpochRecord] | None = None,
    corpora: tuple[Corpus, Corpus | None] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    device: str | None = None,
    precision: str = "fp32",
    verbose: bool = True,
) -> TrainResult:
    """Train a tagger as ``config`` says; with ``out``, save it there with its log and curve.

    With ``checkpoint_dir``, a checkpoint is written there at the end of every epoch and every
    ``checkpoint_every`` optimizer steps; :func:`resume` continues from it. ``device`` (cpu,
    cuda, cuda:N, mps, auto) is where it trains, ``precision`` (fp32, bf16, fp16) its autocast.
    Started by torchrun, each process trains a shard of every batch (training/distributed.py).
    Progress shows as ``tagsure train`` shows it (a bar on a terminal, a line per epoch);
    ``verbose=False`` only logs, and ``progress`` replaces both. The run stops at
    ``config.training.max_minutes`` (30 unless set; 0: no limit), as the CLI's does.

    Example:
        >>> from tagsure import TrainConfig, train                        # doctest: +SKIP
        >>> config = TrainConfig.from_toml("tagger.toml")                 # doctest: +SKIP
        >>> result = train(config, out="model.tagsure")                   # doctest: +SKIP
        >>> result.tagger.predict(["Peter lives in Berlin ."])            # doctest: +SKIP
    """
    torch.manual_seed(config.training.seed)
    train_corpus, dev_corpus = corpora or read_corpora(config)
    output_scheme = train_corpus.scheme or TagScheme.IOB2
    model_scheme = TagScheme.parse(config.data.tag_scheme)
    vectorizer, model = prepare_model(config, train_corpus, model_scheme)
    probe = choose_probe([s.tokens for s in (dev_corpus or train_corpus).sentences])
    metadata = {"training": config.to_dict(), "probe": probe, "card": config.card.to_dict()}
    tagger = Tagger(model, vectorizer, model_scheme, output_scheme, metadata)
    place = _Place.join(device, precision, checkpoint_dir)
    run = _Run(
        config, tagger, train_corpus, dev_corpus, out, checkpoint_dir, checkpoint_every, place
    )
    return run.finish(run.loop(progress or _default_progress(verbose)))


def resume(
    checkpoint_dir: str | Path,
    progress: RunProgress[EpochRecord] | None = None,
    device: str | None = None,
    precision: str = "fp32",
    epochs: int | None = None,
    max_minutes: float | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Continue the run whose checkpoint is in ``checkpoint_dir``, exactly where it stopped.

    With ``epochs``, the run goes on to that many epochs in all: a finished run is extended
    (and ends as a run of that many epochs from the start would, the learning-rate warm-up's
    schedule aside, which is planned over the first ``epochs``). With ``max_minutes``, it gets
    that many more minutes of wall time (a run stopped by its time limit stops at once without).

    Example:
        >>> from tagsure.training.trainer import resume                   # doctest: +SKIP
        >>> result = resume("runs/conll03", epochs=60)                    # doctest: +SKIP
    """
    checkpoint = load_resume_state(checkpoint_dir)
    document = checkpoint.document
    config = TrainConfig.from_dict(document["config"])
    if epochs is not None:
        config.training.epochs = epochs
    if max_minutes is not None:  # the limit counts the whole run's time: add what it has had
        spent = document["state"]["elapsed_seconds"] / 60
        config.training.max_minutes = spent + max_minutes
    tagger = tagger_from_document(document["model"], checkpoint.model, str(checkpoint_dir), Tagger)
    tagger.metadata["training"] = config.to_dict()  # with the new limits
    tagger.metadata["probe"] = document["probe"]
    tagger.metadata["metrics"] = document["model"].get("metrics", {})
    out, every = document["out"], document["checkpoint_every"]
    place = _Place.join(device, precision, checkpoint_dir)
    saved, batch = document.get("world_size", 1), config.training.batch_size
    place.world.check_resume(saved, batch, checkpoint_dir, "sentences")
    run = _Run(config, tagger, *read_corpora(config), out, checkpoint_dir, every, place)
    run.restore(checkpoint)
    return run.finish(run.loop(progress or _default_progress(verbose)))


def _default_progress(verbose: bool) -> RunProgress[EpochRecord]:
    if verbose:
        from tagsure.training.progress import TqdmProgress

        return TqdmProgress()
    return LoggingProgress(format_record, logger)


@dataclass
class _Place:
    """Where a run's steps happen: its device and precision, and its rank among processes."""

    device: torch.device
    precision: str = "fp32"
    world: World = SINGLE

    @classmethod
    def join(cls, device: str | None, precision: str, checkpoint_dir: str | Path | None) -> _Place:
        chosen = resolve_device(device)
        world = join(chosen, where=str(checkpoint_dir) if checkpoint_dir else "")
        return cls(rank_device(chosen, world), precision, world)


class _Run(Run[np.ndarray, EpochRecord]):
    """A tagger's training run: batches of sentence ids, a step, dev F1, annealing."""

    record_type = EpochRecord
    state_names = {"best": "best_f1"}

    def __init__(
        self,
        config: TrainConfig,
        tagger: Tagger,
        train_corpus: Corpus,
        dev_corpus: Corpus | None,
        out: str | Path | None,
        checkpoint_dir: str | Path | None,
        checkpoint_every: int,
        place: _Place | None = None,
    ) -> None:
        self.place = place or _Place(torch.device("cpu"))
        self.world, self.writes = self.place.world, self.place.world.writes
        if dev_corpus is not None and self.world.parallel:  # each rank scores its shard
            shard = self.world.shard(np.arange(len(dev_corpus.sentences)))
            dev_corpus = Corpus([dev_corpus.sentences[i] for i in shard], dev_corpus.scheme)
        self.config, self.tagger, self.dev_corpus = config, tagger, dev_corpus
        self.out = Path(out) if out else None
        vectorizer, scheme, source = tagger.vectorizer, tagger.model_scheme, tagger.output_scheme
        self.train_data = vectorizer.encode(
            [s.tokens for s in train_corpus.sentences],
            [convert(s.tags or [], source, scheme) for s in train_corpus.sentences],
        )
        self.dev_data = (
            vectorizer.encode([s.tokens for s in dev_corpus.sentences]) if dev_corpus else None
        )
        self.dev_metrics: Metrics | None = None  # of the epoch just closed
        for data in (self.train_data, self.dev_data):  # frozen character LMs: computed once
            if data is not None:
                tagger._attach_features(data)
        opt, model = config.training, tagger.model.to(self.place.device)
        tagger.precision = self.place.precision
        self.scaler = grad_scaler(self.place.device, self.place.precision)
        self.global_batch = opt.batch_size * self.world.size  # the effective batch
        optimizer = build_optimizer(
            model,
            opt.optimizer,
            opt.learning_rate,
            opt.weight_decay,
            opt.momentum,
            opt.layer_lr_decay,
            opt.head_learning_rate,
        )
        self.planned_steps = opt.epochs * -(-len(self.train_data) // self.global_batch)
        self.loss = model.loss
        if opt.compile:
            from tagsure.training.compiled import compile_network

            self.loss = compile_network(model).loss
        log = _sibling(self.out, ".metrics.jsonl") if self.out else None
        super().__init__(
            model, optimizer, opt.epochs, opt.max_minutes, checkpoint_dir, checkpoint_every, log
        )

    def checkpoint_document(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "out": str(self.out) if self.out else None,
            "checkpoint_every": self.checkpoint_every,
            "model": describe(self.tagger),
            "probe": self.tagger.metadata.get("probe", []),
            "world_size": self.world.size,
            "grad_scaler": self.scaler.state_dict() if self.scaler else None,  # fp16's loss scale
        }

    def restore(self, checkpoint: ResumeState) -> None:
        super().restore(checkpoint)
        saved = checkpoint.document.get("grad_scaler")
        if self.scaler is not None and saved:  # fp16 goes on from the loss scale it had reached
            self.scaler.load_state_dict(saved)

    def epoch_batches(self) -> list[np.ndarray]:
        opt = self.config.training
        rng = np.random.default_rng([opt.seed, self.state.epoch])
        if opt.group_by_length:  # global batches: each rank takes its shard of each in step()
            return bucketed_batches(self.train_data.batch_lengths, self.global_batch, rng)
        return shuffled_batches(len(self.train_data), self.global_batch, rng)

    def step(self, ids: np.ndarray) -> Step:
        """One optimizer step on a batch of sentences; its loss is a mean per sentence."""
        model, opt, place = self.tagger.model, self.config.training, self.place
        tokens = int(self.train_data.lengths[ids].sum())
        count = len(ids)
        denominator = tokens if opt.loss_average == "token" else count  # of the global batch
        self.world.seed_step(opt.seed, self.state.steps)
        ids = self.world.shard(ids)  # this rank's sentences: all of them on one process
        lengths = self.train_data.batch_lengths[ids]  # what pads: words, or subwords
        parts = split_by_padding(ids, lengths) if opt.split_by_length and len(ids) else [ids]
        self.optimizer.zero_grad(set_to_none=True)
        loss = 0.0
        with autocast_cache(place.device, place.precision):
            for part in parts:  # micro-batches: their gradients add up to the whole batch's
                if not len(part):  # a rank with no sentence of a short last batch
                    continue
                with autocast(place.device, place.precision):
                    part_loss = self.loss(move(self.train_data.batch(part), place.device))
                part_loss = part_loss / denominator
                (self.scaler.scale(part_loss) if self.scaler else part_loss).backward()
                loss += part_loss.item()
        (loss,) = self.world.sum_gradients(list(model.parameters()), loss)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if opt.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), opt.clip_grad_norm)
        if opt.warmup_fraction:
            apply_schedule(
                self.optimizer, self.state.steps, self.planned_steps, opt.warmup_fraction
            )
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return Step(loss, loss * count, tokens)

    def close_epoch(self) -> tuple[EpochRecord, float | None]:
        state = self.state
        sentences = sum(len(ids) for ids in self.epoch_batches()[: state.batches_done])
        record = EpochRecord(
            epoch=state.epoch,
            minutes=0.0,
            train_loss=state.epoch_loss / max(sentences, 1),  # those run: a partial epoch's too
            learning_rate=self.optimizer.param_groups[0]["lr"],
            train_tokens_per_s=state.epoch_tokens / max(state.epoch_seconds, 1e-9),
        )
        if self.dev_corpus is None or self.dev_data is None:
            return record, None
        predicted, _ = self.tagger._tag_encoded(self.dev_data)
        accumulator = MetricsAccumulator()
        for sentence, tags in zip(self.dev_corpus.sentences, predicted, strict=True):
            accumulator.add(sentence.tags or [], tags)
        metrics = self.dev_metrics = self.world.merge_metrics(accumulator).result()
        record.dev = {
            "precision": float(metrics.micro.precision),
            "recall": float(metrics.micro.recall),
            "f1": float(metrics.micro.f1),
            "accuracy": float(metrics.accuracy),
        }
        return record, record.dev["f1"]

    def save(self) -> None:  # rank 0 writes; the others wait for the file
        super().save()
        self.world.barrier("waiting for rank 0 to write the checkpoint")

    def out_of_time(self) -> bool:  # every rank stops at the same step
        return bool(self.max_minutes) and self.world.any(super().out_of_time())

    def on_best(self, record: EpochRecord) -> None:
        if self.dev_metrics is not None:
            dev = self.dev_metrics.to_dict()
            self.tagger.metadata["metrics"] = {"dev": dev, "epoch": self.state.epoch}

    def after_epoch(self) -> str | None:
        """Early stopping, then annealing the learning rate on a plateau of dev F1."""
        opt, state = self.config.training, self.state
        if state.since_best >= opt.early_stopping_patience:
            return f"no dev improvement for {state.since_best} epochs"
        if state.since_best and state.since_best % opt.anneal_patience == 0:
            for group in self.optimizer.param_groups:
                group["lr"] *= opt.anneal_factor
                if "initial_lr" in group:  # the warm-up schedule's base rate
                    group["initial_lr"] *= opt.anneal_factor
            if self.optimizer.param_groups[0]["lr"] < opt.min_learning_rate:
                return "learning rate annealed below the minimum"
        return None

    def finish(self, stop_reason: str) -> TrainResult:
        state, tagger = self.state, self.tagger
        tagger.model.eval()
        logger.info("stopped: %s; best epoch %d", stop_reason, state.best_epoch)
        tagger.metadata["training"]["result"] = {
            "best_epoch": state.best_epoch,
            "epochs_run": len(state.history),
            "stop_reason": stop_reason,
            "train_seconds": state.train_seconds,
            "train_tokens": state.train_tokens,
            "world_size": self.world.size,
            "effective_batch_size": self.global_batch,
        }
        history = self.history()
        tagger.precision = "fp32"  # the file's fingerprint is of fp32 inference
        if self.out and self.writes:
            tagger.save(self.out)
            plot_curve(history, _sibling(self.out, ".curve.png"))
        self.world.barrier("waiting for rank 0 to write the model")
        return TrainResult(
            tagger, history, state.best_epoch, state.train_seconds, state.train_tokens, stop_reason
        )


def _sibling(path: str | Path, suffix: str) -> Path:
    """``model.tagsure`` -> ``model.metrics.jsonl`` beside it."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(path.suffix) + suffix)
