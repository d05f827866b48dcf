"""Training steps and inference under ``torch.compile``, with the same surface as the network.

:func:`compile_network` wraps a tagsure network in a :class:`CompiledNetwork` that offers what
the trainer and the tagger use (``loss``, ``emissions``, ``decode``, ``head.decode``,
``head.marginals``, ``config``, ``train``/``eval``), each running compiled code:

* A graph-safe network (``models/frame.py``) compiles whole, ``fullgraph=True``, from its
  named graph inputs: a graph break is an error, never a silent fallback to eager mode. With a
  softmax head the loss (and its backward) joins the graph.
* Otherwise each graph-safe stage compiles on its own and the rest runs eagerly: Dynamo does
  not trace ``nn.LSTM`` (``allow_rnn`` is off) and the fused LSTM kernel has nothing for
  Inductor to fuse; character LSTMs and LMs also need lengths on the CPU.
* The CRF's loops over T do compile (``crf_in_graph=True``), but Dynamo unrolls them, so each
  length bucket costs minutes of Inductor time, and ``scan`` fails with dynamic shapes (torch
  2.13). By default the CRF runs eagerly on the compiled emissions.

Shapes are dynamic (``dynamic=True``), so a new batch size or sentence length does not
recompile the network. Batches are padded to a multiple of :data:`PAD_MULTIPLE` tokens and to
at least 2 sentences (padding is masked, so results don't change): Dynamo specialises sizes 0
and 1. With ``crf_in_graph`` the CRF loops unroll to a power-of-two width (:func:`crf_width`),
about log2(longest sentence) graphs, and the recompile limit is raised for these calls only.
Nothing here sets ``torch._dynamo.config.suppress_errors``: a graph that fails to compile fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch.nn import functional as F

from tagsure.data.batching import Batch
from tagsure.heads.crf import CRF
from tagsure.heads.softmax import Softmax
from tagsure.models.frame import TaggerFrame

logger = logging.getLogger(__name__)

DEFAULT_BACKEND = "inductor"
PAD_MULTIPLE = 8
# CoNLL-2003's longest sentence (124 tokens) needs 16 length buckets of 8; a fresh graph per
# bucket is expected for the CRF loops, so allow more than Dynamo's default of 8.
RECOMPILE_LIMIT = 64


def padded_width(width: int, multiple: int = PAD_MULTIPLE) -> int:
    return -(-width // multiple) * multiple


def pad_batch(batch: Batch, multiple: int = PAD_MULTIPLE) -> Batch:
    """The batch padded (masked) so that no size is 0 or 1, which Dynamo specialises, and T is
    a multiple of ``multiple``."""
    extra = padded_width(batch.words.shape[1], multiple) - batch.words.shape[1]
    rows = max(0, 2 - batch.words.shape[0])

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, extra, 0, rows))  # (B, T) -> (B', T')

    chars = batch.chars  # (U, L) -> (U', L')
    chars = F.pad(chars, (0, max(0, 2 - chars.shape[1]), 0, max(0, 2 - chars.shape[0])))
    return replace(
        batch,
        words=pad(batch.words),
        cases=pad(batch.cases),
        chars=chars,
        char_index=pad(batch.char_index),
        mask=pad(batch.mask),
        lengths=F.pad(batch.lengths, (0, rows)),
        tags=None if batch.tags is None else pad(batch.tags),
        tokens=batch.tokens + [[] for _ in range(rows)],
        features=None
        if batch.features is None
        else F.pad(batch.features, (0, 0, 0, extra, 0, rows)),
    )


def crf_width(steps: Any) -> int:
    """The power of two (at least PAD_MULTIPLE) a CRF's time loop unrolls to: on a symbolic
    ``steps`` the comparisons guard on a range of T, so one graph serves a bucket of lengths."""
    width = PAD_MULTIPLE
    while width < steps:
        width *= 2
    return width


def head_loss(
    head: CRF | Softmax, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``head.loss`` with a CRF's steps padded to :func:`crf_width` (padding is masked)."""
    if isinstance(head, CRF):
        emissions, tags, mask = _pad_steps(emissions, tags, mask, min_rows=0)
    return head.loss(emissions, tags, mask)


def _pad_steps(
    emissions: torch.Tensor, *masks: torch.Tensor, min_rows: int = 2
) -> tuple[torch.Tensor, ...]:
    """Emissions (B, T, K) and (B, T) tensors padded to W = crf_width(T) steps, B >= min_rows."""
    extra = crf_width(emissions.shape[1]) - emissions.shape[1]
    rows = max(0, min_rows - emissions.shape[0])
    padded = [F.pad(m, (0, extra, 0, rows)) for m in masks]
    return F.pad(emissions, (0, 0, 0, extra, 0, rows)), *padded


def _within_limit(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            return function(*args)

    return call


class CompiledHead:
    """The head's decode and marginals, compiled, on emissions padded to the length buckets."""

    def __init__(self, head: CRF | Softmax, backend: str, dynamic: bool = True) -> None:
        self.head = head
        self.num_labels = head.num_labels
        options: dict[str, Any] = {"fullgraph": True, "dynamic": dynamic, "backend": backend}
        self._decode = _within_limit(torch.compile(head.decode, **options))
        self._marginals = _within_limit(torch.compile(head.marginals, **options))

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, steps = mask.shape
        return self._decode(*_pad_steps(emissions, mask))[:b, :steps]  # (B, T)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, steps = mask.shape
        return self._marginals(*_pad_steps(emissions, mask))[:b, :steps]  # (B, T, K)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head.loss(emissions, tags, mask)


class CompiledNetwork:
    """A tagsure network whose loss, emissions and decoding run compiled (see the module doc)."""

    def __init__(
        self,
        model: TaggerFrame,
        backend: str | None = None,
        dynamic: bool = True,
        crf_in_graph: bool = False,
    ) -> None:
        self.model = model
        self.config = model.config
        self.architecture = model.architecture
        self.backend = backend = backend or DEFAULT_BACKEND
        options: dict[str, Any] = {"fullgraph": True, "dynamic": dynamic, "backend": backend}

        def compiled(function: Callable[..., Any]) -> Callable[..., Any]:
            return _within_limit(torch.compile(function, **options))

        # The head's loss joins the compiled graph unless it is a CRF kept outside (module doc).
        head_in_graph = crf_in_graph or not isinstance(model.head, CRF)
        self.head: Any = CompiledHead(model.head, backend, dynamic) if crf_in_graph else model.head
        self._names = model.input_names()
        self.whole = model.graph_safe
        self._loss: Callable[..., Any] | None = None
        features, body = model.part_names()
        if self.whole:
            self._emissions = compiled(model)
            if head_in_graph:
                self._loss = compiled(self._graph_loss)
            self.compiled_parts = [f"the whole emission network (fullgraph): {features}, {body}"]
        else:
            self.compiled_parts = []
            self._features = model.features
            if model.features_graph_safe:
                self._features = compiled(model.features)
                self.compiled_parts.append(features)
            self._body = model.body
            if model.body_graph_safe:
                self._body = compiled(model.body)
                self.compiled_parts.append(body)
            self._output = compiled(model.emission)
            if head_in_graph:
                self._loss = compiled(self._output_loss)
            self.compiled_parts.append("emission layer")
        if head_in_graph:
            self.compiled_parts.append("head loss" + (" and decoding" if crf_in_graph else ""))
        logger.info("compiling %s with %s: %s", type(model).__name__, backend, self.compiled_parts)

    # -- the network surface --------------------------------------------------------------

    def train(self, mode: bool = True) -> CompiledNetwork:
        self.model.train(mode)
        return self

    def eval(self) -> CompiledNetwork:
        return self.train(False)

    def parameters(self) -> Any:
        return self.model.parameters()

    @property
    def frozen_features(self) -> Callable[..., Any] | None:
        return self.model.frozen_features  # computed once per input by Tagger, read as eager

    def emissions(self, batch: Any) -> torch.Tensor:
        b, steps = batch.mask.shape
        padded = _padded(batch)
        if self.whole:
            return self._emissions(*self._tensors(padded))[:b, :steps]  # (B, T, K)
        return self._output(self._hidden(padded))[:b, :steps]

    def loss(self, batch: Any) -> torch.Tensor:
        assert batch.tags is not None, "training batches carry tags"
        b = _padded(batch)
        if self.whole:
            tensors = self._tensors(b)
            if self._loss is not None:
                return self._loss(b.tags, *tensors)
            return self.model.head.loss(self._emissions(*tensors), b.tags, b.mask)
        h = self._hidden(b)
        if self._loss is not None:
            return self._loss(h, b.tags, b.mask)
        return self.model.head.loss(self._output(h), b.tags, b.mask)

    def decode(self, batch: Any) -> torch.Tensor:
        return self.head.decode(self.emissions(batch), batch.mask)

    # -- the compiled regions -------------------------------------------------------------

    def _tensors(self, batch: Any) -> list[torch.Tensor]:
        """The batch's graph inputs, in the network's order."""
        inputs = self.model.batch_inputs(batch)
        return [inputs[name] for name in self._names]

    def _hidden(self, batch: Any) -> torch.Tensor:
        inputs = self.model.batch_inputs(batch)
        return self._body(self._features(inputs), inputs)  # (B, T, H)

    def _graph_loss(self, tags: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        mask = tensors[self._names.index("mask")]
        return head_loss(self.model.head, self.model(*tensors), tags, mask)

    def _output_loss(self, h: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return head_loss(self.model.head, self.model.emission(h), tags, mask)


def _padded(batch: Any) -> Any:
    # Word batches pad to length buckets; subword batches are compiled as they come.
    return pad_batch(batch) if isinstance(batch, Batch) else batch


def compile_network(
    model: TaggerFrame,
    backend: str | None = None,
    dynamic: bool = True,
    crf_in_graph: bool = False,
) -> CompiledNetwork:
    """The network with its training step and inference compiled (see the module doc).

    Example:
        >>> compiled = compile_network(tagger.model)                    # doctest: +SKIP
        >>> loss = compiled.loss(batch); loss.backward()                # doctest: +SKIP
    """
    return CompiledNetwork(model, backend, dynamic, crf_in_graph)


def compile_tagger(tagger: Any, backend: str | None = None) -> Any:
    """A tagger sharing ``tagger``'s weights and vocabularies whose inference runs compiled."""
    from tagsure.tagger import Tagger

    return Tagger(
        compile_network(tagger.model, backend),  # type: ignore[arg-type]
        tagger.vectorizer,
        tagger.model_scheme,
        tagger.output_scheme,
        tagger.metadata,
    )
