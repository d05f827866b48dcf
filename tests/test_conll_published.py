"""Published corpora as they come: files joined with ``cat`` (a byte-order mark where each
began), CoNLL-2002, tab-separated tokens with spaces, CoNLL-U ``#`` comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagsure.data.conll import ColumnFormat, CorpusError, load_corpus, read_conll
from tagsure.data.formats import column_format_of, sniff_format
from tagsure.data.schemes import TagScheme
from tests.conftest import shared_file
from tests.helpers import BUNDLED

BOM = "\ufeff".encode()


def _blocks(path: Path) -> list[bytes]:
    """A column file's sentence blocks, each ending in its blank line."""
    return [block + b"\n\n" for block in path.read_bytes().strip(b"\n").split(b"\n\n")]


def _joined_with_cat(parts: list[bytes], tmp_path: Path) -> Path:
    """Write each part as a file starting with a BOM and join them as ``cat a b c > all`` does
    (byte for byte); the last file holds only a BOM, so the result ends on a BOM-only line."""
    joined = b"".join(BOM + part for part in [*parts, b""])
    path = tmp_path / "joined.txt"
    path.write_bytes(joined)
    assert joined.endswith(b"\n" + BOM)
    return path


def test_bundled_slices_joined_with_cat_read_as_the_original(tmp_path: Path) -> None:
    source = BUNDLED / "wikiann-en-dev.txt"
    blocks = _blocks(source)
    parts = [b"".join(blocks[:200]), b"".join(blocks[200:400]), b"".join(blocks[400:])]
    joined = _joined_with_cat(parts, tmp_path)
    original, read = load_corpus(source), load_corpus(joined)
    assert len(read) == len(original) == len(blocks) == 600
    assert [s.tokens for s in read.sentences] == [s.tokens for s in original.sentences]
    assert [s.tags for s in read.sentences] == [s.tags for s in original.sentences]
    assert read.scheme is TagScheme.IOB2
    # A BOM mid-file sits on the first line of the second slice: that line is read as a token.
    second = read.sentences[200]
    assert second.tokens == original.sentences[200].tokens and "\ufeff" not in second.tokens[0]
    assert sniff_format(joined) == "conll"


def test_real_wikiann_slices_joined_with_cat(tmp_path: Path) -> None:
    source = shared_file("wikiann-en", "dev")
    blocks = _blocks(source)
    joined = _joined_with_cat([b"".join(blocks[:1000]), b"".join(blocks[1000:2000])], tmp_path)
    read = list(read_conll(joined))
    original = list(read_conll(source))[:2000]
    assert [(s.tokens, s.tags) for s in read] == [(s.tokens, s.tags) for s in original]


def test_a_bom_only_line_between_sentences_separates_them(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(BOM + b"EU B-ORG\n" + BOM + b"\n" + BOM + b"Peter B-PER\n" + BOM)
    assert [s.tokens for s in read_conll(path)] == [["EU"], ["Peter"]]


CONLL2002_NED = """-DOCSTART- -DOCSTART- O
De Art O
tekst N O
van Prep O
het Art O
arrest N O
is V O
nog Adv O
niet Adv O
schriftelijk Adj O
beschikbaar Adj O
. Punc O

Het Art O
Hof N B-ORG
van Prep I-ORG
Cassatie N I-ORG
in Prep O
Brussel N B-LOC
. Punc O
-DOCSTART- -DOCSTART- O
Zaterdag N O
België N B-LOC
"""

CONLL2002_ESP = """Melbourne B-LOC
( O
Australia B-LOC
) O
, O
25 O
may O
( O
EFE B-ORG
) O
. O

-DOCSTART- O

El O
Abogado B-PER
General I-PER
del I-PER
Estado I-PER
, O
Daryl B-PER
Williams I-PER
"""


def test_conll2002_dutch_three_columns_with_docstart(tmp_path: Path) -> None:
    path = tmp_path / "ned.train"
    path.write_text(CONLL2002_NED, encoding="utf-8")
    corpus = load_corpus(path)
    assert [len(s.tokens) for s in corpus.sentences] == [11, 7, 2]
    assert [s.document for s in corpus.sentences] == [1, 1, 2]
    assert corpus.sentences[1].tags == ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "O"]
    assert corpus.sentences[2].tokens == ["Zaterdag", "België"]
    assert corpus.scheme is TagScheme.IOB2
    assert sniff_format(path) == "conll" and column_format_of(path).tag_column == -1


def test_conll2002_spanish_two_columns(tmp_path: Path) -> None:
    path = tmp_path / "esp.train"
    path.write_text(CONLL2002_ESP, encoding="utf-8")
    corpus = load_corpus(path)
    assert [s.tokens[0] for s in corpus.sentences] == ["Melbourne", "El"]
    assert [s.document for s in corpus.sentences] == [0, 1]
    assert corpus.sentences[1].tags[1:5] == ["B-PER", "I-PER", "I-PER", "I-PER"]


def test_conll2002_latin1_file_names_line_and_the_fix(tmp_path: Path) -> None:
    # The original CoNLL-2002 files are Latin-1: "België" is one byte 0xEB there.
    path = tmp_path / "ned.latin1"
    path.write_bytes(CONLL2002_NED.encode("latin-1"))
    with pytest.raises(CorpusError) as error:
        list(read_conll(path))
    message = str(error.value)
    assert message.startswith(f"{path}:23: not valid UTF-8 (byte 6 of the line)")
    assert "iconv -f latin1 -t utf-8" in message


def test_tab_separated_tokens_with_spaces_are_found_without_settings(tmp_path: Path) -> None:
    path = tmp_path / "tabs.tsv"
    path.write_text(
        "New York City\tB-LOC\nis\tO\n1 000\tO\n\nSão Paulo \tB-LOC\n\t\n", encoding="utf-8"
    )
    corpus = load_corpus(path)  # the default format: the first token line holds a tab
    assert [s.tokens for s in corpus.sentences] == [["New York City", "is", "1 000"], ["São Paulo"]]
    assert corpus.sentences[0].tags == ["B-LOC", "O", "O"]
    assert sniff_format(path) == "conll"
    assert column_format_of(path).tag_column == -1


def test_tab_file_with_a_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tabs.tsv"
    path.write_text("New York\tB-LOC\nis\tO\textra\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r":2: found 3 columns, expected 2"):
        list(read_conll(path))
    path.write_text("New York\tB-LOC\n\tO\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r":2: empty token"):
        list(read_conll(path))


UNER = """# global.columns = ID FORM NER MISC ANNOTATOR
# sent_id = en_ewt-ud-train_0001
# text = Where in Sioux Falls is the arena ?
1\tWhere\tO\t-\t-
2\tin\tO\t-\t-
3\tSioux\tB-LOC\t-\t-
4\tFalls\tI-LOC\t-\t-
5\tis\tO\t-\t-
6\tthe\tO\t-\t-
7\tarena\tO\t-\t-
8\t?\tO\t-\t-

# sent_id = en_ewt-ud-train_0002
# newpar
# text = Peter said # hi
1\tPeter\tB-PER\t-\t-
2\tsaid\tO\t-\t-
3\t#\tO\t-\t-
4\thi\tO\t-\t-
"""


def test_conllu_comment_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "en_ewt-ud-train.iob2"
    path.write_text(UNER, encoding="utf-8")
    sentences = list(read_conll(path, ColumnFormat(token_column=1, tag_column=2)))
    assert [s.tokens for s in sentences] == [
        ["Where", "in", "Sioux", "Falls", "is", "the", "arena", "?"],
        ["Peter", "said", "#", "hi"],
    ]
    assert sentences[0].tags[2:4] == ["B-LOC", "I-LOC"]
    assert [s.line for s in sentences] == [4, 16]


def test_hash_tokens_stay_tokens_and_comments_go(tmp_path: Path) -> None:
    path = tmp_path / "tweets.txt"
    path.write_text(
        "# newdoc id = tweets-1\n#topic\n# O\n#nlp B-MISC\nrocks O\n\n# comment here\nok O\n",
        encoding="utf-8",
    )
    sentences = list(read_conll(path))
    assert [s.tokens for s in sentences] == [["#", "#nlp", "rocks"], ["ok"]]
    assert [s.tags for s in sentences] == [["O", "B-MISC", "O"], ["O"]]
    assert sniff_format(path) == "conll"
