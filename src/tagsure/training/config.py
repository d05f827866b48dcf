"""Training settings: one dataclass, readable from a TOML file.

Example ``tagger.toml``::

    [data]
    train = "train.txt"
    dev = "dev.txt"

    [model]            # an architecture and any setting of its config dataclass
    architecture = "bilstm"
    hidden_size = 256
    head = "crf"

    [training]
    optimizer = "adamw"
    epochs = 40
    max_minutes = 30

    [card]             # the model card: `tagsure inspect` shows it, the HF export's README.md
    license = "cc-by-4.0"
    intended_use = "English news text"
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tagsure.errors import ConfigError
from tagsure.models import registry
from tagsure.storage.model_card import ModelCard


@dataclass
class DataConfig:
    train: str = ""
    dev: str | None = None
    token_column: int = 0
    tag_column: int = -1
    separator: str | None = None  # None: any whitespace; "\t": tabs only
    token_prefix: str = ""  # e.g. "en:" (detected automatically for WikiANN)
    tag_scheme: str = "BIOES"  # the scheme the model predicts in; output uses the data's own
    min_word_count: int = 1
    word_vectors: str | None = None  # local word2vec / GloVe / fastText text file
    # None: every word of word_vectors joins the vocabulary; N: the first N rows (the files
    # list words most frequent first), bounding the embedding's memory and step time
    max_vectors: int | None = None


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # "adamw" or "sgd"
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    batch_size: int = 32
    epochs: int = 40
    max_minutes: float | None = 30.0  # wall time, evaluation included; 0 or None: no limit
    clip_grad_norm: float = 5.0
    anneal_factor: float = 0.5  # learning rate multiplier when dev F1 stops improving
    anneal_patience: int = 3  # epochs without improvement before annealing
    min_learning_rate: float = 1e-5  # stop when annealing goes below
    early_stopping_patience: int = 8  # epochs without improvement before stopping
    seed: int = 1
    # True: batches of sentences of similar length (little padding, fast); False: random
    # batches, lengths mixed, as transformers' Trainer does by default (see docs/pretrained.md)
    group_by_length: bool = True
    # "sentence": a batch's loss is its mean per sentence (sum over tokens / sentences);
    # "token": its mean per token, as transformers' token classification computes it
    loss_average: str = "sentence"
    # A batch of mixed lengths runs as up to 4 micro-batches of similar length whose gradients
    # add up: the same optimizer step on the same sentences, with less padding to compute
    split_by_length: bool = True
    # Fine-tuning a pretrained transformer (off by default):
    warmup_fraction: float = 0.0  # > 0: linear warm-up over this share of the planned steps,
    # then linear decay to zero at the end of `epochs`
    layer_lr_decay: float = 1.0  # < 1: transformer layer i of L learns at lr * decay ** (L - i)
    head_learning_rate: float | None = None  # layers above the transformer (head, CRF, chars)
    compile: bool = False  # training steps under torch.compile (training/compiled.py)

    def __post_init__(self) -> None:
        if self.loss_average not in ("sentence", "token"):
            raise ConfigError(
                f"[training] loss_average must be 'sentence' or 'token', not {self.loss_average!r}"
            )


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    # "architecture" (a registry kind, default "bilstm") and overrides of its config's defaults
    model: dict[str, Any] = field(default_factory=dict)
    training: OptimConfig = field(default_factory=OptimConfig)
    card: ModelCard = field(default_factory=ModelCard)  # the model card's prose fields

    def __post_init__(self) -> None:
        known = registry.by_kind(self.architecture).settings()
        unknown = sorted(set(self.model) - {"architecture", *known})
        if unknown:
            raise ConfigError(
                f"unknown [model] settings {unknown} for architecture "
                f"{self.architecture!r}; known: {known}"
            )

    @property
    def architecture(self) -> str:
        return str(self.model.get("architecture", registry.DEFAULT_KIND))

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: {err}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> TrainConfig:
        sections = {"data": DataConfig, "training": OptimConfig, "card": ModelCard}
        unknown = sorted(set(raw) - {*sections, "model"})
        if unknown:
            raise ConfigError(
                f"{source}: unknown sections {unknown}; use [data], [model], [training], [card]"
            )
        built: dict[str, Any] = {"model": dict(raw.get("model", {}))}
        for name, kind in sections.items():
            values = dict(raw.get(name, {}))
            known = {f.name for f in fields(kind)}
            bad = sorted(set(values) - known)
            if bad:
                raise ConfigError(
                    f"{source}: unknown [{name}] settings {bad}; known: {sorted(known)}"
                )
            if name == "training":  # the architecture's own defaults under the user's values
                architecture = built["model"].get("architecture", registry.DEFAULT_KIND)
                network = registry.by_kind(architecture).network
                values = {**network.config_class.training_defaults, **values}
            built[name] = kind(**values)
        return cls(**built)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
