"""Export a tagger's emission network to one self-contained ONNX file.

The graph takes the tensors of a batch (``words``, ``cases``, ``chars``, ``char_index``,
``mask``) with dynamic batch size B, sentence length T, unique-token count U and word length L,
and returns the emission scores (B, T, K). Decoding stays outside the graph: arg-max for a
softmax head, Viterbi in NumPy (``heads/viterbi_numpy.py``) for a CRF. Everything else the
tagger needs is written into the file's ``metadata_props`` under ``tagsure``: the model document
of the .tagsure file (architecture, config, labels, tag schemes, vocabularies) plus the CRF's
masked transition scores, so ``tagsure predict --onnx model.onnx`` needs no other file.

We use the TorchScript-based exporter (``dynamo=False``): it turns ``nn.LSTM`` into the ONNX
LSTM operator and keeps every dimension above dynamic, for the BiLSTM (whose character batch
has a size of its own, U) as for the transformer.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tagsure.data.batching import Batch
from tagsure.heads.crf import CRF, FORBIDDEN

if TYPE_CHECKING:
    from tagsure.tagger import Tagger

logger = logging.getLogger(__name__)

METADATA_KEY = "tagsure"
INPUTS = ["words", "cases", "chars", "char_index", "mask"]
OUTPUT = "emissions"
OPSET = 17
DYNAMIC_AXES = {
    "words": {0: "batch", 1: "steps"},
    "cases": {0: "batch", 1: "steps"},
    "chars": {0: "unique_tokens", 1: "word_chars"},
    "char_index": {0: "batch", 1: "steps"},
    "mask": {0: "batch", 1: "steps"},
    OUTPUT: {0: "batch", 1: "steps"},
}


class EmissionGraph(nn.Module):
    """The network's emission scores as a function of tensors only: what is exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        words: torch.Tensor,  # (B, T)
        cases: torch.Tensor,  # (B, T)
        chars: torch.Tensor,  # (U, L)
        char_index: torch.Tensor,  # (B, T)
        mask: torch.Tensor,  # (B, T) bool
    ) -> torch.Tensor:
        lengths = mask.sum(dim=1)  # (B,) computed in the graph, so callers pass tensors only
        batch = Batch(words, cases, chars, char_index, mask, lengths, None, np.empty(0), [])
        return self.model.emissions(batch)  # (B, T, K)


def onnx_document(tagger: Tagger) -> dict[str, Any]:
    """The model document stored in the ONNX metadata, with the decoder's parameters."""
    from tagsure.storage.model_file import describe

    document = describe(tagger)
    head = tagger.model.head
    decoder: dict[str, Any] = {"kind": "crf" if isinstance(head, CRF) else "softmax"}
    if isinstance(head, CRF):
        trans, start, end = (x.detach().cpu() for x in head._scores())
        # float32 -> Python float -> JSON -> float32 is exact, so NumPy decodes with the same
        # numbers the torch CRF uses.
        decoder.update(transitions=trans.tolist(), start=start.tolist(), end=end.tolist())
        decoder["forbidden"] = FORBIDDEN
    document["onnx"] = {"inputs": INPUTS, "output": OUTPUT, "decoder": decoder, "opset": OPSET}
    return document


def example_inputs(tagger: Tagger) -> tuple[torch.Tensor, ...]:
    """A real batch of two sentences of different lengths, for tracing."""
    data = tagger.encoder.encode([["Tracing", "the", "graph", "."], ["Paris"]])
    batch = data.batch([0, 1])
    return batch.words, batch.cases, batch.chars, batch.char_index, batch.mask


def refuse_unsupported(tagger: Tagger) -> None:
    """Taggers whose inputs are not the word/char tensors above can't be exported yet."""
    from tagsure.models import registry

    kind = registry.architecture_of(tagger.model).kind
    if kind not in ("bilstm", "transformer"):
        raise ValueError(
            f"ONNX export supports the 'bilstm' and 'transformer' architectures, not {kind!r} "
            "yet; for a pretrained encoder without a CRF use `tagsure export --format hf`"
        )
    if getattr(tagger.model, "char_lm", None) is not None:
        raise ValueError(
            "ONNX export of a tagger with character language models is not supported yet: "
            "the LMs read the sentences' text, which the exported graph does not take"
        )


def export_onnx(tagger: Tagger, path: str | os.PathLike[str]) -> None:
    """Write ``tagger`` to ``path`` as a self-contained ONNX model (see the module doc).

    Example:
        >>> export_onnx(Tagger.load("model.tagsure"), "model.onnx")     # doctest: +SKIP
    """
    import onnx

    refuse_unsupported(tagger)
    graph = EmissionGraph(tagger.model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo=True, which we don't use:
        # see the module doc.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph,
            example_inputs(tagger),
            str(path),
            input_names=INPUTS,
            output_names=[OUTPUT],
            dynamic_axes=DYNAMIC_AXES,
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(onnx_document(tagger), ensure_ascii=False, sort_keys=True)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    logger.info("exported %s (%d bytes)", path, os.path.getsize(path))
