"""What the parser hands a command, importable without the library (so without torch):
``tagsure --help`` and usage errors only read this, the option types and the defaults.

Command bodies in ``cli/main.py`` import :mod:`tagsure.cli.commands` (and, through it, torch)
when they run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tagsure.defaults import BATCH_SIZE, MAX_CHARS
from tagsure.errors import TagsureError

DEMO_EPOCHS = 3  # ~30 s an epoch on 2 idle cores (5,500 tokens/s); test F1 about 74


class CommandFailed(TagsureError):
    """A command's own failure (e.g. verification mismatch), with the exit code to use."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Placement:
    device: str = "cpu"
    precision: str = "fp32"

    def checked(self) -> Placement:
        """Itself, once its device exists here and its precision can predict (the CPU in fp32
        always can: no torch is imported to say so, so an ONNX model runs without it)."""
        if self == Placement():
            return self
        from tagsure.data.devices import check_precision, resolve_device

        resolve_device(self.device)
        check_precision(self.precision, inference=True)
        return self


@dataclass(frozen=True)
class StreamOptions:
    workers: int = 1
    batch_size: int = BATCH_SIZE
    text_field: str = "text"
    max_chars: int = MAX_CHARS
    progress: bool = False


def launched() -> bool:
    """Whether this process is one of a torchrun launch (WORLD_SIZE set)."""
    return "WORLD_SIZE" in os.environ
