"""Write a tagger's predictions, and stream a whole file through a tagger into them.

Two layouts: ``jsonl``, one JSON object per input line or sentence (its entities, with their
character offsets for raw text), and ``conll``, one ``token [gold] predicted`` line per token
and a blank line after each sentence.

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

import json
import os
from collections.abc import Sequence
from typing import IO, Any, Literal, Protocol

from tagsure.data.conll import Sentence, read_conll
from tagsure.data.formats import InputFormat, column_format_of
from tagsure.tagger import Prediction, chunked

OutputFormat = Literal["conll", "jsonl"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("conll", "jsonl")
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

    A line's JSON record holds the line and its entities (character offsets), a sentence's its
    tokens, tags and entities (token indices); a sentence's CoNLL block keeps its gold tags.
    """
    for item, prediction in zip(inputs, predictions, strict=True):
        if output_format == "jsonl":
            record: dict[str, Any] = (
                {"text": item}
                if isinstance(item, str)
                else {"tokens": prediction.tokens, "tags": prediction.tags}
            )
            record["entities"] = [e.to_dict() for e in prediction.entities]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            continue
        gold = [] if isinstance(item, str) or item.tags is None else [item.tags]
        for row in zip(prediction.tokens, *gold, prediction.tags, strict=True):
            out.write(" ".join(row) + "\n")
        out.write("\n")


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
    if input_format == "conll":
        for sentences in chunked(read_conll(path, column_format_of(path)), chunk_size):
            predictions = tagger.predict([s.tokens for s in sentences])
            write_predictions(sentences, predictions, output_format, out)
    else:
        with open(path, encoding="utf-8-sig") as text:
            for lines in chunked((line.rstrip("\r\n") for line in text), chunk_size):
                write_predictions(lines, tagger.predict(lines), output_format, out)
