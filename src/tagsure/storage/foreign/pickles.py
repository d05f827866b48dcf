"""PyTorch pickle files, opened only with ``weights_only=True``; code pickles are refused.

A refusal names the globals the pickle would have called (torch's own scan for archives, an
unpickler that imports nothing for other pickles), so the user sees what was not run.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from tagsure.storage.foreign.errors import CheckpointError

# Globals that PyTorch's own weights-only unpickler accepts; only *other* globals are named
# when a plain pickle is refused, so the message points at the real culprit.
_BENIGN_PREFIXES: tuple[str, ...] = ("torch.", "collections.", "_codecs.")
# A legacy torch.save file is several pickles in a row (magic, version, sys info, object, keys).
_MAX_PICKLES = 5

_CONVERT_HINT = (
    "To use its weights, convert it once in an environment where you trust the file: "
    "`obj = torch.load(path, weights_only=False)`, take the state dict out of it "
    "(e.g. `obj['state_dict']` or `model.state_dict()`), and save only tensors with "
    "`safetensors.torch.save_file(state_dict, 'weights.safetensors')` "
    "(or `torch.save(state_dict, 'weights.pt')`); then load that file."
)


def load_torch_file(path: str | Path) -> Any:
    """``torch.load`` on CPU with ``weights_only=True``: tagsure's only ``torch.load``.

    Code pickles and corrupt files raise :class:`CheckpointError`; no code is ever run.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file.")
    try:
        # weights_only=True: the unpickler only rebuilds tensors and plain containers, so a
        # malicious or code-carrying pickle fails here instead of running.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        names = unsafe_globals(path)
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


def unsafe_globals(path: Path) -> list[str]:
    """The globals beyond tensors and containers that a pickle file would call, by name."""
    try:
        if _is_archive(path):
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        with path.open("rb") as fh:
            names = _names_in_pickles(fh)
    except Exception:  # best effort: only used to improve a message
        return []
    return [name for name in names if not name.startswith(_BENIGN_PREFIXES)]


def _is_archive(path: Path) -> bool:
    """A ``torch.save`` zip archive (the format since torch 1.6), not a bare pickle."""
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04" and zipfile.is_zipfile(path)


class _Inert:
    """What every global of a pickle becomes while it is only being read for names."""

    def __new__(cls, *args: object, **kwargs: object) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Inert:
        return _Inert()

    # What unpickling does to a rebuilt object: fill it like a dict or a list, set its state.
    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _NamingUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, names: list[str]) -> None:
        super().__init__(file)
        self.names = names

    def find_class(self, module: str, name: str) -> type:
        # Every global goes through here, so none is imported and none can run.
        qualified = f"{module}.{name}"
        if qualified not in self.names:
            self.names.append(qualified)
        return _Inert

    def persistent_load(self, pid: object) -> None:
        return None


def _names_in_pickles(fh: BinaryIO) -> list[str]:
    names: list[str] = []
    for _ in range(_MAX_PICKLES):
        try:
            _NamingUnpickler(fh, names).load()
        except Exception:  # the end of the pickles, or raw storage bytes after them
            break
    return names


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
