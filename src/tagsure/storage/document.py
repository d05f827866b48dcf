"""One safetensors document: a JSON document in the metadata and named tensors beside it.

The model file, the character-LM file and the training resume state are all documents of this
shape. This module writes them (atomically, straight from the tensors to disk) and reads them
back: the header is checked for truncation first, then the kind and format version, then the
JSON. Tensors are then either memory-mapped (:func:`read_document`, through
``safetensors.torch.load_file``: nothing is read until it is used) or read straight into the
tensors of a network that is already built (:meth:`OpenDocument.read_into`); neither reads the
whole file into memory and copies it again. Each file kind only declares a
:class:`DocumentKind` and says what its document holds.

Every failure is a :class:`ModelFileError` whose message names the file, the problem and the fix.
"""

from __future__ import annotations

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

__all__ = [
    "Document",
    "DocumentKind",
    "ModelFileError",
    "OpenDocument",
    "check_version",
    "load_tensors",
    "open_document",
    "parse_metadata",
    "read_document",
    "read_header",
    "read_safetensors_header",
    "write_document",
]

_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit


@dataclass(frozen=True)
class DocumentKind:
    """How one kind of tagsure document is marked in the safetensors metadata.

    ``key`` names the metadata entry that holds the JSON document. A versioned kind also writes
    ``format = key`` and ``format_version``, and refuses files newer than ``version``; an
    unversioned kind (``version=None``) is recognised by ``key`` alone. ``not_ours`` is what to
    say about a safetensors file of another kind.
    """

    key: str
    title: str
    not_ours: str
    version: int | None = 1
    sort_keys: bool = True

    def metadata(self, document: Mapping[str, Any]) -> dict[str, str]:
        """The safetensors ``__metadata__`` that carries ``document``."""
        text = json.dumps(document, ensure_ascii=False, sort_keys=self.sort_keys)
        if self.version is None:
            return {self.key: text}
        return {"format": self.key, "format_version": str(self.version), self.key: text}


@dataclass
class Document:
    """A document read back: its JSON, its (memory-mapped) tensors and its format version."""

    document: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    version: int | None


# safetensors dtype codes -> torch dtypes, for reading tensors without the safetensors parser.
_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass
class OpenDocument:
    """A checked header and JSON document whose tensors have not been read yet.

    :meth:`read_into` copies tensors from the file straight into existing tensors (a network's
    own parameters): one copy, into memory torch allocated and aligned, and no file pages kept
    mapped, so loading a model costs one file's worth of memory and computes exactly as the
    network that was saved (a mapped tensor sits at whatever offset the file gives it).
    """

    path: Path
    document: dict[str, Any]
    version: int | None
    header: dict[str, Any]

    def names(self) -> set[str]:
        """The names of the tensors in the file."""
        return {name for name in self.header if name != "__metadata__"}

    def read(self, name: str) -> torch.Tensor:
        """One tensor, read into new memory."""
        entry = self.header[name]
        tensor = torch.empty(entry["shape"], dtype=self._dtype(name))
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
        if code not in _DTYPES:
            raise ModelFileError(f"{self.path}: tensor {name!r} has unsupported dtype {code}")
        return _DTYPES[code]


def write_document(
    path: str | os.PathLike[str],
    kind: DocumentKind,
    document: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
) -> None:
    """Write ``document`` and ``tensors`` to ``path`` atomically (the old file or the new one).

    >>> import tempfile
    >>> kind = DocumentKind("example", "example", "not an example")
    >>> path = Path(tempfile.mkdtemp()) / "doc.safetensors"
    >>> write_document(path, kind, {"labels": ["O"]}, {"w": torch.ones(2)})
    >>> read_document(path, kind).document
    {'labels': ['O']}
    """
    with atomic_path(path) as tmp:
        save_file(dict(tensors), str(tmp), metadata=kind.metadata(document))


def read_document(path: str | os.PathLike[str], kind: DocumentKind) -> Document:
    """The JSON document and memory-mapped tensors of a ``kind`` file, checked as they load."""
    opened = open_document(path, kind)
    return Document(opened.document, load_tensors(path), opened.version)


def open_document(path: str | os.PathLike[str], kind: DocumentKind) -> OpenDocument:
    """Check a ``kind`` file's header, kind and version and parse its JSON; no tensor is read."""
    header = read_header(path)
    document, version = parse_metadata(header.get("__metadata__") or {}, kind, str(path))
    return OpenDocument(Path(path), document, version, header)


def parse_metadata(
    metadata: Mapping[str, str], kind: DocumentKind, source: str
) -> tuple[dict[str, Any], int | None]:
    """Check the kind and version of a metadata mapping and parse its JSON document.

    Any store of string metadata works (safetensors ``__metadata__``, ONNX ``metadata_props``).
    """
    marked = kind.key in metadata if kind.version is None else metadata.get("format") == kind.key
    if not marked:
        raise ModelFileError(f"{source}: {kind.not_ours}")
    version = (
        None
        if kind.version is None
        else check_version(metadata.get("format_version"), kind, source)
    )
    try:
        document = json.loads(metadata[kind.key])
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except (KeyError, ValueError) as err:
        raise ModelFileError(
            f"{source}: the {kind.key} metadata is missing or not JSON ({err})"
        ) from None
    return document, version


def check_version(found: object, kind: DocumentKind, source: str) -> int:
    """``found`` as a format version this tagsure reads, or a :class:`ModelFileError`."""
    try:
        version = int(str(found))
    except ValueError:
        raise ModelFileError(f"{source}: unreadable format version {found!r}") from None
    if kind.version is not None and version > kind.version:
        raise ModelFileError(
            f"{source}: written in {kind.title} format {version}, newer than the "
            f"{kind.version} this tagsure reads; upgrade tagsure"
        )
    return version


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, memory-mapped (pages are read when first touched).

    The tensors are copy-on-write views of the file: writing to one never changes the file.
    """
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
        raise ModelFileError(f"{path}: not a safetensors/tagsure model file")
    return read_safetensors_header(path)


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate any safetensors header without loading a tensor.

    Checks the byte counts the header promises against the file size, so a truncated file
    (an interrupted copy or save) gets a message saying so instead of a deep parser error.

    >>> import tempfile, safetensors.torch
    >>> p = Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> safetensors.torch.save_file({"w": torch.zeros(2, 3)}, str(p))
    >>> read_safetensors_header(p)["w"]["shape"]
    [2, 3]
    """
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
