"""Recognise and read an ONNX file without running it: tagsure's own exports and others.

Every command that takes a model accepts an ``.onnx`` file (``predict``, ``evaluate``,
``verify``, ``serve``, ``inspect``), so the file is recognised by its bytes as well as by its
name: an ONNX model is a protobuf whose first field is the IR version (byte ``0x08``), where a
safetensors file holds its JSON header from byte 8 on.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "weights.bin"
    >>> _ = p.write_bytes(b"\\x08\\x08\\x12\\x07pytorch")
    >>> looks_like_onnx(p)
    True
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tagsure.errors import ModelFileError

METADATA_KEY = "tagsure"  # the metadata_props entry holding the model document


def looks_like_onnx(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ONNX file: named ``.onnx``, or a protobuf that starts like one."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[0] == 0x08 and head[8:9] != b"{"


@dataclass
class OnnxContents:
    """What an ONNX file holds: its tagsure document (None for a foreign export), its weights
    (name, shape, dtype name) and its metadata (the document's JSON text included)."""

    document: dict[str, Any] | None
    tensors: list[tuple[str, tuple[int, ...], str]]
    metadata: dict[str, str]
    producer: str


def read_onnx(path: str | os.PathLike[str]) -> OnnxContents:
    """The metadata and weight shapes of an ONNX file (the graph is parsed, never run)."""
    try:
        import onnx
        from onnx import helper
    except ImportError:
        raise ModelFileError(
            f"{path}: an ONNX model; install the onnx extra to read it: pip install 'tagsure[onnx]'"
        ) from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: a damaged or foreign file
        raise ModelFileError(f"{path}: not a readable ONNX model ({exc}); re-export it") from None
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    document = None
    if METADATA_KEY in metadata:
        try:
            document = json.loads(metadata[METADATA_KEY])
        except ValueError as exc:
            raise ModelFileError(
                f"{path}: its tagsure metadata is not valid JSON ({exc}); re-export the model"
            ) from None
    tensors = [
        (
            init.name,
            tuple(int(d) for d in init.dims),
            str(helper.tensor_dtype_to_np_dtype(init.data_type)),
        )
        for init in model.graph.initializer
    ]
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return OnnxContents(document, tensors, metadata, producer)
