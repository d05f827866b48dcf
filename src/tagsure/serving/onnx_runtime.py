"""Tag with an exported ONNX model under ONNX Runtime: no torch model, no .tagsure file.

:class:`OnnxTagger` reads the tagsure document from the ONNX file's metadata (see
``storage/onnx_export.py``), encodes and batches sentences exactly as :class:`Tagger` does,
runs the emission graph in ONNX Runtime and decodes in NumPy. It offers ``tag``, ``predict``
and ``evaluate`` like :class:`Tagger`, entity scores included (the same forward-backward
marginals, in NumPy). Tagging imports no torch: batches are NumPy arrays, the vectorizer is read
from the document without the torch network's class, character-LM inputs and their pooling are
NumPy. ``emissions`` and ``metadata`` return tensors, as :class:`Tagger`'s do (torch).

Example:
    >>> tagger = OnnxTagger("model.onnx")                               # doctest: +SKIP
    >>> tagger.predict(["Angela Merkel visited Paris ."])               # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tagsure.data.batching import Vectorizer, bucketed_batches
from tagsure.data.schemes import TagScheme
from tagsure.errors import ModelFileError
from tagsure.heads.viterbi_numpy import crf_marginals, softmax_marginals, viterbi
from tagsure.layers.char_text import pooled_by_word_arrays
from tagsure.models import graph_inputs
from tagsure.prediction import PREDICT_BATCH_SIZE, Predicts, decode_all
from tagsure.storage.onnx_file import METADATA_KEY

if TYPE_CHECKING:
    import torch

# Sentences per graph run for a transformer encoder: ONNX Runtime runs a whole batch's windows at
# once, and small batches of sentences of similar subword length pad, and attend, least
# (MiniLM-L6, 1,500 CoNLL-2003 dev sentences, one thread: 32 a run gave 1.17x the words/s of
# 64 and 1.10x those of 16).
SUBWORD_GRAPH_BATCH = 32
# Architectures whose vectorizer this module reads from the document without their torch class
# (tests check these against the registry); any other goes through the registry (torch).
WORD_ARCHITECTURES = ("tagsure.BiLSTMCRF.v1", "tagsure.Transformer.v1")
SUBWORD_ARCHITECTURES = ("tagsure.PretrainedTransformer.v1",)


def vectorizer_of(document: dict[str, Any], path: Any) -> Any:
    """The input vectorizer an exported model's document describes (Vectorizer or
    SubwordVectorizer)."""
    name, settings = str(document["architecture"]), document["model_config"]
    labels = document["labels"]
    if name in WORD_ARCHITECTURES:
        return Vectorizer.from_document(document, labels, settings.get("lowercase_words", True))
    if name in SUBWORD_ARCHITECTURES:
        from tagsure.data.subwords import SubwordVectorizer

        with_chars = settings.get("char_encoder", "none") != "none"
        return SubwordVectorizer.from_document(document, labels, with_chars)
    from tagsure.models import registry  # torch: the architectures are torch modules

    architecture = registry.by_name(name)
    if architecture is None:
        raise ModelFileError(f"{path}: unknown architecture {name!r}; upgrade tagsure")
    config = architecture.config_from_dict(settings)
    return architecture.vectorizer_from_document(document, config, labels)


class OnnxTagger(Predicts):
    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        metadata = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in metadata:
            raise ModelFileError(
                f"{path}: an ONNX model without tagsure metadata; export it with "
                "`tagsure export --format onnx MODEL OUT.onnx`"
            )
        document = json.loads(metadata[METADATA_KEY])
        self.document = document
        self.vectorizer = vectorizer_of(document, path)
        config = document["model_config"]
        self.model_scheme = TagScheme(document["tag_scheme"])
        self.output_scheme = TagScheme(document["output_scheme"])
        decoder = document["onnx"]["decoder"]
        self.crf: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if decoder["kind"] == "crf":
            self.crf = (
                np.asarray(decoder["transitions"], dtype=np.float32),
                np.asarray(decoder["start"], dtype=np.float32),
                np.asarray(decoder["end"], dtype=np.float32),
            )

        # The graph's own inputs: the exporter drops those it doesn't read (e.g. `last` with
        # first-subword pooling)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.lm_texts = graph_inputs.lm_texts(config)
        self.pooled_width = graph_inputs.pooled_width(config)
        self.graph_batch = SUBWORD_GRAPH_BATCH if "input_ids" in self.inputs else None

    @property
    def labels(self) -> list[str]:
        return self.vectorizer.labels

    @property
    def quantized(self) -> str | None:
        """``int8`` for a quantised export (its fingerprint is the quantised graph's), else None."""
        return self.document["onnx"].get("quantized")

    @property
    def platform(self) -> dict[str, str]:
        from tagsure.storage.onnx_quantize import runtime_platform  # torch

        return runtime_platform()

    def emissions_of(self, batch: Any, pooled: np.ndarray | None = None) -> np.ndarray:
        """Emission scores (B, T, K) of one batch (torch or NumPy) from the ONNX graph."""
        return self.session.run([graph_inputs.EMISSIONS], self._feeds(batch, pooled))[0]

    def _feeds(self, batch: Any, pooled: np.ndarray | None) -> dict[str, np.ndarray]:
        named = graph_inputs.feeds(batch, self.inputs, self.lm_texts, pooled)
        return {name: np.asarray(value) for name, value in named.items()}

    def _pooled_features(self, data: Any) -> np.ndarray:
        """(tokens, D) pooled LM features of a whole input, as ``frozen_features`` computes
        them: every sentence's LM vectors from the graph, then their running mean per word."""
        features = np.empty((data.num_tokens, self.pooled_width), dtype=np.float32)
        for ids in bucketed_batches(data.lengths, PREDICT_BATCH_SIZE):
            batch = data.arrays(ids)
            zeros = np.zeros((*batch.mask.shape, self.pooled_width), dtype=np.float32)
            lm = self.session.run([graph_inputs.LM_FEATURES], self._feeds(batch, zeros))[0]
            for row, i in enumerate(ids):
                start, n = int(data.offsets[i]), int(data.lengths[i])
                features[start : start + n] = lm[row, :n]
        return pooled_by_word_arrays(features, data.type_ids)

    def _batch_pooled(self, pooled: np.ndarray, data: Any, batch: Any) -> np.ndarray:
        """The rows of the input's pooled features that belong to ``batch``, padded (B, T, D)."""
        out = np.zeros((*batch.mask.shape, self.pooled_width), dtype=np.float32)
        for row, i in enumerate(batch.sentence_ids):
            start, n = int(data.offsets[i]), int(data.lengths[i])
            out[row, :n] = pooled[start : start + n]
        return out

    @property
    def metadata(self) -> dict[str, Any]:
        """What :class:`Tagger` keeps in ``metadata``: training, metrics, versions and the
        fingerprint taken when the tagsure file was saved (exports from then on carry it)."""
        found = {k: self.document.get(k, {}) for k in ("training", "metrics", "versions")}
        stored = self.document.get("fingerprint")
        if stored is not None:
            import torch

            from tagsure.storage import fingerprint

            emissions = torch.tensor(stored["emissions"], dtype=torch.float32)
            found["fingerprint"] = fingerprint.Fingerprint.from_json(stored, emissions)
        return found

    def emissions(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Per-sentence (T, K) emission scores from the graph, in input order."""
        import torch

        data = self.vectorizer.encode(sentences)
        pooled = self._pooled_features(data) if self.pooled_width else None
        out: list[torch.Tensor] = [torch.empty(0)] * len(sentences)
        for ids in bucketed_batches(data.batch_lengths, self.graph_batch or PREDICT_BATCH_SIZE):
            batch = data.arrays(ids)
            batch_pooled = None if pooled is None else self._batch_pooled(pooled, data, batch)
            scores = self.emissions_of(batch, batch_pooled)
            for row, i in enumerate(ids):
                out[i] = torch.from_numpy(scores[row, : data.lengths[i]].copy())
        return out

    def decode(self, emissions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.crf is None:
            return emissions.argmax(axis=2) * mask  # (B, T)
        return viterbi(emissions, mask, *self.crf)

    def marginals(self, emissions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.crf is None:
            return softmax_marginals(emissions, mask)  # (B, T, K)
        return crf_marginals(emissions, mask, *self.crf)

    def tag(
        self,
        sentences: Sequence[Sequence[str]],
        with_scores: bool = False,
        batch_size: int = PREDICT_BATCH_SIZE,
    ) -> tuple[list[list[str]], list[np.ndarray] | None]:
        """Tags in the output scheme for pre-tokenised sentences (and token marginals)."""
        data = self.vectorizer.encode(sentences)
        pooled = self._pooled_features(data) if self.pooled_width else None

        def decode(batch: Any) -> tuple[np.ndarray, np.ndarray | None]:
            batch_pooled = None if pooled is None else self._batch_pooled(pooled, data, batch)
            emissions, mask = self.emissions_of(batch, batch_pooled), batch.mask
            path = self.decode(emissions, mask)  # (B, T)
            if not with_scores:
                return path, None
            chosen = np.take_along_axis(self.marginals(emissions, mask), path[:, :, None], 2)
            return path, chosen[:, :, 0]

        schemes = (self.model_scheme, self.output_scheme)
        if self.graph_batch is not None:
            batch_size = min(batch_size, self.graph_batch)
        return decode_all(data, decode, self.labels, *schemes, with_scores, batch_size, arrays=True)

    # Raw text, entities and evaluation (Predicts) work as for the torch tagger, on top of ``tag``.
