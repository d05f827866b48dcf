"""Load the model a server runs: a .tagsure file with its fingerprint verified, or an .onnx file.

The server only ever loads the file named on its command line; no request can name a file.
Everything /info reports about the model is gathered here, so the routes stay thin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tagsure.errors import TagsureError
from tagsure.serving.segmentation import SplitPolicy
from tagsure.storage.onnx_file import looks_like_onnx

logger = logging.getLogger(__name__)


class ModelNotServable(TagsureError):
    """The model file can't be served; the message names the file and what to do."""


@dataclass
class LoadedModel:
    tagger: Any  # Tagger or OnnxTagger: both have .predict and .labels
    path: Path
    runtime: str  # "torch" or "onnxruntime"
    architecture: str
    labels: list[str]
    fingerprint: str | None  # SHA-256 of the probe's emission scores stored at save time
    verification: str  # what was checked at load time, in words
    split: SplitPolicy
    details: dict[str, Any] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "runtime": self.runtime,
            "architecture": self.architecture,
            "labels": self.labels,
            "entity_types": sorted({label[2:] for label in self.labels if label[1:2] == "-"}),
            "fingerprint_sha256": self.fingerprint,
            "verification": self.verification,
            **self.details,
        }


def load_model(
    path: Path, threads: int, device: str = "cpu", precision: str = "fp32"
) -> LoadedModel:
    """The model at ``path``, verified (on the CPU in fp32), then placed on ``device`` in
    ``precision`` (see ``Tagger.to``); :class:`ModelNotServable` if it can't be trusted."""
    torch.set_num_threads(threads)
    if not path.is_file():
        raise ModelNotServable(f"{path}: no such model file")
    if looks_like_onnx(path):
        if (device, precision) != ("cpu", "fp32"):
            raise ModelNotServable(
                f"{path}: an ONNX model runs on ONNX Runtime's CPU as exported (for int8: "
                "tagsure export --quantize int8); drop --device and --precision"
            )
        return _load_onnx(path, threads)
    return _load_tagsure(path, device, precision)


def _load_tagsure(path: Path, device: str, precision: str) -> LoadedModel:
    from tagsure import Tagger
    from tagsure.models import registry

    # ModelFileError on a fingerprint mismatch; ConfigError on a device this machine lacks
    tagger = Tagger.load(path, verify=True, device=device, precision=precision)
    stored = tagger.metadata.get("fingerprint")
    if stored is None:
        verification = "weights digest checked; the file stores no fingerprint to re-run"
    else:
        verification = "fingerprint re-run at load: identical tags, bit-identical emissions"
    placed = {"device": str(tagger.device), "precision": tagger.precision}
    architecture = registry.architecture_of(tagger.model).name
    config = tagger.model.config
    return LoadedModel(
        tagger=tagger,
        path=path,
        runtime="torch",
        architecture=architecture,
        labels=list(tagger.labels),
        fingerprint=getattr(stored, "emissions_sha256", None),
        verification=verification,
        split=SplitPolicy.for_model(architecture, config.to_dict()),
        details={
            "model_config": config.to_dict(),
            "versions": tagger.metadata.get("versions"),
            **placed,
        },
    )


def _load_onnx(path: Path, threads: int) -> LoadedModel:
    from tagsure.serving.onnx_runtime import OnnxTagger

    try:
        tagger = OnnxTagger(path, threads=threads)
    except Exception as err:  # onnxruntime raises its own types for unreadable graphs
        raise ModelNotServable(f"{path}: not a loadable ONNX model ({err})") from None
    document = tagger.document
    verification = "tagsure metadata read; ONNX files store no fingerprint to re-run"
    stored = document.get("fingerprint")
    if stored:  # a future exporter may write one: compare tags (ONNX Runtime isn't bitwise)
        tags, _ = tagger.tag(stored["sentences"])
        if tags != stored["tags"]:
            raise ModelNotServable(
                f"{path}: the model does not reproduce its fingerprint's tags; re-export it"
            )
        verification = "fingerprint re-run at load: identical tags"
    return LoadedModel(
        tagger=tagger,
        path=path,
        runtime="onnxruntime",
        architecture=str(document["architecture"]),
        labels=list(tagger.labels),
        fingerprint=(stored or {}).get("emissions_sha256"),
        verification=verification,
        split=SplitPolicy.for_model(str(document["architecture"]), document["model_config"]),
        details={"model_config": document["model_config"], "versions": document.get("versions")},
    )
