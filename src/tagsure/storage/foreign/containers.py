"""Reading foreign checkpoints into plain tensors, before any key matching.

Safetensors files (memory-mapped), PyTorch pickles (weights only), the dicts training
frameworks nest state dicts in, and Hugging Face model directories with their shard indexes.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from tagsure.errors import ModelFileError
from tagsure.storage import document
from tagsure.storage.foreign.errors import CheckpointError
from tagsure.storage.foreign.keys import dtype_name
from tagsure.storage.foreign.pickles import load_torch_file
from tagsure.storage.foreign.report import jsonable

#: Keys under which training frameworks nest the state dict, tried in this order.
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights")
#: Top-level entries that hold a run's hyper-parameters (Lightning and others).
CONFIG_KEYS = ("hyper_parameters", "hparams", "config")
SAFETENSORS_SUFFIXES = (".safetensors", ".tagsure")
PYTORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


@dataclass
class RawCheckpoint:
    """Tensors read from a checkpoint, with a description of what else it holds."""

    source: str
    kind: str  # tagsure, safetensors, pytorch, mapping or huggingface
    tensors: dict[str, Tensor]
    container_key: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)  # other top-level entries, described
    skipped_non_tensors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    config_key: str | None = None
    config: Any = None  # the hyper-parameters under config_key, JSON-ready


@contextlib.contextmanager
def checkpoint_errors() -> Iterator[None]:
    """Storage's :class:`ModelFileError` raised as a :class:`CheckpointError`, same message."""
    try:
        yield
    except ModelFileError as err:
        raise CheckpointError(str(err)) from None


def describe_value(value: Any) -> str:
    """A short description of a checkpoint entry, without its contents."""
    if isinstance(value, Tensor):
        return f"tensor {tuple(value.shape)} {dtype_name(value.dtype)}"
    if isinstance(value, Mapping):
        return f"dict with {len(value)} entries"
    if isinstance(value, list | tuple):
        return f"{type(value).__name__} of {len(value)}"
    if isinstance(value, bool | int | float | str) or value is None:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return type(value).__name__


def _tensor_count(obj: Any) -> int:
    if not isinstance(obj, Mapping):
        return 0
    return sum(1 for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor))


def extract_state_dict(obj: Any) -> tuple[str | None, Mapping[str, Any]]:
    """``(container key, state dict)`` of a loaded checkpoint: the container (also nested one
    level, keys joined with ``/``) or the object itself, whichever holds the most tensors."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"the checkpoint holds a {type(obj).__name__}, not a dict of tensors; save "
            "`model.state_dict()` instead of the model object."
        )
    candidates: list[tuple[str | None, Mapping[str, Any]]] = []
    for key in CONTAINER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping):
            candidates.append((key, inner))
            candidates.extend(_nested(key, inner))
    # One level of arbitrary nesting, e.g. {"checkpoint": {"model": {...}}}.
    for key, inner in obj.items():
        if isinstance(key, str) and key not in CONTAINER_KEYS and isinstance(inner, Mapping):
            candidates.extend(_nested(key, inner))
    # A container wins over loose top-level tensors only if it holds more of them: a plain
    # state dict of a module with a submodule literally named `model` is flat, not nested.
    best: tuple[str | None, Mapping[str, Any]] = (None, obj)
    best_count = _tensor_count(obj)
    for container, inner in candidates:
        count = _tensor_count(inner)
        if count > best_count:
            best, best_count = (container, inner), count
    if best_count == 0:
        keys = ", ".join(repr(k) for k in list(obj)[:12]) or "(none)"
        raise CheckpointError(
            f"no tensors found: the checkpoint is a dict with keys {keys} and none of them "
            f"(nor the containers {', '.join(CONTAINER_KEYS)}) holds a state dict of tensors."
        )
    return best


def _nested(key: str, inner: Mapping[str, Any]) -> list[tuple[str | None, Mapping[str, Any]]]:
    return [
        (f"{key}/{key2}", inner[key2])
        for key2 in CONTAINER_KEYS
        if isinstance(inner.get(key2), Mapping)
    ]


def resolve_weights_files(directory: str | Path) -> list[Path]:
    """Weight files of a Hugging Face model directory (safetensors preferred), shards too."""
    directory = Path(directory)
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if (directory / single).is_file():
            return [directory / single]
        if (directory / index).is_file():
            try:
                weight_map = json.loads((directory / index).read_text())["weight_map"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(
                    f"{directory / index}: unreadable shard index ({exc}); re-save the model."
                ) from exc
            shards = sorted(set(weight_map.values()))
            missing = [s for s in shards if not (directory / s).is_file()]
            if missing:
                raise CheckpointError(
                    f"{directory}: the shard index lists files that are missing: "
                    f"{', '.join(missing)}. Copy the complete model directory."
                )
            return [directory / s for s in shards]
    candidates = sorted(
        p.name for p in directory.iterdir() if p.suffix in SAFETENSORS_SUFFIXES + PYTORCH_SUFFIXES
    )
    hint = f" Files that look like weights: {', '.join(candidates)}." if candidates else ""
    raise CheckpointError(
        f"{directory}: a directory without model.safetensors or pytorch_model.bin (or their "
        f"sharded index); pass the weights file itself.{hint}"
    )


def sniff(path: Path) -> str:
    """``"safetensors"`` or ``"pytorch"``, by suffix, else by the first bytes."""
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return "safetensors"
    if suffix in PYTORCH_SUFFIXES:
        return "pytorch"
    # Unknown suffix: look at the bytes. safetensors starts with a u64 length then '{'.
    with path.open("rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if zipfile.is_zipfile(path) or head[:1] == b"\x80":
        return "pytorch"
    raise CheckpointError(
        f"{path}: unknown checkpoint format (suffix {suffix or '(none)'!r}). tagsure reads "
        f"{', '.join(SAFETENSORS_SUFFIXES + PYTORCH_SUFFIXES)} files and Hugging Face model "
        "directories."
    )


def read_torch_file(path: Path) -> RawCheckpoint:
    """The state dict of a PyTorch file (weights only), with what else the file holds."""
    obj = load_torch_file(path)
    try:
        container, mapping = extract_state_dict(obj)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return _raw_from_mapping(str(path), "pytorch", obj, container, mapping, [str(path)])


def _read_file(path: Path) -> RawCheckpoint:
    if sniff(path) == "pytorch":
        return read_torch_file(path)
    with checkpoint_errors():
        metadata = dict(document.read_safetensors_header(path).get("__metadata__") or {})
        tensors = document.load_tensors(path)  # memory-mapped
    kind = "tagsure" if metadata.get("format") == "tagsure" else "safetensors"
    return RawCheckpoint(str(path), kind, tensors, metadata=metadata, files=[str(path)])


def _raw_from_mapping(
    source: str,
    kind: str,
    obj: Mapping[str, Any],
    container: str | None,
    mapping: Mapping[str, Any],
    files: list[str],
) -> RawCheckpoint:
    tensors = {k: v for k, v in mapping.items() if isinstance(k, str) and isinstance(v, Tensor)}
    skipped = [str(k) for k, v in mapping.items() if not isinstance(v, Tensor)]
    top = container.split("/")[0] if container else None
    extras = {str(k): describe_value(v) for k, v in obj.items() if container and k != top}
    raw = RawCheckpoint(
        source, kind, tensors, container, extras=extras, skipped_non_tensors=skipped, files=files
    )
    if container:
        raw.config_key = next(
            (k for k in CONFIG_KEYS if k != top and isinstance(obj.get(k), Mapping)), None
        )
        raw.config = jsonable(obj[raw.config_key]) if raw.config_key else None
    return raw


def read_checkpoint(source: str | Path | Mapping[str, Any]) -> RawCheckpoint:
    """Read every tensor of a checkpoint file, HF model directory or in-memory mapping."""
    if isinstance(source, Mapping):
        container, mapping = extract_state_dict(source)
        return _raw_from_mapping("<in-memory mapping>", "mapping", source, container, mapping, [])
    path = Path(source)
    if path.is_dir():
        files = resolve_weights_files(path)
        merged = RawCheckpoint(str(path), "huggingface", {}, files=[str(f) for f in files])
        for file in files:
            part = _read_file(file)
            merged.tensors.update(part.tensors)
            merged.metadata.update(part.metadata)
        return merged
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory.")
    return _read_file(path)
