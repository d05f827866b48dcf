"""What a training run builds before its first step: corpora, vocabularies, label set, optimizer.

The set-up is where files are read: the character LMs a BiLSTM copies, a Hugging Face
directory (through :mod:`tagsure.interop.huggingface`) and word vectors. The network's
``prepare`` gets them loaded, with its ``[model]`` settings as a plain dict.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import torch
from torch import nn

from tagsure.data.conll import ColumnFormat, Corpus, load_corpus
from tagsure.data.schemes import TagScheme, label_set, split_tag
from tagsure.data.vocab import Vocabulary
from tagsure.data.word_vectors import WordVectors, read_vectors
from tagsure.errors import ConfigError
from tagsure.models import registry
from tagsure.models.bilstm_crf import CHAR_LM_FILES
from tagsure.models.frame import Resources, TaggerFrame
from tagsure.training.config import TrainConfig

logger = logging.getLogger(__name__)


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
    if config.data.word_vectors and "word_dim" in architecture.settings():
        # A network without word embeddings (a pretrained encoder) has no use for them.
        resources.word_vectors = vectors = read_vectors(
            config.data.word_vectors,
            bool(settings.get("lowercase_words", True)),
            config.data.max_vectors,
        )
        settings["word_dim"] = _word_dim(settings, vectors)
    vectorizer, model = architecture.network.prepare(settings, resources)
    if resources.word_vectors is not None:
        copy_vectors(model, vectorizer.words, resources.word_vectors)
    return vectorizer, model


def _word_dim(settings: dict[str, Any], vectors: WordVectors) -> int:
    """The vectors' width; a [model] word_dim that says otherwise is an error."""
    wanted = settings.get("word_dim", vectors.dim)
    if wanted != vectors.dim:
        raise ConfigError(
            f"{vectors.path}: the word vectors have {vectors.dim} dimensions but [model] "
            f"word_dim = {wanted}; remove word_dim (it follows the vectors) or set it to "
            f"{vectors.dim}"
        )
    return vectors.dim


def load_resources(resources: Resources, needed: tuple[str, ...], settings: dict[str, Any]) -> None:
    """Load the files a network's ``prepare`` needs; their paths leave ``settings``."""
    if "char_lms" in needed:
        from tagsure.storage.lm_file import load_lm

        resources.char_lms = [load_lm(path) for path in settings.pop(CHAR_LM_FILES, [])]
    if "pretrained" in needed:
        from tagsure.interop.huggingface import read_pretrained

        resources.pretrained = read_pretrained(settings.get("pretrained", ""))


def copy_vectors(model: nn.Module, vocabulary: Vocabulary, vectors: WordVectors) -> None:
    """Each vocabulary word's row from the vectors; the training words without one start small
    and random (N(0, 0.1), a fixed generator) and padding stays zero."""
    words = model.words
    assert isinstance(words, nn.Embedding) and words.embedding_dim == vectors.dim
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(len(vocabulary), vectors.dim, generator=generator) * 0.1  # (V, D)
    rows = torch.tensor(vocabulary.indices(vectors.words))  # every vectors word is in it
    matrix[rows] = torch.from_numpy(vectors.matrix)
    matrix[Vocabulary.pad_index] = 0
    with torch.no_grad():
        words.weight.copy_(matrix)
    logger.info("%s: %d vectors in a vocabulary of %d", vectors.path, len(vectors), len(vocabulary))


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
