"""The user-facing tagger: a network plus everything needed to use it on text.

A :class:`Tagger` owns the network, the vocabularies, the label dictionary and the tag schemes.
It is what :func:`tagsure.train` returns and what :meth:`Tagger.load` rebuilds from one file.

Example:
    >>> from tagsure import Tagger                                    # doctest: +SKIP
    >>> tagger = Tagger.load("model.tagsure")                         # doctest: +SKIP
    >>> tagger.predict(["George Washington went to Washington ."])    # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tagsure.data.batching import bucketed_batches
from tagsure.data.devices import autocast, check_precision, move, resolve_device
from tagsure.data.schemes import TagScheme
from tagsure.errors import ConfigError
from tagsure.models.frame import TaggerFrame

# What prediction is made of lives in the torch-free tagsure.prediction; importable here as before.
from tagsure.prediction import (  # noqa: F401
    EVALUATE_CHUNK,
    PREDICT_BATCH_SIZE,
    Entity,
    Prediction,
    Predicts,
    Tags,
    chunked,
    decode_all,
    predict_items,
    predict_lazily,
)


class Tagger(Predicts):
    """A trained sequence tagger.

    ``model_scheme`` is the scheme the network predicts in (BIOES by default: it gives the CRF
    the most structure); ``output_scheme`` is the scheme of the training data, used for output
    and evaluation, so users get tags back in the scheme they gave.
    """

    def __init__(
        self,
        model: TaggerFrame,
        vectorizer: Any,  # the architecture's input vectorizer: Vectorizer or SubwordVectorizer
        model_scheme: TagScheme,
        output_scheme: TagScheme,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if len(vectorizer.labels) != model.config.num_labels:
            raise ValueError(
                f"the label dictionary has {len(vectorizer.labels)} labels but the head outputs "
                f"{model.config.num_labels}"
            )
        self.model = model
        self.vectorizer = vectorizer
        self.model_scheme = model_scheme
        self.output_scheme = output_scheme
        self.metadata: dict[str, Any] = metadata or {}
        self.precision = "fp32"  # of inference: fp32, bf16/fp16 autocast or int8 (see :meth:`to`)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device | None = None, precision: str | None = None) -> Tagger:
        """Run on ``device`` (cpu, cuda, cuda:N, mps, auto), in ``precision``; returns self.

        ``precision`` is fp32, bf16 or fp16 (autocast), or int8: the network's Linear and LSTM
        layers dynamically quantised in memory, on the CPU only and for good (load the file
        again for fp32).

        Example:
            >>> tagger.to("auto", precision="bf16")                   # doctest: +SKIP
        """
        target = resolve_device(device)
        wanted = self.precision if precision is None else check_precision(precision, True)
        if "int8" in (wanted, self.precision):
            if target.type != "cpu":
                raise ConfigError(f"precision int8 runs on the CPU only, not {target}; use bf16")
            if wanted != "int8":
                raise ConfigError(f"this tagger is quantised to int8; load it again for {wanted}")
        self.model.to(target)
        if wanted == "int8" and self.precision != "int8":
            from tagsure.models.quantize import quantize_int8

            self.model = quantize_int8(self.model.eval())  # type: ignore[assignment]
        self.precision = wanted
        return self

    def _emissions(self, batch: Any) -> torch.Tensor:
        """(B, T, K) emission scores of a batch, on the tagger's device, in fp32."""
        device = self.device
        with autocast(device, self.precision):
            return self.model.emissions(move(batch, device)).float()

    @property
    def labels(self) -> list[str]:
        return self.vectorizer.labels

    # -- prediction ---------------------------------------------------------------------------

    @torch.no_grad()
    def emissions(
        self, sentences: Sequence[Sequence[str]], batch_size: int = PREDICT_BATCH_SIZE
    ) -> list[torch.Tensor]:
        """Per-sentence (T, K) emission scores, in input order."""
        data = self.vectorizer.encode(sentences)
        self._attach_features(data)
        out: list[torch.Tensor] = [torch.empty(0)] * len(sentences)
        self.model.eval()
        for ids in bucketed_batches(data.batch_lengths, batch_size):
            scores = self._emissions(data.batch(ids)).cpu()
            for row, i in enumerate(ids):
                out[i] = scores[row, : data.lengths[i]].clone()
        return out

    @torch.no_grad()
    def tag(
        self,
        sentences: Sequence[Sequence[str]],
        with_scores: bool = False,
        batch_size: int = PREDICT_BATCH_SIZE,
    ) -> tuple[list[list[str]], list[np.ndarray] | None]:
        """Tags in the output scheme for pre-tokenised sentences (and token marginals)."""
        data = self.vectorizer.encode(sentences)
        return self._tag_encoded(data, with_scores, batch_size)

    @torch.no_grad()
    def _tag_encoded(
        self, data: Any, with_scores: bool = False, batch_size: int = PREDICT_BATCH_SIZE
    ) -> tuple[list[list[str]], list[np.ndarray] | None]:
        self.model.eval()
        self._attach_features(data)
        head = self.model.head

        def decode(batch: Any) -> tuple[np.ndarray, np.ndarray | None]:
            emissions = self._emissions(batch)
            mask = batch.mask.to(emissions.device)
            path = head.decode(emissions, mask)  # (B, T)
            if not with_scores:
                return path.cpu().numpy(), None
            marginals = head.marginals(emissions, mask)  # (B, T, K)
            chosen = marginals.gather(2, path.unsqueeze(2)).squeeze(2)
            return path.cpu().numpy(), chosen.cpu().numpy()

        labels, schemes = self.labels, (self.model_scheme, self.output_scheme)
        return decode_all(data, decode, labels, *schemes, with_scores, batch_size)

    def _attach_features(self, data: Any) -> None:
        """Features a network computes over a whole input at once (frozen character LMs)."""
        frozen_features = getattr(self.model, "frozen_features", None)
        if frozen_features is not None and getattr(data, "features", 0) is None:
            data.features = frozen_features(data)

    # -- storage ------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tagger to one self-contained file, atomically (see docs/model-format.md)."""
        from tagsure.storage.model_file import save_tagger

        save_tagger(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        verify: bool = True,
        tolerance: float | None = None,
        device: str | torch.device | None = None,
        precision: str | None = None,
    ) -> Tagger:
        """Rebuild a tagger from a file written by :meth:`save`; no pickle is involved.

        With ``verify`` (the default) the fingerprint stored at save time is re-run: the probe's
        tags must be identical and its emission scores bit-identical where the file was saved
        (elsewhere within ``fingerprint.CROSS_PLATFORM_TOLERANCE``, or the ``tolerance`` given:
        max absolute difference), else :class:`ModelFileError` says what differs. The check runs
        on the CPU in fp32, where the file was saved; then the tagger moves to ``device`` (see
        :meth:`to`), where scores agree within that tolerance, not bit for bit. ``precision``
        int8 quantises the verified fp32 network in memory (the file stays fp32).
        """
        from tagsure.storage.model_file import load_tagger

        return load_tagger(path, cls, verify, tolerance).to(device, precision)
