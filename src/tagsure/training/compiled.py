"""Training steps and inference under ``torch.compile``, with the same surface as the network.

:func:`compile_network` wraps a tagsure network in a :class:`CompiledNetwork` that offers what
the trainer and the tagger use (``loss``, ``emissions``, ``decode``, ``head.decode``,
``head.marginals``, ``config``, ``train``/``eval``), each running compiled code:

* The transformer tagger's emission network compiles whole, ``fullgraph=True``: a graph break
  is an error, never a silent fallback to eager mode. With a softmax head the loss joins it, so
  loss and backward (AOT autograd) are one compiled region.
* The BiLSTM tagger is a hybrid. Its input features (embeddings, casing, character CNN,
  dropout) and its output (dropout, emission layer, a softmax loss) compile; the BiLSTM itself
  runs eagerly between the two regions, because Dynamo does not trace ``nn.LSTM``
  (``torch._dynamo.config.allow_rnn`` is off: it would be a graph break) and the fused ATen
  LSTM kernel has nothing for Inductor to fuse. A character *LSTM* stays eager for the same
  reason, plus its ``pack_padded_sequence`` needs lengths on the CPU.
* The pretrained-encoder tagger compiles whole, ``fullgraph=True``, from the named tensors of
  :mod:`tagsure.models.graph_inputs` (subword windows and word positions): the Hugging Face
  transformer, pooling, character CNN and emission layer; a softmax loss joins the graph.
* The CRF's forward algorithm and Viterbi are a Python loop over the T time steps. They *do*
  compile with ``fullgraph=True`` (``crf_in_graph=True``; tests prove it), but Dynamo unrolls
  the loop, so each length bucket is its own graph and Inductor spends minutes per bucket on
  this machine compiling the unrolled loop and its backward; ``torch._higher_order_ops.scan``,
  which would keep it rolled, fails in Inductor with dynamic shapes (torch 2.13). So by
  default the CRF recursions run eagerly on the compiled emissions, outside the graph.

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
from tagsure.models import graph_inputs

logger = logging.getLogger(__name__)

DEFAULT_BACKEND = "inductor"
PAD_MULTIPLE = 8
# CoNLL-2003's longest sentence (124 tokens) needs 16 length buckets of 8; a fresh graph per
# bucket is expected for the CRF loops, so allow more than Dynamo's default of 8.
RECOMPILE_LIMIT = 64


def padded_width(width: int, multiple: int = PAD_MULTIPLE) -> int:
    return -(-width // multiple) * multiple


def pad_batch(batch: Batch, multiple: int = PAD_MULTIPLE) -> Batch:
    """The batch padded so that no size is 0 or 1 and T is a multiple of ``multiple``.

    Dynamo specialises sizes 0 and 1 (a batch of one sentence, a token of one character would
    each compile a graph of their own), so B, U and L are padded to at least 2: an extra fully
    padded sentence, an extra empty token, an extra empty character position. All of it is
    masked, so the real tokens' results are unchanged.
    """
    extra = padded_width(batch.words.shape[1], multiple) - batch.words.shape[1]
    rows = max(0, 2 - batch.words.shape[0])

    def pad(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else F.pad(x, (0, extra, 0, rows))  # (B, T) -> (B', T')

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
        tags=pad(batch.tags),
        tokens=batch.tokens + [[] for _ in range(rows)],
        features=None
        if batch.features is None
        else F.pad(batch.features, (0, 0, 0, extra, 0, rows)),
    )


def crf_width(steps: Any) -> int:
    """The power of two (at least PAD_MULTIPLE) that a CRF's time loop is unrolled to.

    Inside a compiled region ``steps`` is symbolic; the comparisons guard on a range of T
    (16 < T <= 32, say) rather than on its value, so one graph serves every length in the
    bucket, and a corpus needs about log2(longest sentence) graphs, not one per length.
    """
    width = PAD_MULTIPLE
    while width < steps:
        width *= 2
    return width


def head_loss(
    head: torch.nn.Module, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``head.loss`` with a CRF's steps padded to :func:`crf_width` (padding is masked)."""
    if isinstance(head, CRF):
        extra = crf_width(emissions.shape[1]) - emissions.shape[1]
        emissions = F.pad(emissions, (0, 0, 0, extra))  # (B, T, K) -> (B, W, K)
        tags, mask = F.pad(tags, (0, extra)), F.pad(mask, (0, extra))  # (B, W)
    return head.loss(emissions, tags, mask)


def _pad_steps(emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # CRF loops unroll to a power of two (crf_width); B is padded to >= 2 like pad_batch.
    extra = crf_width(emissions.shape[1]) - emissions.shape[1]
    rows = max(0, 2 - emissions.shape[0])
    # (B, T, K) -> (B', W, K); (B, T) -> (B', W)
    return F.pad(emissions, (0, 0, 0, extra, 0, rows)), F.pad(mask, (0, extra, 0, rows))


def _within_limit(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            return function(*args)

    return call


class CompiledHead:
    """The head's decode and marginals, compiled, on emissions padded to the length buckets."""

    def __init__(self, head: torch.nn.Module, backend: str, dynamic: bool = True) -> None:
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
        model: torch.nn.Module,
        backend: str | None = None,
        dynamic: bool = True,
        crf_in_graph: bool = False,
    ) -> None:
        from tagsure.models.bilstm_crf import BiLSTMTagger
        from tagsure.models.pretrained_tagger import PretrainedTagger
        from tagsure.models.transformer_tagger import TransformerTagger

        self.model = model
        self.config = model.config
        self.architecture = model.architecture
        self.backend = backend = backend or DEFAULT_BACKEND
        options: dict[str, Any] = {"fullgraph": True, "dynamic": dynamic, "backend": backend}
        # The head's loss joins the compiled graph unless it is a CRF kept outside (module doc).
        head_in_graph = crf_in_graph or not isinstance(model.head, CRF)
        self.head: Any = CompiledHead(model.head, backend, dynamic) if crf_in_graph else model.head
        if isinstance(model, TransformerTagger):
            self._emissions = _within_limit(torch.compile(model, **options))
            if head_in_graph:
                self._loss = _within_limit(torch.compile(self._transformer_loss, **options))
            self.compiled_parts = ["the whole emission network (fullgraph)"]
        elif isinstance(model, BiLSTMTagger):
            chars_compile = model.config.char_encoder == "cnn"
            features = self._bilstm_features if chars_compile else self._bilstm_words
            self._features = _within_limit(torch.compile(features, **options))
            self._output = _within_limit(torch.compile(self._bilstm_output, **options))
            if head_in_graph:
                self._output_loss = _within_limit(
                    torch.compile(self._bilstm_output_loss, **options)
                )
            self.compiled_parts = [
                "embeddings, casing" + (", char CNN" if chars_compile else ""),
                "emission layer",
            ]
        elif isinstance(model, PretrainedTagger):
            # The graph inputs of graph_inputs.py: subword windows and word positions.
            self._names = graph_inputs.input_names(model.config)
            self._graph = _within_limit(torch.compile(self._pretrained_emissions, **options))
            if head_in_graph:
                self._named_loss = _within_limit(torch.compile(self._pretrained_loss, **options))
            self.compiled_parts = ["the transformer, pooling and emission layer (fullgraph)"]
        else:
            raise ValueError(f"{type(model).__name__}: no compiled version; use eager mode")
        if head_in_graph:
            self.compiled_parts.append("head loss" + (" and decoding" if crf_in_graph else ""))
        else:
            self._head_loss = _head_loss_eager
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
        """The network's whole-input features (frozen character LMs, pooled or not), which
        ``Tagger`` computes once per input: the compiled BiLSTM reads them like the eager one."""
        return getattr(self.model, "frozen_features", None)

    def emissions(self, batch: Batch) -> torch.Tensor:
        if hasattr(self, "_graph"):  # subword batches: compiled as they come, no padding
            return self._graph(*self._named(batch))
        b, steps = batch.words.shape
        return self._padded_emissions(pad_batch(batch))[:b, :steps]  # (B, T, K)

    def _padded_emissions(self, b: Batch) -> torch.Tensor:
        if hasattr(self, "_emissions"):
            return self._emissions(b.words, b.cases, b.chars, b.char_index, b.mask)
        return self._output(self._bilstm_hidden(b))  # (B, T, K)

    def loss(self, batch: Batch) -> torch.Tensor:
        assert batch.tags is not None, "training batches carry tags"
        if hasattr(self, "_graph"):
            if hasattr(self, "_named_loss"):
                return self._named_loss(batch.tags, *self._named(batch))
            return self._head_loss(self.model.head, self.emissions(batch), batch.tags, batch.mask)
        b = pad_batch(batch)
        if hasattr(self, "_head_loss"):  # a CRF recursion kept outside the graph
            return self._head_loss(self.model.head, self._padded_emissions(b), b.tags, b.mask)
        if hasattr(self, "_loss"):
            return self._loss(b.words, b.cases, b.chars, b.char_index, b.mask, b.tags)
        return self._output_loss(self._bilstm_hidden(b), b.tags, b.mask)

    def decode(self, batch: Batch) -> torch.Tensor:
        return self.head.decode(self.emissions(batch), batch.mask)

    # -- the compiled regions -------------------------------------------------------------

    def _transformer_loss(
        self,
        words: torch.Tensor,
        cases: torch.Tensor,
        chars: torch.Tensor,
        char_index: torch.Tensor,
        mask: torch.Tensor,
        tags: torch.Tensor,
    ) -> torch.Tensor:
        return head_loss(
            self.model.head, self.model(words, cases, chars, char_index, mask), tags, mask
        )

    def _named(self, batch: Any) -> list[torch.Tensor]:
        return list(graph_inputs.feeds(batch, self._names).values())

    def _pretrained_emissions(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model.graph_outputs(dict(zip(self._names, tensors, strict=True)))[0]

    def _pretrained_loss(self, tags: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        mask = tensors[self._names.index("mask")]
        return head_loss(self.model.head, self._pretrained_emissions(*tensors), tags, mask)

    def _bilstm_words(self, words: torch.Tensor, cases: torch.Tensor) -> torch.Tensor:
        m = self.model
        return torch.cat([m.words(m.word_dropout(words)), m.casing(cases)], dim=2)  # (B, T, E)

    def _bilstm_features(
        self, words: torch.Tensor, cases: torch.Tensor, chars: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        m = self.model
        x = torch.cat([self._bilstm_words(words, cases), m.chars(chars)[index]], dim=2)
        return m.dropout(x)  # (B, T, E + C)

    def _bilstm_hidden(self, b: Batch) -> torch.Tensor:
        m = self.model
        if m.config.char_encoder == "cnn":
            x = self._features(b.words, b.cases, b.chars, b.char_index)
        else:  # character LSTM: eager, see the module doc
            chars = m.chars(b.chars)[b.char_index]  # (B, T, C)
            x = m.dropout(torch.cat([self._features(b.words, b.cases), chars], dim=2))
        if m.char_lm is not None:  # character LMs: eager, their nn.LSTM isn't traced either
            lm = b.features
            if lm is None:  # fine-tuned LMs: computed per batch, padded to the batch's width
                lm = m.char_lm(b.tokens)  # (B, T_real, D)
                lm = F.pad(lm, (0, 0, 0, x.shape[1] - lm.shape[1], 0, x.shape[0] - lm.shape[0]))
            x = torch.cat([x, m.dropout(lm)], dim=2)
        # Eager: nn.LSTM is not traced by Dynamo (see the module doc).
        return m.encoder(x, b.lengths)  # (B, T, 2H)

    def _bilstm_output(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.emission(self.model.dropout(h))  # (B, T, K)

    def _bilstm_output_loss(
        self, h: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        return head_loss(self.model.head, self._bilstm_output(h), tags, mask)


def _head_loss_eager(
    head: torch.nn.Module, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    # Eager on purpose: the CRF's time loop stays out of the graph (see the module doc).
    return head.loss(emissions, tags, mask)


def compile_network(
    model: torch.nn.Module,
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
        tagger.encoder,
        tagger.model_scheme,
        tagger.output_scheme,
        tagger.metadata,
    )
