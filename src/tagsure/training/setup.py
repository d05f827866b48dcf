"""What a training run builds before its first step: corpora, vocabularies, label set, optimizer."""

from __future__ import annotations

from collections import Counter

import torch

from tagsure.data.batching import Encoder
from tagsure.data.conll import ColumnFormat, Corpus, load_corpus
from tagsure.data.features import normalise_word
from tagsure.data.schemes import TagScheme, split_tag
from tagsure.data.vocab import Vocabulary
from tagsure.models.bilstm_crf import BiLSTMConfig
from tagsure.training.config import TrainConfig


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
