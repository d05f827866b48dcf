"""The tagsure model file: safetensors weights plus one JSON document with everything else.

No pickle, so loading a stranger's file runs no code; see docs/model-format.md for the layout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import platform
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import torch

from tagsure.data.schemes import TagScheme
from tagsure.errors import ModelFileError
from tagsure.models import registry
from tagsure.models.frame import TaggerFrame
from tagsure.storage import fingerprint
from tagsure.storage.document import DocumentKind, open_document, read_document, write_document
from tagsure.storage.model_card import build_card, check_card
from tagsure.version import __version__

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump it, with a loader for the old version, when the layout changes
MODEL_FILE = DocumentKind(
    key="tagsure",
    title="tagsure model",
    not_ours="a safetensors file, but not a tagsure model (no 'format: tagsure' in its "
    "metadata); use `tagsure inspect` on it",
    version=FORMAT_VERSION,
)


class TaggerLike(fingerprint.Probed, Protocol):
    """The parts of a tagger storage reads and writes (storage sits below the Tagger)."""

    model: TaggerFrame
    vectorizer: Any
    model_scheme: TagScheme
    output_scheme: TagScheme
    metadata: dict[str, Any]

    @property
    def labels(self) -> list[str]: ...


T = TypeVar("T", bound=TaggerLike)
# (network, vectorizer, model scheme, output scheme, metadata) -> a tagger: the Tagger class
MakeTagger = Callable[[TaggerFrame, Any, TagScheme, TagScheme, dict[str, Any]], T]


def save_tagger(tagger: TaggerLike, path: str | os.PathLike[str]) -> None:
    """Write ``tagger`` to ``path`` atomically, with its weights digest and fingerprint."""
    document = describe(tagger)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tagger.model.state_dict().items()}
    document["weights_sha256"] = weights_digest(tensors)
    probe = tagger.metadata.get("probe")
    if probe:  # taken now, from the model being written, so it describes exactly this file
        taken = fingerprint.take(tagger, probe)
        document["fingerprint"] = taken.to_json()
        tensors[fingerprint.TENSOR_NAME] = taken.emissions
    write_document(path, MODEL_FILE, document, tensors)


def describe(tagger: TaggerLike) -> dict[str, Any]:
    """The JSON document stored beside the weights (without the weights digest)."""
    architecture = registry.architecture_of(tagger.model)
    return {
        "format_version": FORMAT_VERSION,
        "architecture": architecture.name,
        "model_config": tagger.model.config.to_dict(),
        "labels": tagger.labels,
        "tag_scheme": tagger.model_scheme.value,
        "output_scheme": tagger.output_scheme.value,
        **architecture.vectorizer_to_document(tagger.vectorizer),
        "training": tagger.metadata.get("training", {}),
        "metrics": tagger.metadata.get("metrics", {}),
        "card": build_card(tagger.metadata),
        "versions": {
            "tagsure": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def load_tagger(
    path: str | os.PathLike[str],
    make: MakeTagger[T],
    verify: bool = True,
    tolerance: float | None = None,
) -> T:
    """Rebuild the tagger, reading weights straight into its parameters (one file's worth of
    memory); with ``verify``, re-run the stored probe and refuse on a mismatch."""
    opened = open_document(path, MODEL_FILE)
    document = opened.document
    tagger = _build(document, str(path), make)
    weights = tagger.model.state_dict()
    stored = opened.names() - {fingerprint.TENSOR_NAME}
    if stored != set(weights):
        raise ModelFileError(
            f"{path}: the file's tensors do not match the {document['architecture']} network "
            f"(missing: {sorted(set(weights) - stored)[:5]}, unexpected: "
            f"{sorted(stored - set(weights))[:5]}); the file is inconsistent"
        )
    opened.read_into(weights)
    _check_digest(path, document, weights)
    tagger.model.eval()
    if "fingerprint" in document and fingerprint.TENSOR_NAME in opened.names():
        probe_emissions = opened.read(fingerprint.TENSOR_NAME)
        stored_print = fingerprint.Fingerprint.from_json(document["fingerprint"], probe_emissions)
        tagger.metadata["probe"] = stored_print.sentences
        tagger.metadata["fingerprint"] = stored_print
        if verify:
            check = fingerprint.verify(tagger, stored_print, tolerance)
            if not check.ok:
                raise ModelFileError(
                    f"{path}: the model does not reproduce its fingerprint: "
                    + "; ".join(check.problems)
                )
            if not check.identical_emissions:
                logger.info(
                    "%s: saved on another platform (%s); tags identical, emissions within "
                    "%g (max abs difference %.3g)",
                    path,
                    stored_print.platform or "not recorded",
                    check.tolerance,
                    check.max_abs_difference,
                )
    return tagger


def tagger_from_document(
    document: dict[str, Any], tensors: Mapping[str, torch.Tensor], source: str, make: MakeTagger[T]
) -> T:
    """The tagger a model document describes, with ``tensors`` as its exact weights."""
    tagger = _build(document, source, make)
    # strict=True: every tensor of the network must come from the file, and nothing else.
    tagger.model.load_state_dict(tensors, strict=True)
    tagger.model.eval()
    return tagger


def _build(document: dict[str, Any], source: str, make: MakeTagger[T]) -> T:
    """The tagger a model document describes, its network freshly initialised."""
    name = document.get("architecture")
    architecture = registry.by_name(str(name))
    if architecture is None:
        known = [registry.by_kind(kind).name for kind in registry.kinds()]
        raise ModelFileError(
            f"{source}: unknown architecture {name!r}; this tagsure reads {known}. Upgrade tagsure."
        )
    config = architecture.config_from_dict(document["model_config"])
    labels = document["labels"]
    if len(labels) != config.num_labels:
        raise ModelFileError(
            f"{source}: the file lists {len(labels)} labels but its head has "
            f"{config.num_labels} outputs; the file is inconsistent"
        )
    model_scheme = TagScheme(document["tag_scheme"])
    model = architecture.build(config, registry.Constraints.of(labels, model_scheme))
    vectorizer = architecture.vectorizer_from_document(document, config, labels)
    metadata = {k: document.get(k, {}) for k in ("training", "metrics", "versions")}
    metadata["card"] = check_card(document.get("card", {}), source)  # none before cards
    return make(model, vectorizer, model_scheme, TagScheme(document["output_scheme"]), metadata)


def _check_digest(
    path: str | os.PathLike[str], document: dict[str, Any], weights: Mapping[str, torch.Tensor]
) -> None:
    expected = document.get("weights_sha256")
    if expected is not None and weights_digest(weights) != expected:
        raise ModelFileError(
            f"{path}: the weights do not match the digest stored at save time; "
            "the file was modified or corrupted"
        )


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON document and the (memory-mapped) tensors of a tagsure file, digest checked."""
    read = read_document(path, MODEL_FILE)
    document, tensors = read.document, read.tensors
    _check_digest(
        path, document, {k: v for k, v in tensors.items() if k != fingerprint.TENSOR_NAME}
    )
    return document, tensors


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():  # hashed in place: no copy of the bytes, which may be memory-mapped
            digest.update(tensor.view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()
