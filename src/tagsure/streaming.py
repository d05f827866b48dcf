"""Stream documents through a tagger: text, JSON lines or Parquet in; JSON lines or Parquet out.

Memory is bounded by a chunk of ``batch_size`` rows (with N workers, chunks of N pieces and 2N
chunks in flight), never by the input: rows are read, tagged and written chunk by chunk, in
input order. Every input field passes through; each output row gains ``entities`` (and
``error``, for a row that could not be tagged; see :mod:`tagsure.rows`).

Example:
    >>> import io, sys
    >>> from tagsure.predictors import PredictorSpec
    >>> source = open_source("docs.jsonl", "auto", "text", 256)              # doctest: +SKIP
    >>> stats = predict_stream(PredictorSpec("model.tagsure"), source,
    ...                        JsonlSink(sys.stdout.buffer), workers=2)      # doctest: +SKIP
"""

from __future__ import annotations

import io
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from tagsure.data.formats import InputFormat, sniff_format, sniff_lines
from tagsure.data.records import Chunk, read_jsonl, read_parquet, read_text
from tagsure.defaults import BATCH_SIZE  # noqa: F401 (importable here, as before)
from tagsure.errors import ConfigError, InputError
from tagsure.predictors import PredictorSpec
from tagsure.rows import MAX_CHARS, RowResult, entities_arrow_type, tag_texts

SNIFF_BYTES = 65536


@dataclass
class Source:
    """An opened input: its format and a lazy stream of its chunks."""

    format: InputFormat
    lines: Iterable[bytes] | None = None  # text, JSON lines, CoNLL read from standard input
    path: str | None = None

    def chunks(self, text_field: str, size: int) -> Iterator[Chunk]:
        if self.format == "parquet":
            assert self.path is not None
            return read_parquet(self.path, text_field, size)
        lines = self.lines if self.lines is not None else open(self.path or "", "rb")  # noqa: SIM115
        if self.format == "jsonl":
            return read_jsonl(lines, text_field, size)
        return read_text(lines, size)


def open_source(path: str, input_format: str = "auto") -> Source:
    """The input at ``path`` (``-``: standard input), its format sniffed when ``auto``."""
    if path != "-":
        if not Path(path).exists():
            raise InputError(f"{path}: no such file; give a file to tag, or '-' for standard input")
        kind = sniff_format(path) if input_format == "auto" else input_format
        return Source(_checked(kind), path=path)
    stdin = sys.stdin.buffer
    head = stdin.read(SNIFF_BYTES)
    head += stdin.readline()  # finish the line the read cut
    if input_format == "auto":
        kind = sniff_lines(head.decode("utf-8-sig", errors="replace").splitlines())
    else:
        kind = input_format
    if kind == "parquet":
        raise ConfigError("Parquet input needs a file (it is read from its end); not '-'")
    return Source(_checked(kind), lines=itertools.chain(io.BytesIO(head), stdin))


def _checked(kind: str) -> InputFormat:
    if kind not in ("conll", "text", "jsonl", "parquet"):
        raise ConfigError(f"unknown input format {kind!r}; use auto, conll, text, jsonl or parquet")
    return kind  # type: ignore[return-value]


class Sink(Protocol):
    def write(self, chunk: Chunk, results: list[RowResult]) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One JSON object per row: its input fields, ``entities`` and (if any) ``error``."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def write(self, chunk: Chunk, results: list[RowResult]) -> None:
        lines = []
        for record, result in zip(chunk.as_records(), results, strict=True):
            record = {**record, "entities": result.entities}
            if result.error is not None:
                record["error"] = result.error
            lines.append(json.dumps(record, ensure_ascii=False, default=str))
        self.handle.write(("\n".join(lines) + "\n").encode("utf-8", errors="replace"))

    def close(self) -> None:
        self.handle.flush()


class ParquetSink:
    """A Parquet file written a row group per chunk; the first chunk fixes the schema."""

    def __init__(self, where: str | IO[bytes]) -> None:
        self.where = where
        self.writer: Any = None  # pyarrow.parquet.ParquetWriter, opened on the first chunk
        self.input_schema: Any = None

    def write(self, chunk: Chunk, results: list[RowResult]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = chunk.table
        if table is None:
            table = pa.Table.from_pylist(chunk.as_records(), schema=self.input_schema)
        table = table.drop_columns([c for c in ("entities", "error") if c in table.column_names])
        if self.input_schema is None:
            self.input_schema = table.schema
        table = table.append_column(
            "entities", pa.array([r.entities for r in results], type=entities_arrow_type())
        ).append_column("error", pa.array([r.error for r in results], type=pa.string()))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.where, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class StreamStats:
    rows: int = 0
    words: int = 0
    errors: int = 0
    seconds: float = 0.0


def predict_stream(
    spec: PredictorSpec,
    chunks: Iterable[Chunk],
    sink: Sink,
    workers: int = 1,
    max_chars: int = MAX_CHARS,
    on_chunk: Callable[[int, int], None] | None = None,
) -> StreamStats:
    """Tag every chunk and write it, in order; ``on_chunk(rows, words)`` after each write.

    ``workers`` 1 tags in this process; more start that many processes that each load the
    model once (see :mod:`tagsure.workers`).
    """
    stats, started = StreamStats(), time.perf_counter()
    for chunk, results in _tagged(spec, chunks, workers, max_chars):
        sink.write(chunk, results)
        words = sum(r.words for r in results)
        stats.rows += len(results)
        stats.words += words
        stats.errors += sum(r.error is not None for r in results)
        if on_chunk is not None:
            on_chunk(len(results), words)
    sink.close()
    stats.seconds = time.perf_counter() - started
    return stats


def _tagged(
    spec: PredictorSpec, chunks: Iterable[Chunk], workers: int, max_chars: int
) -> Iterator[tuple[Chunk, list[RowResult]]]:
    if workers > 1:
        from tagsure.workers import ordered_map

        yield from ordered_map(spec, chunks, workers, max_chars)
        return
    predictor = spec.load()
    for chunk in chunks:
        yield chunk, tag_texts(predictor, chunk.texts, max_chars)
