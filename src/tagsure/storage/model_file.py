"""The tagsure model file: one safetensors file whose metadata holds everything but the weights.

Layout (see docs/model-format.md): a standard safetensors file. Its ``__metadata__`` has
``format = "tagsure"``, ``format_version`` and ``tagsure``, a JSON document with the
architecture, its config, vocabularies, labels, tag schemes, training settings, metrics,
versions and a SHA-256 digest of the weights. No pickle anywhere: loading a file from a
stranger can't run code. Writes go to a temporary file in the same folder that is renamed over
the target only when complete, so a killed process never leaves half a model under the name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from tagsure.data.schemes import TagScheme
from tagsure.errors import TagsureError
from tagsure.models import registry
from tagsure.storage import checkpoints, fingerprint
from tagsure.storage.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from tagsure.tagger import Tagger

FORMAT_NAME = "tagsure"
FORMAT_VERSION = 1
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit


class ModelFileError(TagsureError, ValueError):
    """A file that is not a readable tagsure model; the message names the file and the fix."""


def save_tagger(tagger: Tagger, path: str | os.PathLike[str]) -> None:
    document = describe(tagger)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tagger.model.state_dict().items()}
    document["weights_sha256"] = weights_digest(tensors)
    probe = tagger.metadata.get("probe")
    if probe:  # taken now, from the model being written, so it describes exactly this file
        taken = fingerprint.take(tagger, probe)
        document["fingerprint"] = taken.to_json()
        tensors[fingerprint.TENSOR_NAME] = taken.emissions
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        FORMAT_NAME: json.dumps(document, ensure_ascii=False, sort_keys=True),
    }
    atomic_write_bytes(path, save_safetensors_bytes(tensors, metadata=metadata))


def describe(tagger: Tagger) -> dict[str, Any]:
    """The JSON document stored beside the weights (without the weights digest)."""
    from tagsure import __version__

    architecture = registry.architecture_of(tagger.model)
    return {
        "format_version": FORMAT_VERSION,
        "architecture": architecture.name,
        "model_config": tagger.model.config.to_dict(),
        "labels": tagger.labels,
        "tag_scheme": tagger.model_scheme.value,
        "output_scheme": tagger.output_scheme.value,
        **architecture.encoder_to_document(tagger.encoder),
        "training": tagger.metadata.get("training", {}),
        "metrics": tagger.metadata.get("metrics", {}),
        "versions": {
            "tagsure": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def load_tagger(
    path: str | os.PathLike[str], verify: bool = True, tolerance: float = 0.0
) -> Tagger:
    """Rebuild the tagger; with ``verify``, re-run the stored probe and refuse on a mismatch."""
    document, tensors = read_model_file(path)
    probe_emissions = tensors.pop(fingerprint.TENSOR_NAME, None)
    tagger = tagger_from_document(document, tensors, str(path))
    if "fingerprint" in document and probe_emissions is not None:
        stored = fingerprint.Fingerprint.from_json(document["fingerprint"], probe_emissions)
        tagger.metadata["probe"] = stored.sentences
        tagger.metadata["fingerprint"] = stored
        if verify:
            check = fingerprint.verify(tagger, stored, tolerance)
            if not check.ok:
                raise ModelFileError(
                    f"{path}: the model does not reproduce its fingerprint: "
                    + "; ".join(check.problems)
                )
    return tagger


def tagger_from_document(
    document: dict[str, Any], tensors: Mapping[str, torch.Tensor], source: str
) -> Tagger:
    """The tagger a model document describes, with ``tensors`` as its exact weights."""
    from tagsure.tagger import Tagger

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
    # strict=True: every tensor of the network must come from the file, and nothing else.
    model.load_state_dict(tensors, strict=True)
    model.eval()
    encoder = architecture.encoder_from_document(document, config, labels)
    metadata = {k: document.get(k, {}) for k in ("training", "metrics", "versions")}
    return Tagger(model, encoder, model_scheme, TagScheme(document["output_scheme"]), metadata)


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON document and the tensors of a tagsure file, checked for truncation and digest."""
    header = read_safetensors_header(path)
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT_NAME:
        raise ModelFileError(
            f"{path}: a safetensors file, but not a tagsure model (no "
            "'format: tagsure' in its metadata); use `tagsure inspect` on it"
        )
    try:
        version = int(metadata.get("format_version", ""))
    except ValueError:
        raise ModelFileError(
            f"{path}: unreadable format version {metadata.get('format_version')!r}"
        ) from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in tagsure model format {version}, newer than the "
            f"{FORMAT_VERSION} this tagsure reads; upgrade tagsure"
        )
    try:
        document = json.loads(metadata[FORMAT_NAME])
    except (KeyError, json.JSONDecodeError) as err:
        raise ModelFileError(
            f"{path}: the tagsure metadata is missing or not JSON ({err})"
        ) from None
    tensors = load_safetensors_bytes(Path(path).read_bytes())
    expected = document.get("weights_sha256")
    weights = {k: v for k, v in tensors.items() if k != fingerprint.TENSOR_NAME}
    if expected is not None and weights_digest(weights) != expected:
        raise ModelFileError(
            f"{path}: the weights do not match the digest stored at save time; "
            "the file was modified or corrupted"
        )
    return document, tensors


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and check a safetensors header; truncated or foreign files get a clear error."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    # Text or another binary format read as a header length gives an absurd number.
    if len(prefix) == 8 and struct.unpack("<Q", prefix)[0] > _MAX_HEADER_BYTES:
        raise ModelFileError(f"{path}: not a safetensors/tagsure model file")
    try:
        return checkpoints.read_safetensors_header(path)
    except checkpoints.CheckpointError as err:
        raise ModelFileError(str(err)) from None


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(
            tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        )
    return digest.hexdigest()
