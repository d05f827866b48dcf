"""Which kind of input a file is: a CoNLL column file (tagged or token-only) or raw text.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
    >>> _ = path.write_text("EU B-ORG\\nrejects O\\n")
    >>> sniff_format(path), column_format_of(path).tag_column
    ('conll', -1)
"""

from __future__ import annotations

import os
from typing import Literal

from tagsure.data.conll import DOCSTART, ColumnFormat
from tagsure.data.schemes import split_tag
from tagsure.errors import TagError

InputFormat = Literal["conll", "text"]
INPUT_FORMATS: tuple[InputFormat, ...] = ("conll", "text")


def read_head(path: str | os.PathLike[str], size: int = 65536) -> list[str]:
    """The first lines of a file (up to ``size`` bytes), for sniffing its layout."""
    with open(path, "rb") as handle:
        return handle.read(size).decode("utf-8-sig", errors="replace").splitlines()


def sniff_format(path: str | os.PathLike[str]) -> InputFormat:
    """CoNLL when the first lines are columns ending in a tag or one token each, else text."""
    head = read_head(path)
    lines = [line.split() for line in head[:200] if line.strip()]
    lines = [fields for fields in lines if fields[0] != DOCSTART][:50]
    if not lines:
        return "text"
    widths = {len(fields) for fields in lines}
    if widths == {1}:
        return "conll" if any(not line.strip() for line in head) else "text"
    if len(widths) != 1:
        return "text"
    try:
        for fields in lines:
            split_tag(fields[-1])
    except TagError:
        return "text"
    return "conll"


def column_format_of(path: str | os.PathLike[str]) -> ColumnFormat:
    """How to read a CoNLL file: token-only when its first line has one column, else tagged."""
    first = next((line for line in read_head(path) if line.strip()), "")
    return ColumnFormat(tag_column=None) if len(first.split()) == 1 else ColumnFormat()
