"""The tagsure model file: safetensors weights plus one JSON document with everything else.

No pickle, so loading a stranger's file runs no code; see docs/model-format.md for the layout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import platform
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

import torch

from tagsure.data.schemes import TagScheme
from tagsure.errors import ModelFileError
from tagsure.models import registry
from tagsure.models.frame import TaggerFrame
from tagsure.storage import fingerprint
from tagsure.storage.document import (
    DTYPES,
    DocumentKind,
    open_document,
    read_document,
    write_document,
)
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
    shapes = {
        name: (str(entry.get("dtype")), list(entry.get("shape", [])))
        for name, entry in opened.header.items()
        if name not in ("__metadata__", fingerprint.TENSOR_NAME)
    }
    check_weights(str(path), document, shapes, weights)
    opened.read_into(weights)
    _check_digest(path, document, weights)
    tagger.model.eval()
    if "fingerprint" in document and fingerprint.TENSOR_NAME in opened.names():
        probe_emissions = opened.read(fingerprint.TENSOR_NAME)
        with reading(str(path), "fingerprint"):
            stored_print = checked_fingerprint(document["fingerprint"], probe_emissions)
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
    shapes = {
        name: (_DTYPE_CODES.get(t.dtype, str(t.dtype)), list(t.shape))
        for name, t in tensors.items()
    }
    check_weights(source, document, shapes, tagger.model.state_dict())
    # strict=True: every tensor of the network must come from the file, and nothing else.
    tagger.model.load_state_dict(tensors, strict=True)
    tagger.model.eval()
    return tagger


def _build(document: dict[str, Any], source: str, make: MakeTagger[T]) -> T:
    """The tagger a model document describes, its network freshly initialised.

    Every field is checked before use: a missing or malformed one is a :class:`ModelFileError`
    naming the file and the field, never a traceback from deep inside the network.
    """
    name = document.get("architecture")
    architecture = registry.by_name(str(name))
    if architecture is None:
        known = [registry.by_kind(kind).name for kind in registry.kinds()]
        raise ModelFileError(
            f"{source}: unknown architecture {name!r}; this tagsure reads {known}. Upgrade tagsure."
        )
    with reading(source, "model_config"):
        config = architecture.config_from_dict(_typed(document, "model_config", dict))
    with reading(source, "labels"):
        labels = _typed(document, "labels", list)
        if not labels or not all(isinstance(label, str) for label in labels):
            raise ValueError("not a list of tag names")
    if len(labels) != config.num_labels:
        raise ModelFileError(
            f"{source}: the file lists {len(labels)} labels but its head has "
            f"{config.num_labels} outputs; the file is inconsistent"
        )
    with reading(source, "tag_scheme"):
        model_scheme = TagScheme(_typed(document, "tag_scheme", str))
    with reading(source, "output_scheme"):
        output_scheme = TagScheme(_typed(document, "output_scheme", str))
    with reading(source, "model_config"):  # sizes of the wrong type fail in the layers
        model = architecture.build(config, registry.Constraints.of(labels, model_scheme))
    with reading(source, "vocabularies"):
        vectorizer = architecture.vectorizer_from_document(document, config, labels)
        for name, size in (("words", "num_words"), ("chars", "num_chars")):
            vocabulary = getattr(vectorizer, name, None)
            if vocabulary is not None and len(vocabulary) != getattr(config, size, len(vocabulary)):
                raise ValueError(
                    f"{len(vocabulary)} {name} for the {getattr(config, size)} rows of {size}"
                )
    metadata = {}
    for key in ("training", "metrics", "versions"):
        with reading(source, key):
            metadata[key] = _typed(document, key, dict, default={})
    with reading(source, "metrics"):
        _check_metrics(metadata["metrics"])
    metadata["card"] = check_card(document.get("card", {}), source)  # none before cards
    with reading(source, "weights_sha256"):
        _typed(document, "weights_sha256", str, default="")
    return make(model, vectorizer, model_scheme, output_scheme, metadata)


@contextlib.contextmanager
def reading(source: str, field: str) -> Iterator[None]:
    """Turn a malformed document field into one ModelFileError naming the file and field."""
    try:
        yield
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        problem = f"missing {err}" if type(err) is KeyError else str(err)
        raise ModelFileError(
            f"{source}: the model document's {field!r} is malformed ({problem}); the file was "
            "edited or damaged: re-save or re-export the model"
        ) from None


_UNSET: Any = object()


def _typed(document: dict[str, Any], key: str, kind: type, default: Any = _UNSET) -> Any:
    if key not in document:
        if default is _UNSET:
            raise ValueError("the field is missing")
        return default
    value = document[key]
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise ValueError(f"expected a JSON {kind.__name__}, found {type(value).__name__}")
    return value


def _check_metrics(metrics: dict[str, Any]) -> None:
    """Stored metrics (``{"dev": Metrics.to_dict()}``) hold numbers where verify reads them."""
    if "dev" in metrics:  # what verify compares with (beside it: the epoch it came from)
        values = metrics["dev"]
        micro = values.get("micro") if isinstance(values, dict) else None
        if not isinstance(micro, dict) or not all(
            isinstance(micro.get(k), int | float) for k in ("precision", "recall", "f1")
        ):
            raise ValueError("'dev' has no micro precision/recall/f1 numbers")


def checked_fingerprint(data: Any, emissions: torch.Tensor) -> fingerprint.Fingerprint:
    """The stored fingerprint, its sentences, tags and emissions of matching sizes."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    stored = fingerprint.Fingerprint.from_json(data, emissions)
    if stored.method not in fingerprint.METHODS:
        raise ValueError(f"unknown probe method {stored.method!r}")
    sentences, tags = stored.sentences, stored.tags
    if not (isinstance(sentences, list) and isinstance(tags, list)) or len(sentences) != len(tags):
        raise ValueError("sentences and tags are not lists of the same length")
    for sentence, sentence_tags in zip(sentences, tags, strict=True):
        if not isinstance(sentence, list) or not isinstance(sentence_tags, list):
            raise ValueError("a probe sentence or its tags is not a list")
        if len(sentence) != len(sentence_tags) or not all(isinstance(t, str) for t in sentence):
            raise ValueError("a probe sentence and its tags differ in length")
    if emissions.shape[0] != sum(map(len, sentences)):
        raise ValueError(
            f"{emissions.shape[0]} rows of probe emissions for {sum(map(len, sentences))} tokens"
        )
    return stored


def check_weights(
    source: str,
    document: dict[str, Any],
    stored: Mapping[str, tuple[str, list[int]]],
    weights: Mapping[str, torch.Tensor],
) -> None:
    """The file's tensors (name -> dtype code, shape) are exactly the network's; otherwise one
    ModelFileError listing every missing, unexpected and mis-shaped tensor."""
    missing = sorted(set(weights) - set(stored))
    unexpected = sorted(set(stored) - set(weights))
    shaped = []
    for name in sorted(set(stored) & set(weights)):
        dtype, shape = stored[name]
        want = (
            _DTYPE_CODES.get(weights[name].dtype, str(weights[name].dtype)),
            list(weights[name].shape),
        )
        if (dtype, shape) != want:
            shaped.append(
                f"{name} is {dtype} {shape} in the file, {want[0]} {want[1]} in the network"
            )
    if missing or unexpected or shaped:
        parts = [f"missing: {', '.join(missing)}"] if missing else []
        parts += [f"unexpected: {', '.join(unexpected)}"] if unexpected else []
        parts += [f"mis-shaped: {'; '.join(shaped)}"] if shaped else []
        raise ModelFileError(
            f"{source}: the weights do not match the {document.get('architecture')} network its "
            f"model_config describes ({' | '.join(parts)}); the config or the weights were "
            "edited: re-save the model from its training run"
        )


_DTYPE_CODES = {dtype: code for code, dtype in DTYPES.items()}


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
