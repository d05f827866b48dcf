"""Read CoNLL-style column files, one sentence at a time, with errors that name file and line.

A column file has one token per line, whitespace- or tab-separated columns, a blank line between
sentences, and optionally ``-DOCSTART-`` lines between documents (CoNLL-2002/2003) and ``#``
comment lines (CoNLL-U, Universal NER). A byte-order mark at the start of any line is ignored:
files joined with ``cat`` carry one where each began. A file whose first token line holds a tab
is tab-separated, so its tokens may hold spaces (WikiANN, UNER). We read it as bytes and decode
line by line so that a bad byte is reported with its line number instead of failing somewhere
inside the codec, and so that memory stays proportional to one sentence, not to the file.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
    >>> _ = path.write_text("EU B-ORG\\nrejects O\\n\\nPeter B-PER\\n")
    >>> [s.tokens for s in read_conll(path)]
    [['EU', 'rejects'], ['Peter']]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tagsure.data.schemes import TagScheme, detect_scheme, split_tag
from tagsure.errors import TagError, TagsureError

DOCSTART = "-DOCSTART-"
BOM = "\ufeff"


class CorpusError(TagsureError, ValueError):
    """Malformed corpus input; the message names the file, the line and the problem."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


@dataclass
class Sentence:
    """A tokenised sentence; ``tags`` is None when the input has no tag column."""

    tokens: list[str]
    tags: list[str] | None = None
    line: int = 0  # line number of the first token, for error messages
    document: int = 0  # index of the -DOCSTART- document this sentence belongs to


@dataclass(frozen=True)
class ColumnFormat:
    """How to read a column file.

    ``tag_column`` is None for untagged input (token per line). Column indices may be negative
    (``-1`` is the last column, the CoNLL-2003 NER tag). ``separator`` None chooses by the
    first token line: single tabs when it holds one (WikiANN: tokens may hold spaces), else runs
    of whitespace (CoNLL-2003); ``"\\t"`` always splits on single tabs, where an empty field is
    an error.
    """

    token_column: int = 0
    tag_column: int | None = -1
    separator: str | None = None
    token_prefix: str = ""  # stripped from every token, e.g. "en:" in WikiANN


@dataclass
class Corpus:
    """Sentences read fully into memory, with the tag scheme detected on them."""

    sentences: list[Sentence]
    scheme: TagScheme | None
    path: str = ""

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def num_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.sentences)


def read_conll(
    path: str | os.PathLike[str], fmt: ColumnFormat | None = None, *, detect_prefix: bool = True
) -> Iterator[Sentence]:
    """Yield the sentences of a column file, streaming.

    With ``detect_prefix`` and no explicit ``fmt.token_prefix``, a WikiANN-style language prefix
    (``en:``) shared by the first token of the file is stripped from every token.
    Raises :class:`CorpusError` (file, line, problem) on malformed input, including a file with no
    sentences.
    """
    fmt = fmt or ColumnFormat()
    prefix = fmt.token_prefix
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    columns: int | None = None
    separator = fmt.separator
    document = 0
    sentences = 0

    def flush() -> Sentence | None:
        nonlocal tokens, tags
        if not tokens:
            return None
        sentence = Sentence(
            tokens, tags if fmt.tag_column is not None else None, first_line, document
        )
        tokens, tags = [], []
        return sentence

    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise CorpusError(
                    path,
                    number,
                    f"not valid UTF-8 (byte {err.start + 1} of the line); re-encode the file "
                    "as UTF-8, e.g. `iconv -f latin1 -t utf-8` for CoNLL-2002's Latin-1 files",
                ) from None
            line = line.lstrip(BOM).rstrip("\r\n")
            if not line.strip():
                if (sentence := flush()) is not None:
                    sentences += 1
                    yield sentence
                continue
            if columns is None and separator is None:
                separator = separator_of(line)  # the first token line decides
            fields = split_fields(line, separator, fmt.separator is None)
            if is_comment(fields, fmt.tag_column, columns):
                continue
            if fields[0] == DOCSTART:
                if (sentence := flush()) is not None:
                    sentences += 1
                    yield sentence
                document += 1
                continue
            if columns is None:
                columns = len(fields)
                if fmt.tag_column is not None and columns < 2:
                    raise CorpusError(
                        path, number, f"expected a token and a tag column, found 1 column {line!r}"
                    )
                if detect_prefix and not prefix:
                    prefix = _language_prefix(fields[fmt.token_column])
            elif len(fields) != columns:
                raise CorpusError(
                    path,
                    number,
                    f"found {len(fields)} columns, expected {columns} as on the "
                    f"first token line: {line!r}",
                )
            try:
                token = fields[fmt.token_column]
                tag = fields[fmt.tag_column] if fmt.tag_column is not None else None
            except IndexError:
                raise CorpusError(
                    path,
                    number,
                    f"no column {fmt.token_column}/{fmt.tag_column} "
                    f"in a line of {len(fields)} columns",
                ) from None
            if prefix and token.startswith(prefix):
                token = token[len(prefix) :]
            if not token.strip():
                raise CorpusError(path, number, "empty token")
            if tag is not None:
                try:
                    split_tag(tag)
                except TagError as err:
                    raise CorpusError(path, number, str(err)) from None
                tags.append(tag)
            if not tokens:
                first_line = number
            tokens.append(token)
    if (sentence := flush()) is not None:
        sentences += 1
        yield sentence
    if sentences == 0:
        raise CorpusError(path, None, "no sentences found (is the file empty?)")


def separator_of(line: str) -> str | None:
    """The separator a file chooses on its first token line: a tab if it holds one."""
    return "\t" if "\t" in line.strip() else None


def split_fields(line: str, separator: str | None, lenient: bool = True) -> list[str]:
    """The columns of a token line: on ``separator``, or on runs of whitespace when None.

    ``lenient`` (a separator chosen by the file, not the user) ignores spaces around tab-separated
    fields and at the end of the line.
    """
    if separator is None:
        return line.split()
    if lenient:
        return [field.strip() for field in line.rstrip().split(separator)]
    return line.split(separator)


def is_comment(fields: list[str], tag_column: int | None, columns: int | None) -> bool:
    """Whether a line's ``fields`` are a ``#`` comment (CoNLL-U's ``# sent_id = 1``, ``# text =
    ...``), not a token line whose token is ``#``: a comment is a line that starts with ``#``
    and does not look like the file's token lines (their number of columns and a valid tag)."""
    if not fields[0].startswith("#"):
        return False
    if len(fields) >= 3 and fields[2] == "=":  # "# key = value"
        return True
    if columns is not None and len(fields) != columns:
        return True
    if tag_column is None:
        return False
    try:
        split_tag(fields[tag_column])
    except (TagError, IndexError):
        return True
    return len(fields) < 2  # "#hashtag B-MISC" is a token line


def _language_prefix(token: str) -> str:
    """WikiANN writes ``en:Paris``; return ``"en:"`` for such a token, else ``""``."""
    head, sep, rest = token.partition(":")
    if sep and rest and len(head) in (2, 3) and head.isalpha() and head.islower():
        return head + sep
    return ""


def load_corpus(path: str | os.PathLike[str], fmt: ColumnFormat | None = None) -> Corpus:
    """Read a whole column file and detect its tag scheme.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
        >>> _ = path.write_text("EU B-ORG\\nrejects O\\n")
        >>> load_corpus(path).scheme.name
        'IOB2'
    """
    sentences = list(read_conll(path, fmt))
    tagged = [s.tags for s in sentences if s.tags is not None]
    scheme = detect_scheme(tagged) if tagged else None
    return Corpus(sentences, scheme, str(Path(path)))
