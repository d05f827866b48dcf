"""Results JSON name no path of one machine.

Every benchmark passes what it writes under ``benchmarks/results/`` through :func:`portable`:
each absolute path in it (a config's ``train``, a model file, a path inside a recorded command)
becomes the form a fresh clone would write: the corpora as ``../shared/data/...`` (or
``$TAGSURE_SHARED_DATA/...`` when that variable names the folder), files of the clone relative
to it, a sibling folder as ``../name``, an installed package's folder by its package path, and
the temporary and home folders as ``$TMPDIR/...`` and ``~/...``.
"""

from __future__ import annotations

import os
import re
import site
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
# an absolute path at the start of a string or after a space or "=" (KEY=PATH, --flag=PATH)
ABSOLUTE = re.compile(r"(?:^|(?<=[\s=]))/[^\s,;\"']+")


def _roots() -> list[tuple[Path, str]]:
    """(folder, how to write it), the most specific first."""
    named = os.environ.get("TAGSURE_SHARED_DATA")
    roots = [(Path(named), "$TAGSURE_SHARED_DATA")] if named else []
    roots.append((DEFAULT_DATA, "../shared/data"))
    packages = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    roots += [(Path(folder), "") for folder in sorted(packages)]
    roots += [(REPO, "."), (REPO.parent, ".."), (Path(tempfile.gettempdir()), "$TMPDIR")]
    roots.append((Path.home(), "~"))
    return roots


def portable_path(text: str) -> str:
    """``text`` (an absolute path) as a fresh clone would write it; other paths unchanged."""
    path = Path(os.path.normpath(text))
    for candidate in dict.fromkeys([path, path.resolve()]):
        for root, label in _roots():
            for base in dict.fromkeys([root, root.resolve()]):
                if candidate == base or base in candidate.parents:
                    rest = candidate.relative_to(base).as_posix()
                    if label == "":  # inside site-packages
                        return f"{rest} (the installed package's folder)"
                    if label == ".":
                        return rest if rest != "." else "."
                    return label if rest == "." else f"{label}/{rest}"
    return text


def portable(value: Any) -> Any:
    """``value`` (JSON-like) with every absolute path in its strings made portable."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item) for item in value]
    if isinstance(value, str) and "/" in value:
        return ABSOLUTE.sub(lambda match: portable_path(match.group(0)), value)
    return value
