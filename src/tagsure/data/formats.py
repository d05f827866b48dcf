"""Which kind of input a file is: a CoNLL column file (tagged or token-only), raw text, JSON
lines or Parquet.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
    >>> _ = path.write_text("EU B-ORG\\nrejects O\\n")
    >>> sniff_format(path), column_format_of(path).tag_column
    ('conll', -1)
"""

from __future__ import annotations

import json
import os
from typing import Literal

from tagsure.data.conll import BOM, DOCSTART, ColumnFormat, is_comment, separator_of, split_fields
from tagsure.data.schemes import split_tag
from tagsure.errors import TagError

InputFormat = Literal["conll", "text", "jsonl", "parquet"]
INPUT_FORMATS: tuple[InputFormat, ...] = ("conll", "text", "jsonl", "parquet")
PARQUET_MAGIC = b"PAR1"


def read_head(path: str | os.PathLike[str], size: int = 65536) -> list[str]:
    """The first lines of a file (up to ``size`` bytes), for sniffing its layout."""
    with open(path, "rb") as handle:
        return handle.read(size).decode("utf-8-sig", errors="replace").splitlines()


def sniff_format(path: str | os.PathLike[str]) -> InputFormat:
    """Parquet by its magic bytes; else as :func:`sniff_lines` judges the first lines."""
    with open(path, "rb") as handle:
        if handle.read(4) == PARQUET_MAGIC:
            return "parquet"
    return sniff_lines(read_head(path))


def sniff_lines(head: list[str]) -> InputFormat:
    """JSON lines when the first line is a JSON object; CoNLL when the first lines are columns
    ending in a tag or one token each; else text."""
    first = next((line.strip() for line in head if line.strip()), "")
    if first.startswith("{"):
        try:
            if isinstance(json.loads(first), dict):
                return "jsonl"
        except json.JSONDecodeError:
            pass
    lines = token_lines(head[:200])[:50]
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


def token_lines(head: list[str]) -> list[list[str]]:
    """The fields of the token lines among ``head``, split as :func:`read_conll` splits them:
    no blank, ``-DOCSTART-`` or ``#`` comment lines, byte-order marks dropped."""
    lines = [line.lstrip(BOM) for line in head]
    lines = [line for line in lines if line.strip()]
    separator = next((separator_of(line) for line in lines if not line.startswith("#")), None)
    fields = [split_fields(line, separator) for line in lines]
    return [f for f in fields if f[0] != DOCSTART and not is_comment(f, -1, None)]


def column_format_of(path: str | os.PathLike[str]) -> ColumnFormat:
    """How to read a CoNLL file: token-only when its first line has one column, else tagged."""
    first = next(iter(token_lines(read_head(path))), [])
    return ColumnFormat(tag_column=None) if len(first) == 1 else ColumnFormat()
