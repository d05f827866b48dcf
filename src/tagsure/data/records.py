"""Read documents as chunks of records, streaming: text lines, JSON lines or Parquet row groups.

Each :class:`Chunk` holds at most ``size`` records and, beside them, the raw value of each
record's text (``str``, undecodable ``bytes``, ``None`` when the field is missing, or
:class:`Unreadable` for a line that is not a JSON object), so a bad row is reported for that
row and the rest of the file is still read. Only one chunk is in memory at a time.

Example:
    >>> import io
    >>> lines = io.BytesIO(b'{"id": 1, "text": "Ann left"}\\nnot json\\n')
    >>> chunk = next(read_jsonl(lines, "text", size=10))
    >>> chunk.records
    [{'id': 1, 'text': 'Ann left'}, {}]
    >>> chunk.texts[0], chunk.texts[1].reason
    ('Ann left', 'line 2 is not JSON: Expecting value at column 1')
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tagsure.errors import ConfigError


@dataclass(frozen=True)
class Unreadable:
    """A row whose text could not even be read; ``reason`` becomes its error field."""

    reason: str


@dataclass
class Chunk:
    """Consecutive input rows: ``records`` (pass-through fields) or an Arrow ``table``."""

    texts: list[object]
    records: list[dict[str, Any]] | None = None
    table: Any = None  # pyarrow.Table for Parquet input

    def __len__(self) -> int:
        return len(self.texts)

    def as_records(self) -> list[dict[str, Any]]:
        return self.records if self.records is not None else self.table.to_pylist()


def utf8_error(err: UnicodeDecodeError) -> str:
    """What is wrong with undecodable bytes, in the words a row's error field uses."""
    return f"invalid UTF-8: byte 0x{err.object[err.start]:02x} at position {err.start}"


def _lines(stream: Iterable[bytes]) -> Iterator[bytes]:
    """Lines without their line break (and without a UTF-8 byte-order mark on the first)."""
    for number, line in enumerate(stream):
        if number == 0 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        yield line.rstrip(b"\r\n")


def read_text(stream: Iterable[bytes], size: int) -> Iterator[Chunk]:
    """One record ``{"text": line}`` per line; an undecodable line keeps its bytes as text."""
    for lines in _batched(_lines(stream), size):
        texts: list[object] = []
        records = []
        for raw in lines:
            try:
                text = raw.decode("utf-8")
                texts.append(text)
            except UnicodeDecodeError:
                text = raw.decode("utf-8", errors="replace")
                texts.append(raw)
            records.append({"text": text})
        yield Chunk(texts, records)


def read_jsonl(stream: Iterable[bytes], text_field: str, size: int) -> Iterator[Chunk]:
    """One record per non-blank line, every field kept; ``text_field`` names the text."""
    numbered = ((n, line) for n, line in enumerate(_lines(stream), 1) if line.strip())
    for lines in _batched(numbered, size):
        texts: list[object] = []
        records = []
        for number, raw in lines:
            record, text = _parse_json_line(number, raw, text_field)
            records.append(record)
            texts.append(text)
        yield Chunk(texts, records)


def _parse_json_line(number: int, raw: bytes, text_field: str) -> tuple[dict[str, Any], object]:
    invalid = None
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.decode("utf-8", errors="replace")
        invalid = f"{utf8_error(err)} of line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        reason = invalid or f"line {number} is not JSON: {err.msg} at column {err.colno}"
        return {}, Unreadable(reason)
    if not isinstance(record, dict):
        return {}, Unreadable(f"line {number} is a JSON {type(record).__name__}, not an object")
    return record, Unreadable(invalid) if invalid else record.get(text_field)


def read_parquet(path: str, text_column: str, size: int) -> Iterator[Chunk]:
    """Chunks of ``size`` rows of a Parquet file, every column kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_column not in parquet.schema_arrow.names:
        raise ConfigError(
            f"{path}: no column {text_column!r} (columns: {', '.join(parquet.schema_arrow.names)});"
            " name the text column with --text-field"
        )
    for batch in parquet.iter_batches(batch_size=size):
        table = pa.Table.from_batches([batch])
        yield Chunk(table.column(text_column).to_pylist(), table=table)


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
