"""What a training run builds before its first step: corpora, vocabularies, label set, optimizer.

The set-up is where files are read: the character LMs a BiLSTM copies, a Hugging Face
directory (through :mod:`tagsure.interop.huggingface`) and word vectors. The network's
``prepare`` gets them loaded, with its ``[model]`` settings as a plain dict.
"""

from __future__ import annotations

import os
from typing import Any, cast

import torch
from torch import nn

from tagsure.data.conll import ColumnFormat, Corpus, load_corpus
from tagsure.data.schemes import TagScheme, label_set, split_tag
from tagsure.errors import ConfigError
from tagsure.layers.words import read_word_vectors
from tagsure.models import registry
from tagsure.models.bilstm_crf import CHAR_LM_FILES
from tagsure.models.frame import Resources, TaggerFrame
from tagsure.training.config import TrainConfig


def read_corpora(config: TrainConfig) -> tuple[Corpus, Corpus | None]:
    d = config.data
    if not d.train:
        raise ConfigError("no training file: set [data] train or pass --train")
    fmt = ColumnFormat(d.token_column, d.tag_column, d.separator, d.token_prefix)
    return load_corpus(d.train, fmt), (load_corpus(d.dev, fmt) if d.dev else None)


def prepare_model(
    config: TrainConfig, corpus: Corpus, scheme: TagScheme
) -> tuple[Any, TaggerFrame]:
    """The input vectorizer and the network of the configured architecture, sized to the data."""
    types = {t for s in corpus.sentences for _, t in map(split_tag, s.tags or []) if t}
    labels = label_set(sorted(types), scheme)
    architecture = registry.by_kind(config.architecture)
    settings = {k: v for k, v in config.model.items() if k != "architecture"}
    resources = Resources(corpus, labels, scheme, config.data.min_word_count)
    load_resources(resources, architecture.network.resources, settings)
    vectorizer, model = architecture.network.prepare(settings, resources)
    if config.data.word_vectors:
        load_word_vectors(model, vectorizer, config.data.word_vectors)
    return vectorizer, model


def load_resources(resources: Resources, needed: tuple[str, ...], settings: dict[str, Any]) -> None:
    """Load the files a network's ``prepare`` needs; their paths leave ``settings``."""
    if "char_lms" in needed:
        from tagsure.storage.lm_file import load_lm

        resources.char_lms = [load_lm(path) for path in settings.pop(CHAR_LM_FILES, [])]
    if "pretrained" in needed:
        from tagsure.interop.huggingface import read_pretrained

        resources.pretrained = read_pretrained(settings.get("pretrained", ""))


def load_word_vectors(model: nn.Module, vectorizer: Any, path: str | os.PathLike[str]) -> None:
    # A network without word embeddings (a pretrained encoder) ignores them.
    words = getattr(model, "words", None)
    if isinstance(words, nn.Embedding):
        vectors, _ = read_word_vectors(
            path, vectorizer.words, words.embedding_dim, vectorizer.lowercase
        )
        with torch.no_grad():
            words.weight.copy_(vectors)


def build_optimizer(
    model: torch.nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float,
    layer_lr_decay: float = 1.0,
    head_lr: float | None = None,
) -> torch.optim.Optimizer:
    params: Any = [p for p in model.parameters() if p.requires_grad]
    if (layer_lr_decay != 1.0 or head_lr is not None) and hasattr(model, "parameter_groups"):
        params = cast(Any, model).parameter_groups(
            lr, layer_lr_decay, head_lr
        )  # per-layer learning rates
    if name == "adamw":
        # fused: one pass over each parameter instead of several (Adam was 20% of a CPU step)
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose 'adamw' or 'sgd'")
