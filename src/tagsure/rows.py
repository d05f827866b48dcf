"""Documents in, entity rows out: the one place where a batch of texts becomes entity structs
and per-row errors, shared by the streaming CLI, Ray Data and Spark.

A row is tagged when its text is a non-empty, valid UTF-8 string of at most ``max_chars``
characters; any other row gets an error message and no entities, and never costs its batch
the other rows (a batch that fails as a whole is retried one row at a time).

Example:
    >>> from tagsure.tagger import Entity, Prediction
    >>> class Fixed:  # any Predictor
    ...     def predict(self, texts, with_scores=True):
    ...         return [Prediction(["Ann"], ["B-PER"], [Entity("PER", "Ann", 0, 3, 0.9)])
    ...                 for _ in texts]
    >>> [(r.entities, r.error) for r in tag_texts(Fixed(), ["Ann", "", b"\\xff"])]
    ... # doctest: +NORMALIZE_WHITESPACE
    [([{'label': 'PER', 'start': 0, 'end': 3, 'score': 0.9, 'text': 'Ann'}], None),
     ([], 'empty text'),
     ([], 'invalid UTF-8: byte 0xff at position 0')]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tagsure.data.records import Unreadable, utf8_error

if TYPE_CHECKING:  # types only: rows stay importable without torch
    from tagsure.tagger import Entity
    from tagsure.writers import Predictor

logger = logging.getLogger(__name__)

MAX_CHARS = 100_000  # longer documents are refused per row: split them upstream
# Documents per tagging call in the batch engines (CLI chunks, Ray batches, Spark UDF batches):
# the tagger sorts a call's sentences by length, so a larger call pads less; at 1,024 raw
# CoNLL-2003 documents a call cost ~22% less CPU per word than at 256 (docs/benchmarks.md).
DOCUMENTS_PER_CALL = 1024
# The entity struct, in the order Spark and Arrow columns list its fields.
ENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("label", "string"),
    ("start", "int"),
    ("end", "int"),
    ("score", "float"),
    ("text", "string"),
)
ENTITIES_DDL = "array<struct<" + ",".join(f"{n}:{t}" for n, t in ENTITY_FIELDS) + ">>"


def entities_arrow_type() -> Any:  # -> pyarrow.DataType
    """``list<struct<label, start, end, score, text>>`` as an Arrow type."""
    import pyarrow as pa

    types = {"string": pa.string(), "int": pa.int32(), "float": pa.float32()}
    return pa.list_(pa.struct([(name, types[kind]) for name, kind in ENTITY_FIELDS]))


@dataclass(frozen=True)
class RowResult:
    entities: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    words: int = 0  # tokens tagged, for throughput


def entity_row(entity: Entity) -> dict[str, Any]:
    """One entity as a struct: character offsets, and score None where the tagger has none."""
    return {
        "label": entity.label,
        "start": entity.start,
        "end": entity.end,
        "score": entity.score,
        "text": entity.text,
    }


def check_text(value: object, max_chars: int = MAX_CHARS) -> tuple[str | None, str | None]:
    """``(text, None)`` for a taggable value, else ``(None, error)``.

    Accepts a ``str``, or ``bytes`` that must decode as UTF-8 (a binary Arrow column); a ``str``
    holding lone surrogates (undecodable bytes read with ``surrogateescape``) is invalid UTF-8.
    """
    if isinstance(value, Unreadable):
        return None, value.reason
    if value is None or type(value).__name__ == "NAType" or _is_nan(value):
        return None, "no text (null, or no such field)"
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            return None, utf8_error(err)
    if not isinstance(value, str):
        return None, f"text is a {type(value).__name__}, not a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return None, f"invalid UTF-8: undecodable byte at character {err.start}"
    if not value.strip():
        return None, "empty text"
    if len(value) > max_chars:
        return None, (
            f"text of {len(value):,} characters is longer than the limit of {max_chars:,}; "
            "split the document or raise max_chars"
        )
    return value, None


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def tag_texts(
    predictor: Predictor, values: Sequence[object], max_chars: int = MAX_CHARS
) -> list[RowResult]:
    """One :class:`RowResult` per value, in order: good rows tagged in one call, bad ones
    carrying their error."""
    checked = [check_text(value, max_chars) for value in values]
    good = [i for i, (text, _) in enumerate(checked) if text is not None]
    results = [RowResult(error=error) for _, error in checked]
    texts = [text for text, _ in checked if text is not None]
    try:
        tagged = _tag(predictor, texts)
    except Exception as err:  # noqa: BLE001 - find the row that fails, keep the others
        logger.warning("a batch of %d rows failed (%s); tagging it row by row", len(texts), err)
        tagged = [_tag_alone(predictor, text) for text in texts]
    for i, result in zip(good, tagged, strict=True):
        results[i] = result
    return results


def _tag(predictor: Predictor, texts: list[str]) -> list[RowResult]:
    if not texts:
        return []
    predictions = predictor.predict(texts, with_scores=True)
    return [
        RowResult([entity_row(e) for e in p.entities], None, len(p.tokens)) for p in predictions
    ]


def _tag_alone(predictor: Predictor, text: str) -> RowResult:
    try:
        return _tag(predictor, [text])[0]
    except Exception as err:  # noqa: BLE001 - the row's error, not the batch's
        return RowResult(error=f"tagging failed: {type(err).__name__}: {err}")
