"""See entities: `predict --format html` and `evaluate --html`, read back with html.parser."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tagsure import load_corpus
from tagsure.data.schemes import Span
from tagsure.writers_html import HtmlPage, Mark, error_marks, sentence_text
from tests.helpers import BUNDLED, run_cli, write_conll


class Page(HTMLParser):
    """Each ``div.doc`` as its text (the predicted line's) and its lines of marks, each mark
    ``{"classes", "label", "text", "badge", "style"}``; plus every tag seen."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.docs: list[dict] = []
        self.tags: list[str] = []
        self.open: list[tuple[str, list[str]]] = []  # the elements we are inside
        self.feed(source)
        self.close()

    def inside(self, css_class: str) -> bool:
        return any(css_class in classes for _, classes in self.open)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "meta":
            return  # a void element: no end tag
        if tag == "div" and "doc" in classes:
            self.docs.append({"classes": classes, "text": "", "lines": [[]]})
        elif tag == "span" and "gold" in classes:
            self.docs[-1]["lines"].append([])
        elif tag == "mark" and "ent" in classes and self.inside("doc"):
            mark = {"classes": classes, "label": a["data-label"], "text": "", "badge": ""}
            self.docs[-1]["lines"][-1].append(mark | {"style": a.get("style")})
        self.open.append((tag, classes))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1][0] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if not self.inside("doc"):
            return
        if self.inside("ent"):
            mark = self.docs[-1]["lines"][-1][-1]
            mark["badge" if self.inside("badge") else "text"] += data
        if not self.inside("badge") and not self.inside("gold"):
            self.docs[-1]["text"] += data


def assert_self_contained(source: str, page: Page) -> None:
    assert source.startswith("<!DOCTYPE html>") and source.rstrip().endswith("</html>")
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert "http://" not in source and "https://" not in source and "src=" not in source
    assert "<style>" in source


def test_text_is_escaped_and_marks_sit_on_their_characters() -> None:
    out = io.StringIO()
    text = 'Ann <script>alert("x")</script> & Bob met in "Paris"'
    with HtmlPage(out, "<b>title</b>") as page:
        bob, paris = text.index("Bob"), text.index("Paris")
        marks = [Mark(0, 3, "PER"), Mark(bob, bob + 3, "PER"), Mark(paris, paris + 5, "LOC")]
        page.add(text, marks)
    source = out.getvalue()
    parsed = Page(source)
    assert_self_contained(source, parsed)
    assert "<script>" not in source and "&lt;script&gt;" in source
    assert "<title>&lt;b&gt;title&lt;/b&gt;</title>" in source
    [doc] = parsed.docs
    assert doc["text"] == text  # the words, marked or not, read back exactly
    assert [(m["text"], m["label"], m["badge"]) for m in doc["lines"][0]] == [
        ("Ann", "PER", "PER"),
        ("Bob", "PER", "PER"),
        ("Paris", "LOC", "LOC"),
    ]
    per, _, loc = doc["lines"][0]
    assert per["style"] == "background: #aa9cfc" and loc["style"] == "background: #ff9561"


def test_error_kinds_against_gold() -> None:
    tokens = "Angela Merkel met Emmanuel Macron in Paris on Monday".split()
    _, offsets = sentence_text(tokens)
    gold = [Span("PER", 0, 2), Span("PER", 3, 5), Span("LOC", 6, 7)]
    predicted = [Span("PER", 0, 2), Span("ORG", 3, 5), Span("MISC", 8, 9)]
    marks, gold_line = error_marks(gold, predicted, offsets)
    assert gold_line is None
    assert [(m.kind, m.label, m.gold) for m in marks] == [
        ("entity", "PER", "PER"),
        ("wrong", "ORG", "PER"),
        ("missed", "LOC", None),
        ("spurious", "MISC", None),
    ]
    # A boundary error: the gold entities get a line of their own.
    marks, gold_line = error_marks([Span("PER", 3, 5)], [Span("PER", 4, 5)], offsets)
    assert [(m.kind, m.label) for m in marks] == [("spurious", "PER")]
    assert gold_line is not None and [(m.kind, m.start, m.end) for m in gold_line] == [
        ("missed", offsets[3][0], offsets[4][1])
    ]


@pytest.fixture
def texts(tmp_path: Path) -> Path:
    path = tmp_path / "docs.txt"
    path.write_text(
        "George Washington went to Washington .\n"
        "The European Union met in Brussels <script>alert(1)</script> .\n"
        "Angela Merkel visited Paris & London .\n",
        encoding="utf-8",
    )
    return path


def test_predict_html_shows_the_jsonl_entities(
    tiny_model: Path, texts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page_path = tmp_path / "page.html"
    code, _, err = run_cli(
        ["predict", str(tiny_model), str(texts), "--format", "html", "--out", str(page_path)],
        capsys,
    )
    assert (code, err) == (0, "")
    code, out, _ = run_cli(["predict", str(tiny_model), str(texts)], capsys)
    records = [json.loads(line) for line in out.splitlines()]
    source = page_path.read_text(encoding="utf-8")
    page = Page(source)
    assert_self_contained(source, page)
    assert "<script>alert(1)" not in source
    lines = texts.read_text(encoding="utf-8").splitlines()
    assert [d["text"] for d in page.docs] == lines
    for doc, record in zip(page.docs, records, strict=True):
        assert [(m["label"], m["text"]) for m in doc["lines"][0]] == [
            (e["label"], e["text"]) for e in record["entities"]
        ]
    assert sum(len(d["lines"][0]) for d in page.docs) > 0  # the model found something


def test_predict_html_on_conll_input_marks_the_predicted_spans(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = write_conll(
        tmp_path / "dev.txt", load_corpus(BUNDLED / "wikiann-en-dev.txt").sentences[:40]
    )
    code, page_source, _ = run_cli(
        ["predict", str(tiny_model), str(dev), "--format", "html"], capsys
    )
    assert code == 0
    code, conll, _ = run_cli(["predict", str(tiny_model), str(dev), "--format", "conll"], capsys)
    from tagsure.data.schemes import to_spans

    blocks = [b.splitlines() for b in conll.strip("\n").split("\n\n")]
    page = Page(page_source)
    assert len(page.docs) == len(blocks) == 40
    for doc, block in zip(page.docs, blocks, strict=True):
        tokens = [line.split(" ")[0] for line in block]
        predicted = [line.split(" ")[-1] for line in block]
        assert doc["text"] == " ".join(tokens)
        assert [(m["label"], m["text"]) for m in doc["lines"][0]] == [
            (s.label, " ".join(tokens[s.start : s.end])) for s in to_spans(predicted, "IOB2")
        ]


def test_evaluate_html_counts_agree_with_the_metrics(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentences = load_corpus(BUNDLED / "wikiann-en-dev.txt").sentences[:120]
    sentences[0].tokens[0] = "<script>x</script>"
    dev = write_conll(tmp_path / "dev.txt", sentences)
    page_path = tmp_path / "errors.html"
    code, out, err = run_cli(
        ["evaluate", str(tiny_model), str(dev), "--json", "--html", str(page_path)], capsys
    )
    assert (code, err) == (0, "")
    micro = json.loads(out)["micro"]
    source = page_path.read_text(encoding="utf-8")
    page = Page(source)
    assert_self_contained(source, page)
    assert len(page.docs) == 120
    kinds: dict[str, int] = {"entity": 0, "wrong": 0, "spurious": 0, "missed": 0}
    for doc in page.docs:
        predicted_line, *gold_line = doc["lines"]
        for mark in predicted_line:
            kind = next((k for k in kinds if k in mark["classes"]), "entity")
            kinds[kind] += 1
        for mark in gold_line[0] if gold_line else []:
            kinds["missed"] += "missed" in mark["classes"]
    # conlleval: a right entity is a true positive; a wrong type is a false positive and a
    # false negative; a spurious one a false positive; a missed one a false negative.
    assert kinds["entity"] == micro["true_positives"]
    assert kinds["entity"] + kinds["wrong"] + kinds["spurious"] == micro["predicted"]
    assert kinds["entity"] + kinds["wrong"] + kinds["missed"] == micro["gold"]
    assert kinds["wrong"] + kinds["spurious"] + kinds["missed"] > 0  # a tiny model errs
    badges = [m["badge"] for d in page.docs for line in d["lines"] for m in line]
    assert any(", gold " in b for b in badges) or any(b.endswith(" spurious") for b in badges)
    summary = f"{kinds['entity']} entities right, {kinds['wrong']} wrong type"
    assert summary in source and f"F1 {100 * micro['f1']:.2f}" in source
    assert "&lt;script&gt;x&lt;/script&gt;" in source and "<script>x" not in source
