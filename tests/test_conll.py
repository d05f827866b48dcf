"""Reading column files: every supported layout, and an error naming file and line for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagsure.data.conll import ColumnFormat, CorpusError, load_corpus, read_conll
from tagsure.data.schemes import TagScheme


def write(tmp_path: Path, data: bytes | str, name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_conll2003_layout_with_docstart_and_four_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
        "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n",
    )
    sentences = list(read_conll(path))
    assert [s.tokens for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    assert [s.document for s in sentences] == [1, 2]
    assert [s.line for s in sentences] == [3, 8]


def test_crlf_bom_tabs_and_wikiann_prefix(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfen:New\tB-LOC\r\nen:York\tI-LOC\r\n\r\nen:Hi\tO\r\n")
    corpus = load_corpus(path)
    assert [s.tokens for s in corpus.sentences] == [["New", "York"], ["Hi"]]
    assert corpus.scheme is TagScheme.IOB2


def test_tab_separator_keeps_spaces_inside_tokens(tmp_path: Path) -> None:
    path = write(tmp_path, "New York\tB-LOC\nis\tO\n")
    fmt = ColumnFormat(separator="\t")
    assert next(read_conll(path, fmt)).tokens == ["New York", "is"]


def test_chosen_columns_and_untagged_input(tmp_path: Path) -> None:
    path = write(tmp_path, "1 EU B-ORG\n2 rejects O\n")
    sentence = next(read_conll(path, ColumnFormat(token_column=1, tag_column=2)))
    assert (sentence.tokens, sentence.tags) == (["EU", "rejects"], ["B-ORG", "O"])
    untagged = write(tmp_path, "EU\nrejects\n", "plain.txt")
    assert next(read_conll(untagged, ColumnFormat(tag_column=None))).tags is None


def test_iob1_and_bioes_files_are_detected(tmp_path: Path) -> None:
    iob1 = write(tmp_path, "EU I-ORG\nrejects O\nGerman I-MISC\n", "iob1.txt")
    bioes = write(tmp_path, "New B-LOC\nYork E-LOC\nis O\nPeter S-PER\n", "bioes.txt")
    assert load_corpus(iob1).scheme is TagScheme.IOB1
    assert load_corpus(bioes).scheme is TagScheme.BIOES


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("EU B-ORG\nrejects VBZ O\n", 2, "found 3 columns, expected 2"),
        ("EU B-ORG\nrejects X-ORG\n", 2, "X-ORG"),
        ("EU\tB-ORG\n\tO\n", 2, "empty token"),
        (b"EU B-ORG\nd\xe9j\xe0 O\n", 2, "not valid UTF-8"),
        ("EU\n", 1, "expected a token and a tag column"),
    ],
)
def test_malformed_input_names_file_line_and_problem(
    tmp_path: Path, content: str | bytes, line: int, problem: str
) -> None:
    path = write(tmp_path, content)
    fmt = ColumnFormat(separator="\t") if isinstance(content, str) and "\t" in content else None
    with pytest.raises(CorpusError) as error:
        list(read_conll(path, fmt))
    assert str(error.value).startswith(f"{path}:{line}: ")
    assert problem in str(error.value)


def test_a_file_without_sentences_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "-DOCSTART- -X- -X- O\n\n\n")
    with pytest.raises(CorpusError, match="no sentences found"):
        list(read_conll(path))


def test_reading_streams_sentence_by_sentence(tmp_path: Path) -> None:
    # A generator: the first sentence arrives before the malformed line far below is read.
    path = write(tmp_path, "EU B-ORG\n\n" + "ok O\n\n" * 1000 + "bad line here O\n")
    sentences = read_conll(path)
    assert next(sentences).tokens == ["EU"]
    with pytest.raises(CorpusError, match=":2003: found 4 columns"):
        list(sentences)


def test_real_conll2003_dev(conll_dev: Path) -> None:
    corpus = load_corpus(conll_dev)
    assert len(corpus) == 3250
    assert corpus.num_tokens == 51362
    assert corpus.scheme is TagScheme.IOB2
