"""See entities: one self-contained HTML page with every entity highlighted in its text, in
the style of spaCy's displaCy (a colour per label, the label as a badge after the words).

The page needs nothing but itself: inline CSS, no script, no font or stylesheet from a CDN, so
it opens offline and can be mailed. It is written as the input streams (a header, then one
block per document or sentence, then the legend), so a large input never sits in memory. Every
piece of input text is escaped: a ``<script>`` in a document shows as text.

With gold tags (``tagsure evaluate --html``) each sentence shows its errors: an entity found
with the wrong type (``LOC, gold PER``), a spurious one (predicted, not in gold) and a missed
one (in gold, not predicted), counted as conlleval does: a predicted entity is right only with
the gold entity's exact boundaries and type. Where a missed entity overlaps a predicted one
(a boundary error), the gold entities are shown on a second line below the sentence.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> with HtmlPage(out, "demo") as page:
    ...     page.add("Ann <3 Paris", [Mark(0, 3, "PER"), Mark(7, 12, "LOC")])
    >>> "Ann<span class=\\"badge\\">PER</span></mark> &lt;3 " in out.getvalue()
    True
"""

from __future__ import annotations

import html
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from tagsure.data.conll import Sentence
from tagsure.data.records import Chunk
from tagsure.data.schemes import Span, TagScheme, to_spans

if TYPE_CHECKING:  # a type only: the HTML sink runs without torch
    from tagsure.prediction import Prediction

# displaCy's colours for the usual types; any other label gets a pastel hue from its name.
COLOURS = {
    "PER": "#aa9cfc",
    "PERSON": "#aa9cfc",
    "ORG": "#7aecec",
    "LOC": "#ff9561",
    "GPE": "#feca74",
    "MISC": "#c887fb",
    "NORP": "#c887fb",
    "FAC": "#9cc9cc",
    "PRODUCT": "#bfeeb7",
    "EVENT": "#ffeb80",
    "WORK_OF_ART": "#f0d0ff",
    "LAW": "#ff8197",
    "LANGUAGE": "#ff8197",
    "DATE": "#bfe1d9",
    "TIME": "#bfe1d9",
    "MONEY": "#e4e7d2",
    "QUANTITY": "#e4e7d2",
    "ORDINAL": "#e4e7d2",
    "CARDINAL": "#e4e7d2",
    "PERCENT": "#e4e7d2",
}
KINDS = ("entity", "wrong", "spurious", "missed")
STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 60em; padding: 0 1em; color: #222; }
h1 { font-size: 1.3em; } .meta { color: #666; font-size: 0.9em; }
.doc { line-height: 2.6; margin: 0 0 1em; padding-bottom: 0.6em; border-bottom: 1px solid #eee;
       white-space: pre-wrap; }
.doc .gold { display: block; color: #555; }
.doc .gold::before, .doc .pred::before { content: attr(data-name) " "; font-size: 0.7em;
       color: #888; text-transform: uppercase; }
mark.ent { padding: 0.25em 0.4em; margin: 0 0.15em; border-radius: 0.35em;
       line-height: 1; box-decoration-break: clone; -webkit-box-decoration-break: clone; }
mark.ent .badge { font-size: 0.65em; font-weight: bold; text-transform: uppercase;
       vertical-align: middle; margin-left: 0.5em; }
mark.wrong { outline: 2px solid #e67e00; }
mark.spurious { outline: 2px dashed #d62728; }
mark.missed { background: transparent !important; outline: 2px dashed #555; }
.error { color: #d62728; } .legend mark { margin-right: 0.6em; }
"""


class TextOut(Protocol):
    def write(self, text: str, /) -> int: ...


@dataclass(frozen=True)
class Mark:
    """A highlighted span ``[start, end)`` of a document's characters.

    ``kind`` is ``entity`` (a prediction, or a correct one against gold), ``wrong`` (predicted
    ``label`` where gold says ``gold``), ``spurious`` or ``missed`` (a gold entity).
    """

    start: int
    end: int
    label: str
    kind: str = "entity"
    gold: str | None = None
    score: float | None = None


def colour(label: str) -> str:
    """The label's background colour: displaCy's for the usual types, else a stable hue."""
    if label in COLOURS:
        return COLOURS[label]
    return f"hsl({zlib.crc32(label.encode('utf-8')) % 360}, 75%, 82%)"


def sentence_text(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Tokens joined by spaces, and each token's character span in that text."""
    offsets, position = [], 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    return " ".join(tokens), offsets


def span_marks(
    spans: Sequence[Span], offsets: Sequence[tuple[int, int]], kind: str = "entity"
) -> list[Mark]:
    """Token spans as character marks over a :func:`sentence_text`."""
    return [Mark(offsets[s.start][0], offsets[s.end - 1][1], s.label, kind) for s in spans]


def error_marks(
    gold: Sequence[Span], predicted: Sequence[Span], offsets: Sequence[tuple[int, int]]
) -> tuple[list[Mark], list[Mark] | None]:
    """The predicted line's marks (right, wrong type, spurious, and the missed entities that
    overlap no prediction) and, where a missed entity overlaps one, the gold line's marks."""
    gold_at = {(s.start, s.end): s.label for s in gold}
    predicted_at = {(s.start, s.end) for s in predicted}
    line: list[Mark] = []
    for s in predicted:
        label = gold_at.get((s.start, s.end))
        kind = "entity" if label == s.label else "spurious" if label is None else "wrong"
        line.append(Mark(offsets[s.start][0], offsets[s.end - 1][1], s.label, kind, label))
    missed = [s for s in gold if (s.start, s.end) not in predicted_at]
    covered = [False] * (len(offsets) + 1)
    for s in predicted:
        covered[s.start : s.end] = [True] * (s.end - s.start)
    if not any(any(covered[s.start : s.end]) for s in missed):
        line += span_marks(missed, offsets, "missed")
        return sorted(line, key=lambda m: m.start), None
    # A boundary error: every gold entity on a line of its own, the missed ones marked there.
    gold_line = [
        Mark(
            m.start, m.end, m.label, "missed" if (s.start, s.end) not in predicted_at else "entity"
        )
        for s, m in zip(gold, span_marks(gold, offsets), strict=True)
    ]
    return sorted(line, key=lambda m: m.start), gold_line


def render_line(text: str, marks: Sequence[Mark]) -> str:
    """``text`` with each mark as a ``<mark>`` (label badge inside), the rest escaped.

    Marks must not overlap; one that does, or that falls outside the text, is left out.
    """
    out, position = [], 0
    for mark in sorted(marks, key=lambda m: (m.start, m.end)):
        if mark.start < position or mark.end > len(text) or mark.start >= mark.end:
            continue
        out.append(html.escape(text[position : mark.start]))
        out.append(_mark(text[mark.start : mark.end], mark))
        position = mark.end
    out.append(html.escape(text[position:]))
    return "".join(out)


def _mark(words: str, mark: Mark) -> str:
    badge = mark.label
    title = mark.label if mark.score is None else f"{mark.label} {mark.score:.2f}"
    if mark.kind == "wrong":
        badge = f"{mark.label}, gold {mark.gold}"
        title = f"predicted {mark.label}, gold {mark.gold}"
    elif mark.kind in ("spurious", "missed"):
        badge = f"{mark.label} {mark.kind}"
        title = f"{mark.kind}: {mark.label}"
    kind = "" if mark.kind == "entity" else f" {mark.kind}"
    return (
        f'<mark class="ent{kind}" data-label="{html.escape(mark.label)}" '
        f'style="background: {colour(mark.label)}" title="{html.escape(title)}">'
        f'{html.escape(words)}<span class="badge">{html.escape(badge)}</span></mark>'
    )


class HtmlPage:
    """The page, written as it goes: the header at once, :meth:`add` per document, the legend
    and the closing tags on :meth:`close` (or leaving the ``with`` block)."""

    def __init__(self, out: TextOut, title: str, note: str = "") -> None:
        self.out = out
        self.labels: set[str] = set()
        self.counts = dict.fromkeys(KINDS, 0)
        self.documents = 0
        self.closed = False
        meta = f'<p class="meta">{html.escape(note)}</p>\n' if note else ""
        out.write(
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{meta}"
        )

    def add(self, text: str, marks: Sequence[Mark], gold: Sequence[Mark] | None = None) -> None:
        """One document or sentence; with ``gold``, a second line of gold entities below."""
        self.documents += 1
        for mark in [*marks, *(gold or [])]:
            self.labels.add(mark.label)
        for mark in marks:
            self.counts[mark.kind] += 1
        if gold is not None:
            self.counts["missed"] += sum(m.kind == "missed" for m in gold)
            self.out.write(
                f'<div class="doc"><span class="pred" data-name="predicted">'
                f"{render_line(text, marks)}</span>"
                f'<span class="gold" data-name="gold">{render_line(text, gold)}</span></div>\n'
            )
        else:
            self.out.write(f'<div class="doc">{render_line(text, marks)}</div>\n')

    def add_error(self, message: str) -> None:
        """A document that could not be tagged: its error in its place."""
        self.documents += 1
        self.out.write(f'<div class="doc error">{html.escape(message)}</div>\n')

    def add_prediction(self, item: Sentence | str, prediction: Prediction) -> None:
        """A tagger's prediction for a raw text (character offsets) or a sentence (tokens)."""
        if isinstance(item, str):
            marks = [Mark(e.start, e.end, e.label, score=e.score) for e in prediction.entities]
            self.add(item, marks)
            return
        text, offsets = sentence_text(prediction.tokens)
        marks = [
            Mark(offsets[e.start][0], offsets[e.end - 1][1], e.label, score=e.score)
            for e in prediction.entities
        ]
        self.add(text, marks)

    def add_evaluated(
        self, sentence: Sentence, predicted: Sequence[str], scheme: TagScheme
    ) -> None:
        """A gold sentence and the tagger's tags, its errors marked (see the module doc)."""
        text, offsets = sentence_text(sentence.tokens)
        gold = to_spans(sentence.tags or [], scheme)
        marks, gold_line = error_marks(gold, to_spans(predicted, scheme), offsets)
        self.add(text, marks, gold_line)

    def close(self, summary: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        legend = "".join(
            _mark(label, Mark(0, len(label), label)).replace(
                f'<span class="badge">{html.escape(label)}</span>', ""
            )
            for label in sorted(self.labels)
        )
        text = html.escape(summary) if summary else f"{self.documents} documents"
        self.out.write(
            f'<p class="legend meta">{legend}</p>\n<p class="meta summary">{text}</p>\n'
            "</body>\n</html>\n"
        )

    def __enter__(self) -> HtmlPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_summary(page: HtmlPage) -> str:
    """``"3 sentences: 10 right, 1 wrong type, 2 spurious, 1 missed"``."""
    c = page.counts
    return (
        f"{page.documents} sentences: {c['entity']} entities right, {c['wrong']} wrong type, "
        f"{c['spurious']} spurious, {c['missed']} missed"
    )


class HtmlSink:
    """The streaming predictor's sink for ``--format html``: a block per row, its entities
    (character offsets into its text) highlighted, its error in its place."""

    def __init__(self, handle: IO[bytes], title: str) -> None:
        self.handle = handle
        self.page = HtmlPage(_Utf8(handle), title)

    def write(self, chunk: Chunk, results: Sequence[Any]) -> None:  # rows.RowResult
        for text, result in zip(chunk.texts, results, strict=True):
            if result.error is not None:
                self.page.add_error(f"error: {result.error}")
                continue
            if isinstance(text, bytes | bytearray | memoryview):
                text = bytes(text).decode("utf-8")
            marks = [
                Mark(e["start"], e["end"], e["label"], score=e.get("score"))
                for e in result.entities
            ]
            self.page.add(str(text), marks)

    def close(self) -> None:
        self.page.close()
        self.handle.flush()


class _Utf8:
    """``write(str)`` onto a binary handle, as UTF-8."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    def write(self, text: str) -> int:
        return self.handle.write(text.encode("utf-8"))


@contextmanager
def html_predictions(out: TextOut, title: str) -> Iterator[Any]:
    """A ``write(inputs, predictions)`` for :func:`tagsure.writers.tag_file` that fills one
    page, closed when the block ends."""
    with HtmlPage(out, title) as page:

        def write(inputs: Sequence[Sentence | str], predictions: Sequence[Prediction]) -> None:
            for item, prediction in zip(inputs, predictions, strict=True):
                page.add_prediction(item, prediction)

        yield write
