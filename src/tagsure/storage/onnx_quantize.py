"""int8 ONNX exports: the fp32 graph dynamically quantised, fingerprinted as quantised.

``onnxruntime.quantization.quantize_dynamic`` turns MatMul/Gemm weights into int8 (per output
channel) and LSTMs into ``DynamicQuantizeLSTM``; activations are quantised (uint8) per batch at
run time. Weights use 7 bits (``reduce_range``): x86 CPUs without VNNI (AVX2, AVX-512) sum
uint8 x int8 products in saturating int16 pairs, ONNX Runtime's documented caveat; with full
8-bit per-channel weights a tiny BiLSTM-CRF's tags changed on a third of its tokens, with 7 bits
on 0.6% (the CoNLL-2003 BiLSTM-CRF loses no F1 either way: docs/precision.md).

Quantisation changes the emission scores, so the fingerprint of the fp32 model no longer
describes the file: a new one is taken on the quantised graph through ONNX Runtime and stored
in its place, with the platform it was taken on (ONNX Runtime's version included). ``verify``
then holds the file to it bit for bit where it was exported.

The probe runs through :class:`SessionProbe`: the torch tagger's vectorizer and decoder around
the graph's emissions, one sentence a pass, as the fingerprint runs any tagger.

Example:
    >>> runtime_platform()["runtime"].startswith("onnxruntime ")      # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tagsure.data.schemes import convert
from tagsure.errors import ConfigError
from tagsure.models import graph_inputs
from tagsure.storage import fingerprint

if TYPE_CHECKING:
    from tagsure.storage.model_file import TaggerLike

logger = logging.getLogger(__name__)

QUANTIZE_MODES = ("int8",)


def check_quantize(quantize: str | None, tagger: TaggerLike) -> None:
    """Refuse a mode or a network this export cannot quantise, before anything is written."""
    if quantize is None:
        return
    if quantize not in QUANTIZE_MODES:
        raise ConfigError(f"--quantize {quantize!r}: use {', '.join(QUANTIZE_MODES)} (or omit it)")
    if graph_inputs.pooled(tagger.model.config):
        raise ConfigError(
            "--quantize int8: a tagger with pooled character-LM features (char_lm_pooling) runs "
            "its graph twice per input, which the int8 export does not fingerprint; export it "
            "in fp32"
        )


def runtime_platform() -> dict[str, str]:
    """Where an ONNX graph's scores are computed (and a quantised one's reproduced bit for bit):
    this CPU, under this ONNX Runtime."""
    import onnxruntime

    runtime = f"onnxruntime {onnxruntime.__version__}"
    return {**fingerprint.current_platform("cpu"), "runtime": runtime}


def quantize_graph(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Write ``source``'s graph with int8 weights (per channel) to ``target``."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It advises, on the root logger, a shape pre-pass our graphs don't need (their shapes
    # are all declared): to the log, not to the user's terminal.
    root = logging.getLogger()
    advice = _ToLog("pre-processing before quantization")
    root.addFilter(advice)
    try:
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=True,
            reduce_range=True,  # 7-bit weights: see the module doc
            weight_type=QuantType.QInt8,
            # ONNX's shape inference cannot type the outputs of ONNX Runtime's fused kernels
            # (Attention, SkipLayerNorm in a fused encoder): they are float32, as all ours are
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(advice)


class _ToLog(logging.Filter):
    """Drops root-logger records containing ``text``, logging them here at INFO instead."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text in record.getMessage():
            logger.info("onnxruntime.quantization: %s", record.getMessage())
            return False
        return True


class SessionProbe:
    """What the fingerprint runs (``emissions`` and ``tag``) for an ONNX graph under ONNX
    Runtime, with the tagger's own vectorizer and decoder around the graph's emissions."""

    def __init__(self, tagger: TaggerLike, path: str | os.PathLike[str]) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.tagger = tagger
        used = {i.name for i in self.session.get_inputs()}
        self.inputs = [n for n in tagger.model.input_names() if n in used]
        self.texts = graph_inputs.lm_texts(tagger.model.config)
        self.platform = runtime_platform()

    def emissions(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Per-sentence (T, K) emission scores from the graph, one sentence a pass."""
        out = []
        for sentence in sentences:
            batch = self.tagger.vectorizer.encode([sentence]).batch(np.arange(1))
            named = graph_inputs.feeds(batch, self.inputs, self.texts)
            feeds = {name: tensor.numpy() for name, tensor in named.items()}
            scores = self.session.run([graph_inputs.EMISSIONS], feeds)[0]  # (1, T, K)
            out.append(torch.from_numpy(scores[0, : len(sentence)].copy()))
        return out

    def tag(
        self, sentences: Sequence[Sequence[str]], with_scores: bool = False
    ) -> tuple[list[list[str]], Any]:
        """Tags in the output scheme, decoded from the graph's emissions by the tagger's head."""
        tagger, labels = self.tagger, self.tagger.labels
        tags = []
        for sentence, scores in zip(sentences, self.emissions(sentences), strict=True):
            mask = torch.ones(1, len(sentence), dtype=torch.bool)
            path = tagger.model.head.decode(scores.unsqueeze(0), mask)[0]  # (T,)
            predicted = [labels[int(j)] for j in path[: len(sentence)]]
            tags.append(convert(predicted, tagger.model_scheme, tagger.output_scheme))
        return tags, None


def quantized_fingerprint(tagger: TaggerLike, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fingerprint of the graph at ``path`` on the tagger's probe, as the ONNX document
    stores it; ``{}`` when the tagger has none to take the probe sentences from."""
    stored = tagger.metadata.get("fingerprint")
    if not isinstance(stored, fingerprint.Fingerprint):
        return {}
    probe = SessionProbe(tagger, path)
    taken = fingerprint.take(probe, stored.sentences)
    pairs = zip(taken.tags, stored.tags, strict=True)
    changed = sum(a != b for x, y in pairs for a, b in zip(x, y, strict=True))
    logger.info("int8: %d of %d probe tags differ from fp32", changed, sum(map(len, stored.tags)))
    return {**taken.to_json(), "emissions": taken.emissions.tolist()}
