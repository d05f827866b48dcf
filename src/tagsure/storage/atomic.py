"""Atomic file writes: a killed process leaves the old file or the complete new one, never half.

Data goes to a temporary file beside the target, is flushed, and is renamed over it (atomic).
The result has the mode a plain ``open(path, "w")`` would give it: an existing file's mode, or
0666 less the umask for a new one (``mkstemp`` alone would leave every file 0600).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write; it replaces ``path`` only if the ``with`` block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # After writing: a writer may have replaced the temporary file (safetensors does).
        os.chmod(tmp, _mode_for(target))
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        _fsync(target.parent, os.O_RDONLY)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """A file handle whose content replaces ``path`` only if the ``with`` block succeeds.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_writer(target, "w") as handle:
    ...     _ = handle.write("complete")
    >>> target.read_text()
    'complete'
    """
    encoding = None if "b" in mode else "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that ``path`` is either the old file or the complete new one."""
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def _mode_for(target: Path) -> int:
    """The permission bits ``open(target, "w")`` would leave: kept if it exists, else umask's."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (reading it means setting it; the lock keeps threads from racing)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
