"""One safetensors document: a JSON document in the metadata and named tensors beside it.

The model file, the LM file and the resume state share this reader and writer, so every kind
gets the same atomic writes, truncation, kind and version checks, and memory-light loading.
Every failure is a :class:`ModelFileError` naming the file, the problem and the fix.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tagsure.errors import ModelFileError
from tagsure.storage.atomic import atomic_path
from tagsure.storage.onnx_file import looks_like_onnx

_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit

# safetensors dtype codes -> torch dtypes, for reading tensors without the safetensors parser.
DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U64": torch.uint64,
    "U32": torch.uint32,
    "U16": torch.uint16,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class DocumentKind:
    """How one kind of document is marked: ``key`` holds the JSON; a versioned kind also
    writes ``format`` and ``format_version`` and refuses files newer than ``version``."""

    key: str
    title: str
    not_ours: str  # what to say about a safetensors file of another kind
    version: int | None = 1
    sort_keys: bool = True

    def metadata(self, document: Mapping[str, Any]) -> dict[str, str]:
        """The safetensors ``__metadata__`` that carries ``document``."""
        text = json.dumps(document, ensure_ascii=False, sort_keys=self.sort_keys)
        if self.version is None:
            return {self.key: text}
        return {"format": self.key, "format_version": str(self.version), self.key: text}


@dataclass
class OpenDocument:
    """A checked header and JSON document; tensors are read on demand.

    :meth:`read_into` copies straight into a built network's own tensors (one copy, aligned
    memory, no pages kept mapped); :attr:`tensors` memory-maps them all instead.
    """

    path: Path
    document: dict[str, Any]
    version: int | None
    header: dict[str, Any]

    @functools.cached_property
    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor, memory-mapped (copy-on-write views of the file)."""
        return load_tensors(self.path)

    def names(self) -> set[str]:
        """The names of the tensors in the file."""
        return {name for name in self.header if name != "__metadata__"}

    def read(self, name: str) -> torch.Tensor:
        """One tensor, read into new memory."""
        tensor = torch.empty(self.header[name]["shape"], dtype=self._dtype(name))
        self.read_into({name: tensor})
        return tensor

    def read_into(self, targets: Mapping[str, torch.Tensor]) -> None:
        """Fill each tensor of ``targets`` with the file's tensor of the same name, in place."""
        with self.path.open("rb", buffering=0) as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            for name, target in targets.items():
                entry = self.header[name]
                if target.dtype != self._dtype(name) or list(target.shape) != entry["shape"]:
                    raise ModelFileError(
                        f"{self.path}: tensor {name!r} is {entry['dtype']} {entry['shape']} in "
                        f"the file, but the network has {target.dtype} {list(target.shape)}; "
                        "the file is inconsistent"
                    )
                start, end = entry["data_offsets"]
                fh.seek(8 + header_len + start)
                buffer = target.detach().view(-1).view(torch.uint8).numpy().data
                done = 0
                while done < end - start:  # a single read may return less on huge tensors
                    got = fh.readinto(buffer[done:])
                    if not got:
                        raise ModelFileError(f"{self.path}: truncated while reading {name!r}")
                    done += got

    def _dtype(self, name: str) -> torch.dtype:
        code = self.header[name]["dtype"]
        if code not in DTYPES:
            raise ModelFileError(f"{self.path}: tensor {name!r} has unsupported dtype {code}")
        return DTYPES[code]


def write_document(
    path: str | os.PathLike[str],
    kind: DocumentKind,
    document: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
) -> None:
    """Write ``document`` and ``tensors`` to ``path`` atomically (the old file or the new one)."""
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=kind.metadata(document))


def read_document(path: str | os.PathLike[str], kind: DocumentKind) -> OpenDocument:
    """A checked ``kind`` file with all its tensors memory-mapped."""
    opened = open_document(path, kind)
    opened.tensors  # noqa: B018 -- map them now, so a damaged file fails here
    return opened


def open_document(path: str | os.PathLike[str], kind: DocumentKind) -> OpenDocument:
    """Check a ``kind`` file's header, kind and version and parse its JSON; no tensor is read."""
    header = read_header(path)
    metadata = header.get("__metadata__") or {}
    marked = kind.key in metadata if kind.version is None else metadata.get("format") == kind.key
    if not marked:
        raise ModelFileError(f"{path}: {kind.not_ours}")
    version = None
    if kind.version is not None:
        found = metadata.get("format_version")
        try:
            version = int(str(found))
        except ValueError:
            raise ModelFileError(f"{path}: unreadable format version {found!r}") from None
        if version > kind.version:
            raise ModelFileError(
                f"{path}: written in {kind.title} format {version}, newer than the "
                f"{kind.version} this tagsure reads; upgrade tagsure"
            )
    try:
        document = json.loads(metadata[kind.key])
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except (KeyError, ValueError) as err:
        raise ModelFileError(
            f"{path}: the {kind.key} metadata is missing or not JSON ({err})"
        ) from None
    return OpenDocument(Path(path), document, version, header)


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, memory-mapped (copy-on-write views of the file)."""
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(
            f"{path}: cannot read safetensors file ({exc}). It may be corrupt; re-copy or "
            "re-save it."
        ) from exc


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and check the header of a file tagsure wrote; a foreign file gets a clear error."""
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such file") from None
    # Text or another binary format read as a header length gives an absurd number.
    if len(prefix) == 8 and struct.unpack("<Q", prefix)[0] > _MAX_HEADER_BYTES:
        if looks_like_onnx(path):
            raise ModelFileError(
                f"{path}: an ONNX model, not a .tagsure file; `tagsure predict`, `evaluate`, "
                "`verify`, `serve` and `inspect` take it as it is (in Python: "
                "tagsure.serving.onnx_runtime.OnnxTagger)"
            )
        raise ModelFileError(f"{path}: not a safetensors/tagsure model file")
    return read_safetensors_header(path)


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Any safetensors header, checked against the file size so truncation says so."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ModelFileError(
                    f"{path}: only {size} bytes, too small to be a safetensors file; it is "
                    "truncated or empty. Re-copy or re-save it."
                )
            (header_len,) = struct.unpack("<Q", head)
            if header_len > size - 8:
                raise ModelFileError(
                    f"{path}: truncated safetensors file: its header claims {header_len:,} "
                    f"bytes but the file has only {size:,} bytes in total (an interrupted "
                    "copy, download or save?). Re-copy or re-save it."
                )
            raw = fh.read(header_len)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the file ({exc}).") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(
            f"{path}: not a valid safetensors file: the header is not valid JSON ({exc}). "
            "The file is corrupt or not a safetensors file; re-copy or re-save it."
        ) from exc
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(entry["data_offsets"][1]))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise ModelFileError(
                f"{path}: not a valid safetensors file: tensor {name!r} has no valid "
                "data_offsets in the header. Re-save the file."
            ) from exc
    expected = 8 + header_len + end
    if size < expected:
        raise ModelFileError(
            f"{path}: truncated safetensors file: the header describes {expected:,} bytes "
            f"but the file has only {size:,} ({expected - size:,} missing; an interrupted "
            "copy, download or save?). Re-copy or re-save it."
        )
    return header
