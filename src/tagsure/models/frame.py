"""The network every tagger shares: features -> body -> emission layer -> head.

A *body* is a :class:`TaggerFrame` subclass: it builds its modules, computes features and
body vectors, and declares its graph inputs and which stages are graph-safe, which is all
``training/compiled.py`` and the ONNX export need. The frame owns the emission layer, the head
(softmax or a CRF constrained by the tag scheme), loss and decoding.

Modules are attributes of the frame itself (``words``, ``encoder``, ``emission``, ``head``), so
the state-dict keys are the same for every body and never carry a body prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from tagsure.data.conll import Corpus
from tagsure.data.schemes import TagScheme, allowed_ends, allowed_starts, allowed_transitions
from tagsure.data.word_vectors import WordVectors
from tagsure.errors import ConfigError
from tagsure.heads.crf import CRF
from tagsure.heads.softmax import Softmax
from tagsure.models import graph_inputs

Inputs = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Constraints:
    """CRF transition constraints that follow from the label set and its tag scheme."""

    transitions: list[tuple[int, int]]
    starts: list[int]
    ends: list[int]

    @classmethod
    def of(cls, labels: list[str], scheme: TagScheme) -> Constraints:
        return cls(
            allowed_transitions(labels, scheme),
            allowed_starts(labels, scheme),
            allowed_ends(labels, scheme),
        )


def build_head(kind: str, num_labels: int, constraints: Constraints | None = None) -> CRF | Softmax:
    """The head a config names: a CRF (constrained when ``constraints`` are given) or softmax."""
    if kind == "crf":
        if constraints is None:
            return CRF(num_labels)
        return CRF(num_labels, constraints.transitions, constraints.starts, constraints.ends)
    if kind == "softmax":
        return Softmax(num_labels)
    raise ConfigError(f"unknown head {kind!r}; choose 'crf' or 'softmax'")


@dataclass
class Resources:
    """What a body's ``prepare`` sizes a network from besides its settings, already loaded:
    the training corpus, its labels and scheme, and the files the body declares it needs."""

    corpus: Corpus
    labels: list[str]
    scheme: TagScheme
    min_word_count: int = 1
    char_lms: list[Any] = field(default_factory=list)  # CharLanguageModel, weights loaded
    word_vectors: WordVectors | None = None  # their words join the word vocabulary
    pretrained: Any = None  # a PretrainedSource (models/pretrained_tagger.py)


class TaggerFrame(nn.Module):
    """Features -> body -> emission layer -> head (see the module doc)."""

    architecture: ClassVar[str] = ""  # the versioned name, set by @register
    config_class: ClassVar[type[Any]]  # the body's JsonConfig dataclass
    # What ``prepare`` needs in its Resources besides the corpus: "char_lms", "pretrained".
    resources: ClassVar[tuple[str, ...]] = ()
    # How much shorter than the longest of its group a sentence may be when a server batch is
    # cut into groups of similar length (serving/grouping.py): a recurrent body pays per call
    # and per time step, so it takes fewer, more padded calls than a transformer does.
    group_ratio: ClassVar[float] = 0.7

    def __init__(self, config: Any, constraints: Constraints | None = None) -> None:
        super().__init__()
        self.config = config
        width = self.build(config)
        self.emission = nn.Linear(width, config.num_labels)
        self.init_emission(self.emission)
        self.head = build_head(config.head, config.num_labels, constraints)

    # -- what a body provides -------------------------------------------------------------

    def build(self, config: Any) -> int:
        """Create the feature and body modules; return the width H the emission layer reads."""
        raise NotImplementedError

    def features(self, inputs: Inputs) -> torch.Tensor:  # named tensors -> (B, T, F)
        raise NotImplementedError

    def body(self, x: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        """(B, T, F) features -> (B, T, H) vectors for the emission layer (dropout included)."""
        raise NotImplementedError

    @classmethod
    def graph_input_names(cls, config: Any) -> list[str]:
        """The graph's input tensors, in order (see :mod:`tagsure.models.graph_inputs`)."""
        return list(graph_inputs.WORD_INPUTS)

    @classmethod
    def graph_output_names(cls, config: Any) -> list[str]:
        return [graph_inputs.EMISSIONS]  # a pooled BiLSTM adds its LM features

    @property
    def features_graph_safe(self) -> bool:  # features() traces with fullgraph=True
        return True

    @property
    def body_graph_safe(self) -> bool:  # body() does (no nn.LSTM, no Python on tensor values)
        return True

    def part_names(self) -> tuple[str, str]:
        return "features", "body"  # what they are, in words, for logs

    def init_emission(self, emission: nn.Linear) -> None:
        pass  # a body may re-initialise it (default: as nn.Linear draws it)

    def batch_inputs(self, batch: Any) -> dict[str, torch.Tensor]:
        """The named tensors of an eager batch (what :meth:`features` and :meth:`body` read)."""
        return graph_inputs.feeds(batch, self.input_names())

    def batch_hidden(self, batch: Any) -> torch.Tensor:  # eager (B, T, H); may chunk
        return self.hidden(self.batch_inputs(batch))

    def frozen_features(self, data: Any) -> torch.Tensor | None:
        return None  # features computed once over a whole input (frozen character LMs)

    @classmethod
    def prepare(cls, settings: dict[str, Any], resources: Resources) -> tuple[Any, TaggerFrame]:
        """The input vectorizer and a network sized to the data, from the ``[model]`` settings."""
        raise NotImplementedError

    @classmethod
    def vectorizer_to_document(cls, vectorizer: Any) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def vectorizer_from_document(
        cls, document: dict[str, Any], config: Any, labels: list[str]
    ) -> Any:
        raise NotImplementedError

    # -- shared by every body ---------------------------------------------------------------

    def input_names(self) -> list[str]:
        return self.graph_input_names(self.config)

    @property
    def graph_safe(self) -> bool:  # the whole network compiles into one graph
        return self.features_graph_safe and self.body_graph_safe

    def hidden(self, inputs: Inputs) -> torch.Tensor:
        return self.body(self.features(inputs), inputs)  # (B, T, H)

    def graph_outputs(self, inputs: Inputs) -> tuple[torch.Tensor, ...]:
        """The graph's outputs (:meth:`graph_output_names`) from its named inputs."""
        return (self.emission(self.hidden(inputs)),)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        """Emissions (B, T, K) from the graph inputs in order: the compiled/exported function."""
        return self.graph_outputs(dict(zip(self.input_names(), tensors, strict=True)))[0]

    def emissions(self, batch: Any) -> torch.Tensor:
        """Per-token label scores (B, T, K) before the head's decoding."""
        return self.emission(self.batch_hidden(batch))

    def loss(self, batch: Any) -> torch.Tensor:
        assert batch.tags is not None, "training batches carry tags"
        # Under autocast the emissions may be bf16/fp16; the head sums in fp32 (a no-op in fp32)
        return self.head.loss(self.emissions(batch).float(), batch.tags, batch.mask)

    def decode(self, batch: Any) -> torch.Tensor:
        return self.head.decode(self.emissions(batch), batch.mask)
