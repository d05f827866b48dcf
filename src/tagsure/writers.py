"""Write a tagger's predictions, and stream a whole file through a tagger into them.

Three layouts: ``jsonl``, one JSON object per input line or sentence; ``conll``, one
``token [gold] predicted`` line per token and a blank line after each sentence; and ``html``,
one page with the entities highlighted (:mod:`tagsure.writers_html`).

In JSONL, an entity's ``start``/``end`` are always character offsets into the record's
``text`` (end exclusive). A CoNLL sentence has no text of its own: its record's ``text`` is
its tokens joined by single spaces, and each entity also carries ``token_start``/``token_end``,
the indices of its first token and one past its last.

Example:
    >>> import io
    >>> from tagsure.tagger import Entity, Prediction
    >>> out = io.StringIO()
    >>> p = Prediction(["Ann", "left"], ["B-PER", "O"], [Entity("PER", "Ann", 0, 3)])
    >>> write_predictions(["Ann left"], [p], "jsonl", out)
    >>> out.getvalue()
    '{"text": "Ann left", "entities": [{"label": "PER", "text": "Ann", "start": 0, "end": 3}]}\\n'
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from typing import IO, Any, Literal, Protocol

from tagsure.data.conll import Sentence, read_conll
from tagsure.data.formats import InputFormat, column_format_of
from tagsure.prediction import Prediction, chunked
from tagsure.writers_html import html_predictions

OutputFormat = Literal["conll", "jsonl", "html"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("conll", "jsonl", "html")
CHUNK = 2048  # sentences or lines tagged at a time, so large inputs stream


class Predictor(Protocol):
    """What :func:`tag_file` needs of a tagger (the torch and the ONNX tagger both qualify)."""

    def predict(
        self, texts: Sequence[str | Sequence[str]], with_scores: bool = True
    ) -> list[Prediction]: ...


def write_predictions(
    inputs: Sequence[Sentence | str],
    predictions: Sequence[Prediction],
    output_format: OutputFormat,
    out: IO[str],
) -> None:
    """One record (or one CoNLL block) per input: a raw-text line or a CoNLL sentence.

    A line's JSON record holds the line and its entities; a sentence's its space-joined text,
    tokens, tags and entities (with token indices too); a sentence's CoNLL block keeps its gold
    tags.
    """
    for item, prediction in zip(inputs, predictions, strict=True):
        if output_format == "jsonl":
            record = (
                {"text": item, "entities": [e.to_dict() for e in prediction.entities]}
                if isinstance(item, str)
                else sentence_record(prediction)
            )
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            continue
        gold = [] if isinstance(item, str) or item.tags is None else [item.tags]
        for row in zip(prediction.tokens, *gold, prediction.tags, strict=True):
            out.write(" ".join(row) + "\n")
        out.write("\n")


def sentence_record(prediction: Prediction) -> dict[str, Any]:
    """The JSONL record of a tagged token list: entities with character and token offsets.

    >>> from tagsure.tagger import Entity
    >>> tags = ["O", "O", "B-PER"]
    >>> p = Prediction(["EU", "rejects", "Ann"], tags, [Entity("PER", "Ann", 2, 3)])
    >>> sentence_record(p)["entities"]
    [{'label': 'PER', 'text': 'Ann', 'start': 11, 'end': 14, 'token_start': 2, 'token_end': 3}]
    """
    starts = [0]
    for token in prediction.tokens:
        starts.append(starts[-1] + len(token) + 1)
    entities = []
    for entity in prediction.entities:  # a token list's entities hold token indices
        first, last = entity.start, entity.end
        entities.append(
            {
                **entity.to_dict(),
                "start": starts[first],
                "end": starts[last] - 1,
                "token_start": first,
                "token_end": last,
            }
        )
    return {
        "text": " ".join(prediction.tokens),
        "tokens": prediction.tokens,
        "tags": prediction.tags,
        "entities": entities,
    }


def tag_file(
    tagger: Predictor,
    path: str | os.PathLike[str],
    input_format: InputFormat,
    output_format: OutputFormat,
    out: IO[str],
    chunk_size: int = CHUNK,
) -> None:
    """Tag every sentence (CoNLL) or line (text) of ``path`` and write the predictions.

    The file is read and tagged ``chunk_size`` items at a time, so memory does not grow with it.
    """
    with _writer(output_format, out, os.fspath(path)) as write:
        if input_format == "conll":
            for sentences in chunked(read_conll(path, column_format_of(path)), chunk_size):
                write(sentences, tagger.predict([s.tokens for s in sentences]))
        else:
            with open(path, encoding="utf-8-sig") as text:
                for lines in chunked((line.rstrip("\r\n") for line in text), chunk_size):
                    write(lines, tagger.predict(lines))


def _writer(output_format: OutputFormat, out: IO[str], title: str) -> Any:
    """A context giving ``write(inputs, predictions)``: one HTML page (writers_html), or
    records / CoNLL blocks written as they come."""
    if output_format == "html":
        return html_predictions(out, title)
    return contextlib.nullcontext(
        lambda inputs, predictions: write_predictions(inputs, predictions, output_format, out)
    )
