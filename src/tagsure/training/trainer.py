"""The training loop: bucketed batches, AdamW or SGD, annealing, early stopping, best-on-dev.

A CPU run is reproducible bit for bit: the seed fixes initialisation and dropout (torch's
generator) and the batch order (a NumPy generator seeded with ``(seed, epoch)``, so an epoch's
order doesn't depend on what ran before it).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tagsure.data.batching import EncodedSentences, Encoder, bucketed_batches
from tagsure.data.conll import ColumnFormat, Corpus, load_corpus
from tagsure.data.features import normalise_word
from tagsure.data.schemes import TagScheme, convert, split_tag
from tagsure.data.vocab import Vocabulary
from tagsure.encoders.words import read_word_vectors
from tagsure.evaluation.metrics import Metrics, MetricsAccumulator
from tagsure.models.bilstm_crf import BiLSTMConfig
from tagsure.storage.fingerprint import choose_probe
from tagsure.storage.model_file import build_model
from tagsure.tagger import Tagger
from tagsure.training.config import TrainConfig
from tagsure.training.log import MetricsLog, plot_curve

logger = logging.getLogger(__name__)


@dataclass
class EpochRecord:
    epoch: int
    minutes: float  # wall time since training started, evaluation included
    train_loss: float  # mean per sentence
    learning_rate: float
    train_tokens_per_s: float  # tokens / seconds spent in training steps only
    dev: dict[str, float] = field(default_factory=dict)  # precision, recall, f1, accuracy
    best: bool = False


@dataclass
class TrainResult:
    tagger: Tagger
    history: list[EpochRecord]
    best_epoch: int
    train_seconds: float  # time in training steps only
    train_tokens: int  # tokens processed by training steps
    stop_reason: str


class Progress(Protocol):
    """What the trainer reports while it runs; the CLI draws it, the library only logs."""

    def epoch_start(self, epoch: int, batches: int) -> None: ...

    def batch_end(self, loss: float, tokens: int) -> None: ...

    def epoch_end(self, record: EpochRecord) -> None: ...


class LoggingProgress:
    def epoch_start(self, epoch: int, batches: int) -> None:
        pass

    def batch_end(self, loss: float, tokens: int) -> None:
        pass

    def epoch_end(self, record: EpochRecord) -> None:
        logger.info("epoch %d: %s", record.epoch, format_record(record))


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
    return text


def train(
    config: TrainConfig,
    out: str | Path | None = None,
    progress: Progress | None = None,
    corpora: tuple[Corpus, Corpus | None] | None = None,
) -> TrainResult:
    """Train a tagger as ``config`` says; with ``out``, save it there with its log and curve.

    Example:
        >>> from tagsure import TrainConfig, train                        # doctest: +SKIP
        >>> config = TrainConfig.from_toml("tagger.toml")                 # doctest: +SKIP
        >>> result = train(config, out="model.tagsure")                   # doctest: +SKIP
        >>> result.tagger.predict(["Peter lives in Berlin ."])            # doctest: +SKIP
    """
    progress = progress or LoggingProgress()
    opt = config.training
    torch.manual_seed(opt.seed)
    train_corpus, dev_corpus = corpora or read_corpora(config)
    output_scheme = train_corpus.scheme or TagScheme.IOB2
    model_scheme = TagScheme.parse(config.data.tag_scheme)
    encoder, model_config = build_vocabularies(train_corpus, model_scheme, config)
    model = build_model(model_config, encoder.labels, model_scheme)
    if config.data.word_vectors:
        vectors, _ = read_word_vectors(
            config.data.word_vectors,
            encoder.words,
            model_config.word_dim,
            model_config.lowercase_words,
        )
        with torch.no_grad():
            model.words.weight.copy_(vectors)
    probe_source = dev_corpus or train_corpus
    tagger = Tagger(
        model,
        encoder,
        model_scheme,
        output_scheme,
        {
            "training": config.to_dict(),
            "probe": choose_probe([s.tokens for s in probe_source.sentences]),
        },
    )
    train_data = encoder.encode(
        [s.tokens for s in train_corpus.sentences],
        [convert(s.tags or [], output_scheme, model_scheme) for s in train_corpus.sentences],
    )
    dev_data = encoder.encode([s.tokens for s in dev_corpus.sentences]) if dev_corpus else None
    optimizer = build_optimizer(
        model, opt.optimizer, opt.learning_rate, opt.weight_decay, opt.momentum
    )
    log = MetricsLog(_sibling(out, ".metrics.jsonl")) if out else None

    history: list[EpochRecord] = []
    best_f1, best_epoch, best_state = -1.0, 0, _snapshot(model)
    since_best = 0
    started = time.perf_counter()
    deadline = started + opt.max_minutes * 60 if opt.max_minutes else None
    train_seconds, train_tokens = 0.0, 0
    stop_reason = f"reached {opt.epochs} epochs"
    for epoch in range(1, opt.epochs + 1):
        rng = np.random.default_rng([opt.seed, epoch])
        batches = bucketed_batches(train_data.lengths, opt.batch_size, rng)
        progress.epoch_start(epoch, len(batches))
        model.train()
        epoch_loss, epoch_tokens, epoch_seconds, out_of_time = 0.0, 0, 0.0, False
        for ids in batches:
            step_start = time.perf_counter()
            batch = train_data.batch(ids)
            loss = model.loss(batch) / len(ids)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opt.clip_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opt.clip_grad_norm)
            optimizer.step()
            now = time.perf_counter()
            epoch_seconds += now - step_start
            epoch_loss += loss.item() * len(ids)
            epoch_tokens += batch.num_tokens
            progress.batch_end(loss.item(), batch.num_tokens)
            if deadline is not None and now > deadline:
                out_of_time = True
                break
        train_seconds += epoch_seconds
        train_tokens += epoch_tokens
        record = EpochRecord(
            epoch=epoch,
            minutes=0.0,
            train_loss=epoch_loss / max(len(train_data), 1),
            learning_rate=optimizer.param_groups[0]["lr"],
            train_tokens_per_s=epoch_tokens / max(epoch_seconds, 1e-9),
        )
        improved = True
        if dev_corpus is not None and dev_data is not None:
            metrics = evaluate_encoded(tagger, dev_data, dev_corpus)
            micro = metrics.micro
            record.dev = {
                "precision": float(micro.precision),
                "recall": float(micro.recall),
                "f1": float(micro.f1),
                "accuracy": float(metrics.accuracy),
            }
            improved = record.dev["f1"] > best_f1
            if improved:
                best_f1 = record.dev["f1"]
                tagger.metadata["metrics"] = {"dev": metrics.to_dict(), "epoch": epoch}
        if improved:
            best_epoch, best_state, since_best = epoch, _snapshot(model), 0
        else:
            since_best += 1
        record.best = improved
        record.minutes = (time.perf_counter() - started) / 60
        history.append(record)
        if log:
            log.write(asdict(record))
        progress.epoch_end(record)
        if out_of_time:
            stop_reason = f"reached the time limit of {opt.max_minutes} minutes"
            break
        if since_best >= opt.early_stopping_patience:
            stop_reason = f"no dev improvement for {since_best} epochs"
            break
        if since_best and since_best % opt.anneal_patience == 0:
            for group in optimizer.param_groups:
                group["lr"] *= opt.anneal_factor
            if optimizer.param_groups[0]["lr"] < opt.min_learning_rate:
                stop_reason = "learning rate annealed below the minimum"
                break
    model.load_state_dict(best_state)
    model.eval()
    logger.info("stopped: %s; best epoch %d", stop_reason, best_epoch)
    tagger.metadata["training"]["result"] = {
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stop_reason": stop_reason,
        "train_seconds": train_seconds,
        "train_tokens": train_tokens,
    }
    if out:
        tagger.save(out)
        plot_curve(history, _sibling(out, ".curve.png"))
    return TrainResult(tagger, history, best_epoch, train_seconds, train_tokens, stop_reason)


def read_corpora(config: TrainConfig) -> tuple[Corpus, Corpus | None]:
    d = config.data
    if not d.train:
        raise ValueError("no training file: set [data] train or pass --train")
    fmt = ColumnFormat(d.token_column, d.tag_column, d.separator, d.token_prefix)
    return load_corpus(d.train, fmt), (load_corpus(d.dev, fmt) if d.dev else None)


def build_vocabularies(
    corpus: Corpus, scheme: TagScheme, config: TrainConfig
) -> tuple[Encoder, BiLSTMConfig]:
    """Vocabularies and label set from the training corpus, and the model config sized to them."""
    lowercase = bool(config.model.get("lowercase_words", True))
    words: Counter[str] = Counter()
    chars: Counter[str] = Counter()
    types: set[str] = set()
    for sentence in corpus.sentences:
        for token in sentence.tokens:
            words[normalise_word(token, lowercase)] += 1
            chars.update(token)
        types.update(t for _, t in map(split_tag, sentence.tags or []) if t)
    labels = label_set(sorted(types), scheme)
    encoder = Encoder(
        Vocabulary.from_counts(words, config.data.min_word_count),
        Vocabulary.from_counts(chars),
        labels,
        lowercase,
    )
    model_config = BiLSTMConfig(
        num_words=len(encoder.words),
        num_chars=len(encoder.chars),
        num_labels=len(labels),
        **config.model,
    )
    return encoder, model_config


def label_set(types: list[str], scheme: TagScheme) -> list[str]:
    """Every label the scheme can produce for these entity types, "O" first."""
    prefixes = {
        TagScheme.IOB1: "BI",
        TagScheme.IOB2: "BI",
        TagScheme.BIOES: "BIES",
        TagScheme.BILOU: "BILU",
    }[scheme]
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


def build_optimizer(
    model: torch.nn.Module, name: str, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        # fused: one pass over each parameter instead of several (Adam was 20% of a CPU step)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'adamw' or 'sgd'")


def evaluate_encoded(tagger: Tagger, data: EncodedSentences, corpus: Corpus) -> Metrics:
    predicted, _ = tagger._tag_encoded(data)
    accumulator = MetricsAccumulator()
    for sentence, tags in zip(corpus.sentences, predicted, strict=True):
        accumulator.add(sentence.tags or [], tags)
    return accumulator.result()


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _sibling(path: str | Path, suffix: str) -> Path:
    """``model.tagsure`` -> ``model.metrics.jsonl`` beside it."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(path.suffix) + suffix)


ProgressFactory = Callable[[], Progress]
__all__ = ["EpochRecord", "LoggingProgress", "Progress", "TrainResult", "train", "read_corpora"]


def summary(result: TrainResult) -> dict[str, Any]:
    best = next((r for r in result.history if r.epoch == result.best_epoch), None)
    return {
        "best_epoch": result.best_epoch,
        "best_dev": best.dev if best else {},
        "train_tokens_per_s": result.train_tokens / max(result.train_seconds, 1e-9),
        "stop_reason": result.stop_reason,
    }
