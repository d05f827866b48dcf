"""Explicit, strict loading of foreign checkpoints into any ``torch.nn.Module``.

The two failures this module exists to make impossible:

* a checkpoint saved from ``nn.DataParallel`` / DDP / ``torch.compile`` / Lightning carries
  ``module.`` / ``_orig_mod.`` / ``model.`` key prefixes, and the usual "fix"
  (``load_state_dict(..., strict=False)``) then loads *nothing* and says nothing;
* a head silently re-created with another size (a 3-label token head replaced by a
  30,522-way vocabulary head).

:func:`load_into` therefore detects wrapper prefixes, applies explicit renames, and then
refuses to load anything unless every model key is matched (or explicitly allowed to stay
unloaded), every checkpoint key is used (or explicitly ignored), and every shape agrees.
Failures list *all* problems at once in a readable table and leave the model untouched.

Pickled PyTorch files are only ever opened with ``torch.load(..., weights_only=True)``;
a pickle that needs code to load is refused, never executed.
"""

from __future__ import annotations

import fnmatch
import io
import json
import logging
import pickle
import pickletools
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from tagsure.errors import TagsureError

__all__ = [
    "CONTAINER_KEYS",
    "PYTORCH_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "WRAPPER_PREFIXES",
    "CheckpointError",
    "CheckpointMismatchError",
    "KeyProblem",
    "LoadReport",
    "RawCheckpoint",
    "extract_state_dict",
    "load_into",
    "load_torch_file",
    "read_checkpoint",
    "read_safetensors_header",
    "resolve_weights_files",
]

logger = logging.getLogger(__name__)

#: Key segments added by training wrappers, with the wrapper that adds them.
WRAPPER_PREFIXES: dict[str, str] = {
    "module.": "nn.DataParallel / DistributedDataParallel / DeepSpeed",
    "_orig_mod.": "torch.compile",
    "model.": "PyTorch Lightning (LightningModule attribute `model`)",
}

#: Keys under which training frameworks nest the state dict, tried in this order.
CONTAINER_KEYS: tuple[str, ...] = (
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "network",
    "weights",
)

SAFETENSORS_SUFFIXES: tuple[str, ...] = (".safetensors", ".tagsure")
PYTORCH_SUFFIXES: tuple[str, ...] = (".pt", ".pth", ".bin", ".ckpt")

# Globals that PyTorch's own weights-only unpickler accepts; only *other* globals are named
# when a pickle is refused, so the message points at the real culprit.
_BENIGN_GLOBAL_PREFIXES: tuple[str, ...] = ("torch.", "torch ", "collections ", "_codecs ")

_CONVERT_HINT = (
    "To use its weights, convert it once in an environment where you trust the file: "
    "`obj = torch.load(path, weights_only=False)`, take the state dict out of it "
    "(e.g. `obj['state_dict']` or `model.state_dict()`), and save only tensors with "
    "`safetensors.torch.save_file(state_dict, 'weights.safetensors')` "
    "(or `torch.save(state_dict, 'weights.pt')`); then load that file."
)


class CheckpointError(TagsureError):
    """A checkpoint could not be read, or holds something tagsure will not load."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint does not fit the model; nothing was loaded.

    ``report`` is the :class:`LoadReport` with every problem in ``report.problems``.
    """

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------


@dataclass
class RawCheckpoint:
    """Tensors read from a checkpoint, before any key matching.

    ``kind`` is one of ``"tagsure"``, ``"safetensors"``, ``"pytorch"``, ``"mapping"``.
    ``extras`` maps top-level non-state-dict entries (``epoch``, ``optimizer_states``...)
    to a short description; their values are never kept.
    """

    source: str
    kind: str
    tensors: dict[str, Tensor]
    container_key: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)
    skipped_non_tensors: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Read and validate a safetensors header without loading any tensor.

    Checks the byte counts the header promises against the file size, so a truncated file
    (an interrupted copy or save) gets a message saying so instead of a deep parser error.

    >>> import tempfile, torch, safetensors.torch
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
                raise CheckpointError(
                    f"{path}: only {size} bytes, too small to be a safetensors file; it is "
                    "truncated or empty. Re-copy or re-save it."
                )
            (header_len,) = struct.unpack("<Q", head)
            if header_len > size - 8:
                raise CheckpointError(
                    f"{path}: truncated safetensors file: its header claims {header_len:,} "
                    f"bytes but the file has only {size:,} bytes in total (an interrupted "
                    "copy, download or save?). Re-copy or re-save it."
                )
            raw = fh.read(header_len)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc}).") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(
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
            raise CheckpointError(
                f"{path}: not a valid safetensors file: tensor {name!r} has no valid "
                "data_offsets in the header. Re-save the file."
            ) from exc
    expected = 8 + header_len + end
    if size < expected:
        raise CheckpointError(
            f"{path}: truncated safetensors file: the header describes {expected:,} bytes "
            f"but the file has only {size:,} ({expected - size:,} missing; an interrupted "
            "copy, download or save?). Re-copy or re-save it."
        )
    return header


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    read_safetensors_header(path)  # clear messages for truncation before the rust parser
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except SafetensorError as exc:
        raise CheckpointError(
            f"{path}: cannot read safetensors file ({exc}). It may be corrupt; re-copy or "
            "re-save it."
        ) from exc
    return tensors, metadata


def _pickle_globals(data: bytes) -> list[str]:
    """Name the globals a pickle references, by parsing opcodes only (never executing)."""
    found: list[str] = []
    strings: list[str] = []
    memo: dict[int, Any] = {}
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            name = op.name
            if name in ("GLOBAL", "INST"):
                found.append(str(arg))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]} {strings[-1]}")
            elif "UNICODE" in name or name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):
                strings.append(str(arg))
            elif name == "MEMOIZE":
                memo[len(memo)] = strings[-1] if strings else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = strings[-1] if strings else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                value = memo.get(int(arg))
                if isinstance(value, str):
                    strings.append(value)
            if name == "STOP":
                break
    except Exception:  # best effort: only used to improve a message
        pass
    unique = []
    for item in found:
        if not item.startswith(_BENIGN_GLOBAL_PREFIXES) and item not in unique:
            unique.append(item)
    return [item.replace(" ", ".") for item in unique]


def _pickle_bytes(path: Path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            return zf.read(names[0]) if names else b""
    return path.read_bytes()[: 16 * 1024 * 1024]


def _weights_only_reason(text: str) -> str:
    """The informative line of torch's long weights-only error message."""
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            tail = line.split("WeightsUnpickler error:", 1)[1].strip()
            if tail:
                return tail.split(". Please use")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Weights only", "Check the doc", "Please"))]
    return (useful or lines or ["unreadable pickle"])[0][:300]


def load_torch_file(path: str | Path) -> Any:
    """``torch.load`` a file with ``weights_only=True`` on CPU; refuse code pickles.

    Use this instead of calling ``torch.load`` anywhere in tagsure: a pickle that needs
    code to load raises :class:`CheckpointError` (the code is never run), and corrupt or
    truncated files raise :class:`CheckpointError` naming the file.

    >>> import tempfile, torch
    >>> p = Path(tempfile.mkdtemp()) / "w.pt"
    >>> torch.save({"w": torch.ones(2)}, p)
    >>> load_torch_file(p)["w"].tolist()
    [1.0, 1.0]
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file.")
    try:
        # weights_only=True: the unpickler only rebuilds tensors and plain containers, so a
        # malicious or code-carrying pickle fails here instead of running.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        try:
            names = _pickle_globals(_pickle_bytes(path))
        except (OSError, zipfile.BadZipFile):
            names = []
        reason = _weights_only_reason(str(exc))
        if names or "global" in reason.lower():
            refs = f" (it references {', '.join(names[:8])})" if names else f" ({reason})"
            raise CheckpointError(
                f"{path} is a pickle that would run code when loaded{refs}: it holds Python "
                "objects beyond tensors and plain containers, and loading it means executing "
                f"whatever it names. tagsure will not execute it. {_CONVERT_HINT}"
            ) from exc
        raise CheckpointError(
            f"{path}: cannot be loaded as plain weights ({reason}). It is truncated or "
            "corrupt, or a pickle that is not a plain tensor checkpoint (e.g. written with "
            "pickle.dump instead of torch.save); tagsure will not execute it. Re-copy it, "
            f"or: {_CONVERT_HINT}"
        ) from exc
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, AttributeError) as exc:
        reason = str(exc).split(". ")[0] or "unexpected end of file"
        raise CheckpointError(
            f"{path}: cannot read it as a PyTorch checkpoint ({type(exc).__name__}: {reason}). "
            "It is truncated or corrupt (an interrupted save or copy?) or not a PyTorch file; "
            "re-copy or re-save it."
        ) from exc


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"tensor {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
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
    """Find the state dict inside a loaded checkpoint object.

    Tries the common containers (``state_dict``, ``model_state_dict``, ``model``, ``module``,
    ``net``...), also nested one level (``{"model": {"state_dict": ...}}``), then the object
    itself. Returns ``(container_key, mapping)``; nested keys are joined with ``/``.

    >>> import torch
    >>> extract_state_dict({"state_dict": {"w": torch.ones(1)}, "epoch": 3})[0]
    'state_dict'
    """
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
            for key2 in CONTAINER_KEYS:
                inner2 = inner.get(key2)
                if isinstance(inner2, Mapping):
                    candidates.append((f"{key}/{key2}", inner2))
    # One level of arbitrary nesting, e.g. {"checkpoint": {"model": {...}}}.
    for key, inner in obj.items():
        if isinstance(key, str) and key not in CONTAINER_KEYS and isinstance(inner, Mapping):
            for key2 in CONTAINER_KEYS:
                inner2 = inner.get(key2)
                if isinstance(inner2, Mapping):
                    candidates.append((f"{key}/{key2}", inner2))
    # A container wins over loose top-level tensors only if it holds more of them: a plain
    # state dict of a module with a submodule literally named `model` is flat, not nested.
    best: tuple[str | None, Mapping[str, Any]] = (None, obj)
    best_count = _tensor_count(obj)
    for key, inner in candidates:
        count = _tensor_count(inner)
        if count > best_count:
            best, best_count = (key, inner), count
    if best_count == 0:
        keys = ", ".join(repr(k) for k in list(obj)[:12]) or "(none)"
        raise CheckpointError(
            f"no tensors found: the checkpoint is a dict with keys {keys} and none of them "
            f"(nor the containers {', '.join(CONTAINER_KEYS)}) holds a state dict of tensors."
        )
    return best


def resolve_weights_files(directory: str | Path) -> list[Path]:
    """Weight files of a Hugging Face style model directory (safetensors preferred).

    Handles ``model.safetensors``, sharded ``model.safetensors.index.json``,
    ``pytorch_model.bin`` and its sharded index.

    >>> resolve_weights_files(".")  # doctest: +SKIP
    [PosixPath('model.safetensors')]
    """
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


def _sniff(path: Path) -> str:
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


def _read_file(path: Path) -> RawCheckpoint:
    if _sniff(path) == "safetensors":
        tensors, metadata = _read_safetensors(path)
        kind = "tagsure" if metadata.get("format") == "tagsure" else "safetensors"
        return RawCheckpoint(str(path), kind, tensors, metadata=metadata, files=[str(path)])
    obj = load_torch_file(path)
    try:
        container, mapping = extract_state_dict(obj)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return _raw_from_mapping(str(path), "pytorch", obj, container, mapping, [str(path)])


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
    extras = {str(k): _describe(v) for k, v in obj.items() if container and k != top}
    return RawCheckpoint(
        source, kind, tensors, container, extras=extras, skipped_non_tensors=skipped, files=files
    )


def read_checkpoint(source: str | Path | Mapping[str, Any]) -> RawCheckpoint:
    """Read every tensor of a checkpoint file, HF model directory or in-memory mapping.

    >>> import tempfile, torch
    >>> p = Path(tempfile.mkdtemp()) / "ckpt.ckpt"
    >>> torch.save({"state_dict": {"model.w": torch.ones(2)}, "epoch": 3}, p)
    >>> raw = read_checkpoint(p)
    >>> raw.container_key, list(raw.tensors), raw.extras
    ('state_dict', ['model.w'], {'epoch': '3'})
    """
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


# --------------------------------------------------------------------------------------
# Matching keys
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyProblem:
    """One reason a checkpoint does not fit.

    ``kind`` is ``missing`` (model key not in the checkpoint), ``unexpected`` (checkpoint key
    the model lacks), ``shape``, ``dtype``, or ``match`` (no key matched at all).
    """

    kind: str
    key: str
    detail: str
    checkpoint_key: str | None = None
    expected_shape: tuple[int, ...] | None = None
    found_shape: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "key": self.key,
            "detail": self.detail,
            "checkpoint_key": self.checkpoint_key,
            "expected_shape": (
                list(self.expected_shape) if self.expected_shape is not None else None
            ),
            "found_shape": list(self.found_shape) if self.found_shape is not None else None,
        }


@dataclass
class LoadReport:
    """What :func:`load_into` did (or, inside a :class:`CheckpointMismatchError`, refused).

    ``missing`` are model keys left at their current values because ``allow_missing``
    allowed it; ``unexpected`` are checkpoint keys dropped because ``ignore_unexpected``
    allowed it; ``problems`` is empty after a successful load.
    """

    source: str
    kind: str
    model: str
    container_key: str | None = None
    prefix_stripped: str = ""
    prefix_added: str = ""
    renamed: dict[str, str] = field(default_factory=dict)
    loaded_tensors: int = 0
    loaded_elements: int = 0
    model_tensors: int = 0
    model_elements: int = 0
    checkpoint_tensors: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    dtype_casts: dict[str, tuple[str, str]] = field(default_factory=dict)
    skipped_non_tensors: list[str] = field(default_factory=list)
    problems: list[KeyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the load happened (no problems)."""
        return not self.problems

    @property
    def prefix_transform(self) -> str:
        """Human description of the detected wrapper-prefix change."""
        parts = []
        if self.prefix_stripped:
            parts.append(
                f"stripped {self.prefix_stripped!r} ({_wrapper_names(self.prefix_stripped)})"
            )
        if self.prefix_added:
            parts.append(f"added {self.prefix_added!r} ({_wrapper_names(self.prefix_added)})")
        return "; ".join(parts) if parts else "none (keys used as they are)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``json.dumps(report.to_dict())`` works)."""
        return {
            "source": self.source,
            "kind": self.kind,
            "model": self.model,
            "ok": self.ok,
            "container_key": self.container_key,
            "prefix_stripped": self.prefix_stripped,
            "prefix_added": self.prefix_added,
            "prefix_transform": self.prefix_transform,
            "renamed": dict(self.renamed),
            "loaded_tensors": self.loaded_tensors,
            "loaded_elements": self.loaded_elements,
            "model_tensors": self.model_tensors,
            "model_elements": self.model_elements,
            "checkpoint_tensors": self.checkpoint_tensors,
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "dtype_casts": {k: list(v) for k, v in self.dtype_casts.items()},
            "skipped_non_tensors": list(self.skipped_non_tensors),
            "problems": [p.to_dict() for p in self.problems],
        }

    def format_table(self) -> str:
        """Readable multi-line summary; for a failed load, the table of every problem."""
        lines = []
        if self.ok:
            lines.append(f"Loaded {self.source} into {self.model}")
        else:
            lines.append(
                f"Checkpoint {self.source} does not fit {self.model}; nothing was loaded "
                "(the model is unchanged)."
            )
        lines.append(f"  format        : {self.kind}")
        lines.append(f"  container key : {self.container_key or '(top level)'}")
        lines.append(f"  key prefix    : {self.prefix_transform}")
        if self.renamed:
            lines.append(f"  renamed       : {len(self.renamed)} key(s) by rename rules")
        if self.ok:
            lines.append(
                f"  loaded        : {self.loaded_tensors} of {self.model_tensors} model tensors, "
                f"{self.loaded_elements:,} of {self.model_elements:,} elements"
            )
        if self.dtype_casts:
            pairs = sorted({f"{a} -> {b}" for a, b in self.dtype_casts.values()})
            lines.append(f"  dtype casts   : {len(self.dtype_casts)} tensor(s), {', '.join(pairs)}")
        if self.skipped_non_tensors:
            lines.append(f"  non-tensors   : {len(self.skipped_non_tensors)} entries ignored")
        if self.missing:
            verb = "left unloaded" if self.ok else "may stay unloaded"
            lines.append(f"  {verb} (allowed by allow_missing): {len(self.missing)}")
            lines.extend(f"      {key}" for key in self.missing)
        if self.unexpected:
            verb = "dropped from checkpoint" if self.ok else "may be dropped"
            lines.append(f"  {verb} (allowed by ignore_unexpected): {len(self.unexpected)}")
            lines.extend(f"      {key}" for key in self.unexpected)
        if self.renamed:
            lines.append("  renames:")
            lines.extend(f"      {old} -> {new}" for old, new in self.renamed.items())
        if self.problems:
            lines.append("")
            lines.append(_problem_table(self.problems))
            lines.append("")
            lines.extend(_hints(self))
        return "\n".join(lines)


def _wrapper_names(prefix: str) -> str:
    names = []
    for segment in prefix.rstrip(".").split("."):
        names.append(WRAPPER_PREFIXES.get(segment + ".", "custom prefix").split(" (")[0])
    return " + ".join(names)


def _problem_table(problems: Sequence[KeyProblem]) -> str:
    order = {"missing": 0, "unexpected": 1, "shape": 2, "dtype": 3, "match": 4}
    rows = sorted(problems, key=lambda p: (order.get(p.kind, 9), p.key))
    width_kind = max(len("problem"), *(len(p.kind) for p in rows))
    width_key = min(60, max(len("key"), *(len(p.key) for p in rows)))
    header = f"  {'problem':<{width_kind}}  {'key':<{width_key}}  detail"
    out = [header, "  " + "-" * (len(header) + 20)]
    for p in rows:
        out.append(f"  {p.kind:<{width_kind}}  {p.key:<{width_key}}  {p.detail}")
    return "\n".join(out)


def _suggest_patterns(keys: Iterable[str]) -> list[str]:
    heads = sorted({k.split(".")[0] + (".*" if "." in k else "") for k in keys})
    return heads[:6]


def _hints(report: LoadReport) -> list[str]:
    kinds = {p.kind for p in report.problems}
    hints = ["What to do next:"]
    if "match" in kinds:
        hints.append(
            "  - No checkpoint key matches the model even after prefix detection: this is "
            "probably a checkpoint of another architecture. Compare the key names above, "
            "and map them with rename=[(regex, replacement), ...] if they are the same "
            "layers under other names."
        )
    if "missing" in kinds:
        keys = [p.key for p in report.problems if p.kind == "missing"]
        hints.append(
            "  - Missing keys: if these layers should keep their current (freshly initialised) "
            f"values, allow it explicitly, e.g. allow_missing={_suggest_patterns(keys)!r}."
        )
    if "unexpected" in kinds:
        keys = [p.key for p in report.problems if p.kind == "unexpected"]
        hints.append(
            "  - Unexpected keys: if the checkpoint carries layers this model does not have "
            f"(an extra head, an LM head, a loss module...), drop them explicitly, e.g. "
            f"ignore_unexpected={_suggest_patterns(keys)!r}; if they are the same layers "
            "under other names, map them with rename=[(regex, replacement)]."
        )
    if "shape" in kinds:
        key = next(p.key for p in report.problems if p.kind == "shape")
        seg = key.split(".")[0]
        if "." in key:
            regex, moved, pattern, moved_pattern = (
                rf"^{seg}\.",
                f"checkpoint_{seg}.",
                f"{seg}.*",
                f"checkpoint_{seg}.*",
            )
        else:
            regex, moved, pattern, moved_pattern = (
                rf"^{seg}$",
                f"checkpoint_{seg}",
                seg,
                f"checkpoint_{seg}",
            )
        hints.append(
            "  - Shape mismatches mean the checkpoint was trained for another configuration "
            "(e.g. another label set or vocabulary): use a model built with the checkpoint's "
            "sizes. To deliberately keep this model's freshly initialised layer instead, "
            "rename the checkpoint's one out of the way and allow both sides, e.g. "
            f"rename=[({regex!r}, {moved!r})], ignore_unexpected=[{moved_pattern!r}], "
            f"allow_missing=[{pattern!r}]."
        )
    if "dtype" in kinds:
        hints.append(
            "  - dtype mismatches between non-floating tensors are not cast automatically: "
            "convert the checkpoint tensors to the model's dtype first."
        )
    return hints


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def _wrapper_chains(keys: Iterable[str]) -> set[str]:
    """Leading chains of wrapper segments (``module.``, ``_orig_mod.module.``...) in keys."""
    chains = {""}
    segments = {p.rstrip(".") for p in WRAPPER_PREFIXES}
    for key in keys:
        parts = key.split(".")
        chain = ""
        for part in parts[:-1][:3]:
            if part not in segments:
                break
            chain += part + "."
            chains.add(chain)
    return chains


@dataclass
class _Mapping:
    strip: str
    add: str
    targets: dict[str, str]  # checkpoint key -> model key
    renamed: dict[str, str]
    score: int


def _apply_renames(key: str, rules: Sequence[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in rules:
        key = pattern.sub(replacement, key)
    return key


def _best_mapping(
    ckpt_keys: Sequence[str],
    model_keys: set[str],
    rules: Sequence[tuple[re.Pattern[str], str]],
) -> _Mapping:
    """Try every strip/add of wrapper prefixes; keep the one matching the most model keys.

    Ties go to the smallest change (identity first), so a module whose own keys start with
    ``model.`` keeps them. Renames are applied inside the search so that a rename rule
    written for unwrapped names still works on a DataParallel checkpoint.
    """
    best: _Mapping | None = None
    strips = sorted(_wrapper_chains(ckpt_keys), key=len)
    adds = sorted(_wrapper_chains(model_keys), key=len)
    for strip in strips:
        for add in adds:
            if strip and add and (strip.endswith(add) or add.endswith(strip)):
                continue  # equivalent to a shorter change
            targets: dict[str, str] = {}
            renamed: dict[str, str] = {}
            for key in ckpt_keys:
                base = key[len(strip) :] if strip and key.startswith(strip) else key
                base = add + base
                final = _apply_renames(base, rules)
                if final != base:
                    renamed[key] = final
                targets[key] = final
            if len(set(targets.values())) != len(targets):
                continue  # two checkpoint keys would land on one model key
            score = sum(1 for t in targets.values() if t in model_keys)
            cost = len(strip) + len(add)
            if (
                best is None
                or score > best.score
                or (score == best.score and cost < len(best.strip) + len(best.add))
            ):
                best = _Mapping(strip, add, targets, renamed, score)
    if best is None:
        # Only reachable when the rename rules themselves merge keys.
        collisions: dict[str, list[str]] = {}
        for key in ckpt_keys:
            collisions.setdefault(_apply_renames(key, rules), []).append(key)
        clash = next(v for v in collisions.values() if len(v) > 1)
        raise CheckpointError(
            f"rename rules map several checkpoint keys onto one name ({', '.join(clash[:4])}); "
            "make the rules more specific."
        )
    return best


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def _fmt_shape(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_into(
    module: nn.Module,
    source: str | Path | Mapping[str, Tensor],
    *,
    rename: Sequence[tuple[str, str]] = (),
    allow_missing: Sequence[str] = (),
    ignore_unexpected: Sequence[str] = (),
) -> LoadReport:
    """Load a foreign checkpoint into ``module``, strictly and explicitly.

    ``source`` is a ``.safetensors`` / ``.tagsure`` / ``.pt`` / ``.pth`` / ``.bin`` /
    ``.ckpt`` file, a Hugging Face model directory, or an in-memory state dict (or a
    checkpoint dict containing one). Wrapper prefixes (``module.``, ``_orig_mod.``,
    ``model.`` and combinations) are detected and removed or added; ``rename`` rules
    (regex, replacement) are then applied in order. ``allow_missing`` (fnmatch patterns of
    model keys) may stay unloaded and ``ignore_unexpected`` (fnmatch patterns of checkpoint
    keys, after prefix removal and renames) may be dropped; anything else that does not
    match, and any shape mismatch, raises :class:`CheckpointMismatchError` listing every
    problem, and the model is left unchanged. A checkpoint that matches no key at all
    always raises, whatever is allowed.

    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 3))
    >>> wrapped = nn.DataParallel(nn.Sequential(nn.Linear(2, 3)))
    >>> report = load_into(model, wrapped.state_dict())
    >>> report.prefix_stripped, report.loaded_tensors
    ('module.', 2)
    """
    raw = read_checkpoint(source)
    rules = []
    for pattern, replacement in rename:
        try:
            rules.append((re.compile(pattern), replacement))
        except re.error as exc:
            raise CheckpointError(f"rename rule {pattern!r} is not a valid regex: {exc}") from exc

    own = module.state_dict()
    model_keys = set(own)
    mapping = _best_mapping(list(raw.tensors), model_keys, rules)
    report = LoadReport(
        source=raw.source,
        kind=raw.kind,
        model=type(module).__name__,
        container_key=raw.container_key,
        prefix_stripped=mapping.strip,
        prefix_added=mapping.add,
        renamed=mapping.renamed,
        model_tensors=len(own),
        model_elements=sum(t.numel() for t in own.values()),
        checkpoint_tensors=len(raw.tensors),
        skipped_non_tensors=raw.skipped_non_tensors,
    )
    by_target = {target: key for key, target in mapping.targets.items()}

    to_load: dict[str, Tensor] = {}
    for key in own:  # model order, so the table reads like the model
        if key not in by_target:
            if _matches(key, allow_missing):
                report.missing.append(key)
            else:
                report.problems.append(
                    KeyProblem(
                        "missing",
                        key,
                        f"the model expects {_fmt_shape(_shape(own[key]))}; not in the checkpoint",
                        expected_shape=_shape(own[key]),
                    )
                )
            continue
        ckpt_key = by_target[key]
        value = raw.tensors[ckpt_key]
        expected, found = _shape(own[key]), _shape(value)
        if expected != found:
            report.problems.append(
                KeyProblem(
                    "shape",
                    key,
                    f"checkpoint has shape {_fmt_shape(found)}, the model expects "
                    f"{_fmt_shape(expected)}",
                    checkpoint_key=ckpt_key,
                    expected_shape=expected,
                    found_shape=found,
                )
            )
            continue
        want = own[key].dtype
        if value.dtype != want:
            if value.is_floating_point() and own[key].is_floating_point():
                report.dtype_casts[key] = (_dtype_name(value.dtype), _dtype_name(want))
                value = value.to(want)
            else:
                report.problems.append(
                    KeyProblem(
                        "dtype",
                        key,
                        f"checkpoint has dtype {_dtype_name(value.dtype)}, the model expects "
                        f"{_dtype_name(want)}",
                        checkpoint_key=ckpt_key,
                    )
                )
                continue
        to_load[key] = value
    for ckpt_key, target in mapping.targets.items():
        if target in model_keys:
            continue
        if _matches(target, ignore_unexpected) or _matches(ckpt_key, ignore_unexpected):
            report.unexpected.append(target)
        else:
            report.problems.append(
                KeyProblem(
                    "unexpected",
                    target,
                    f"checkpoint has {_fmt_shape(_shape(raw.tensors[ckpt_key]))}; "
                    "the model has no such key"
                    + (f" (checkpoint name {ckpt_key})" if ckpt_key != target else ""),
                    checkpoint_key=ckpt_key,
                    found_shape=_shape(raw.tensors[ckpt_key]),
                )
            )
    if mapping.score == 0:
        # The strict=False trap: nothing lines up. Never a success, whatever was allowed.
        sample = ", ".join(list(raw.tensors)[:3]) or "(no tensors)"
        model_sample = ", ".join(list(own)[:3]) or "(no tensors)"
        report.problems.insert(
            0,
            KeyProblem(
                "match",
                "(all keys)",
                f"0 of {len(raw.tensors)} checkpoint tensors match any of the model's "
                f"{len(own)} keys (checkpoint: {sample}...; model: {model_sample}...)",
            ),
        )

    if report.problems:
        message = report.format_table()
        # INFO: the exception carries the full table; logging it loudly would print it twice.
        logger.info("refused to load %s: %d problem(s)", raw.source, len(report.problems))
        raise CheckpointMismatchError(message, report)

    # Assemble a complete state dict (current values for allowed-missing keys) so the copy
    # goes through load_state_dict(strict=True) and its per-module hooks, never strict=False.
    full = dict(own)
    full.update(to_load)
    try:
        with torch.no_grad():
            module.load_state_dict(full, strict=True)
    except RuntimeError as exc:  # e.g. a custom _load_from_state_dict hook objecting
        raise CheckpointError(
            f"{raw.source}: load_state_dict rejected the matched tensors ({exc})."
        ) from exc
    report.loaded_tensors = len(to_load)
    report.loaded_elements = sum(t.numel() for t in to_load.values())
    logger.info("%s", report.format_table())
    return report
