"""Which tagger a model path names, as a small picklable value that each worker loads once.

Batch engines (worker processes, Ray actors, Spark Python workers) must not ship a loaded model
to their workers: they ship a :class:`PredictorSpec` and call :meth:`PredictorSpec.load` there.

Example:
    >>> spec = PredictorSpec("model.onnx")
    >>> spec.is_onnx, spec.verify
    (True, True)
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tagsure.errors import ConfigError
from tagsure.storage.onnx_file import looks_like_onnx

if TYPE_CHECKING:  # a type only: the CLI reads PredictorSpec without importing torch
    from tagsure.writers import Predictor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictorSpec:
    """A model file and how to run it: ONNX files (by name or content) under ONNX Runtime,
    others with torch.

    ``threads`` caps the intra-op threads of this worker (one per core it owns, so N workers on
    N cores do not oversubscribe); ``device`` is ``cpu`` or an accelerator such as ``cuda``,
    ``precision`` fp32, bf16, fp16 or int8 (see :meth:`Tagger.to`); an ONNX file runs on ONNX
    Runtime's CPU as it was exported.
    """

    path: str
    onnx: bool | None = None  # None: decide by the file's suffix
    verify: bool = True
    compile: bool = False
    threads: int | None = None
    device: str | None = None
    precision: str | None = None

    @property
    def is_onnx(self) -> bool:
        return self.onnx if self.onnx is not None else looks_like_onnx(self.path)

    def load(self) -> Predictor:
        """The tagger, loaded (and, for a .tagsure file, its fingerprint verified) here."""
        if self.is_onnx:
            if self.compile:
                raise ConfigError(f"{self.path}: an ONNX model cannot be run under torch.compile")
            if self.device not in (None, "cpu") or self.precision not in (None, "fp32"):
                raise ConfigError(
                    f"{self.path}: an ONNX model runs on ONNX Runtime's CPU as exported (for int8: "
                    "tagsure export --quantize int8); drop --device/--precision"
                )
            from tagsure.serving.onnx_runtime import OnnxTagger

            onnx_tagger = OnnxTagger(self.path, threads=self.threads)
            if self.threads and "torch" in sys.modules:  # torch only where the tagger uses it
                sys.modules["torch"].set_num_threads(self.threads)
            return onnx_tagger
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        from tagsure.tagger import Tagger

        tagger = Tagger.load(self.path, self.verify, device=self.device, precision=self.precision)
        if self.compile:
            from tagsure.training.compiled import compile_tagger

            tagger = compile_tagger(tagger)
        logger.info("loaded %s (%s)", self.path, type(tagger).__name__)
        return tagger
