"""Export a tagger's emission network to one self-contained ONNX file, for every architecture.

The graph maps a batch's named inputs (:mod:`tagsure.models.graph_inputs`, every size dynamic)
to emission scores; decoding stays outside. The model document and the CRF's transitions go
into ``metadata_props`` under ``tagsure``, so the file needs no other. The TorchScript exporter
(``dynamo=False``) keeps ``nn.LSTM`` an ONNX LSTM and every dimension dynamic.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tagsure.heads.crf import CRF, FORBIDDEN
from tagsure.models import graph_inputs
from tagsure.models.frame import TaggerFrame
from tagsure.storage import fingerprint, onnx_optimize
from tagsure.storage.atomic import atomic_path
from tagsure.storage.onnx_file import METADATA_KEY
from tagsure.storage.onnx_quantize import check_quantize, quantize_graph, quantized_fingerprint

if TYPE_CHECKING:
    from tagsure.storage.model_file import TaggerLike

logger = logging.getLogger(__name__)

OPSET = 17


class EmissionGraph(nn.Module):
    """The network's outputs as a function of named tensors only: what is exported."""

    def __init__(self, model: TaggerFrame) -> None:
        super().__init__()
        self.model = model
        self.names = model.input_names()

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.graph_outputs(dict(zip(self.names, tensors, strict=True)))


def onnx_document(tagger: TaggerLike) -> dict[str, Any]:
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
    stored = tagger.metadata.get("fingerprint")
    if isinstance(stored, fingerprint.Fingerprint):  # so `tagsure verify` can check the export
        document["fingerprint"] = {**stored.to_json(), "emissions": stored.emissions.tolist()}
    model = tagger.model
    document["onnx"] = {
        "inputs": model.input_names(),
        "outputs": model.graph_output_names(model.config),
        "decoder": decoder,
        "opset": OPSET,
    }
    return document


def example_inputs(tagger: TaggerLike) -> tuple[torch.Tensor, ...]:
    """A real batch of sentences of different lengths, for tracing: padding in every input, so
    no mask can be traced as all ones."""
    sentences = [["Tracing", "the", "graph", "of", "Berlin", "."], ["Paris"], ["New", "York"]]
    data = tagger.vectorizer.encode(sentences)
    batch = data.batch(np.arange(len(sentences)))
    config = tagger.model.config
    pooled = None
    if graph_inputs.pooled(config):
        pooled = torch.zeros(*batch.mask.shape, graph_inputs.pooled_width(config))
    names = tagger.model.input_names()
    texts = graph_inputs.lm_texts(config)
    return tuple(graph_inputs.feeds(batch, names, texts, pooled).values())


def export_onnx(
    tagger: TaggerLike, path: str | os.PathLike[str], quantize: str | None = None
) -> None:
    """Write ``tagger`` to ``path`` as a self-contained ONNX model (see the module doc),
    atomically. ``quantize="int8"``: int8 weights, and a fingerprint taken on the quantised
    graph in place of the fp32 one (see :mod:`tagsure.storage.onnx_quantize`)."""
    import onnx

    check_quantize(quantize, tagger)
    document = onnx_document(tagger)
    with atomic_path(path) as tmp:
        if quantize is None:
            trace(tagger, tmp)
        else:
            with tempfile.TemporaryDirectory(prefix="tagsure-onnx-") as folder:
                fp32 = Path(folder) / "fp32.onnx"
                trace(tagger, fp32)
                quantize_graph(fp32, tmp)
            document.pop("fingerprint", None)
            if taken := quantized_fingerprint(tagger, tmp):
                document["fingerprint"] = taken
            document["onnx"]["quantized"] = quantize
        model = onnx.load(str(tmp))
        del model.metadata_props[:]
        entry = model.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = json.dumps(document, ensure_ascii=False, sort_keys=True)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
    logger.info("exported %s (%d bytes)", path, os.path.getsize(path))


def trace(tagger: TaggerLike, path: str | os.PathLike[str]) -> None:
    """The fp32 emission graph of ``tagger``, traced to ``path`` (no metadata yet)."""
    graph = EmissionGraph(tagger.model).eval()
    outputs = tagger.model.graph_output_names(tagger.model.config)
    inputs = example_inputs(tagger)
    fusion = onnx_optimize.fusion_shape(tagger.model)
    with (
        torch.no_grad(),
        warnings.catch_warnings(record=True) as said,
        onnx_optimize.eager_attention(tagger.model),  # what ONNX Runtime's fusions recognise
    ):
        # The tracer's warnings are about shapes it cannot see ("batch_size other than 1 with
        # LSTM", Python booleans in attention masks, TorchScript's deprecation): every
        # architecture's export is checked against torch at mixed batch shapes in
        # tests/test_onnx.py, so they go to the log, not to the user's terminal.
        warnings.simplefilter("always")
        torch.onnx.export(
            graph,
            inputs,
            str(path),
            input_names=graph.names,
            output_names=outputs,
            dynamic_axes=graph_inputs.dynamic_axes([*graph.names, *outputs]),
            opset_version=OPSET,
            dynamo=False,
        )
    for warning in said:
        logger.info("torch.onnx.export: %s", warning.message)
    if fusion is not None:
        feeds = {name: x.numpy() for name, x in zip(graph.names, inputs, strict=True)}
        onnx_optimize.fuse(Path(path), fusion, feeds)
