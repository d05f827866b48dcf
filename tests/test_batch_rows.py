"""The shared row logic: which texts are tagged, the error of each bad row, batch isolation."""

from __future__ import annotations

import math

import pytest

from tagsure.data.formats import sniff_lines
from tagsure.data.records import Unreadable
from tagsure.rows import ENTITIES_DDL, RowResult, check_text, tag_texts
from tagsure.tagger import Entity, Prediction


class Echo:
    """Tags every word that starts with a capital as PER; fails on a text containing 'BOOM'."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, texts, with_scores=True):
        self.calls.append(len(texts))
        if any("BOOM" in t for t in texts):
            raise RuntimeError("the model broke on BOOM")
        out = []
        for text in texts:
            entities, start = [], 0
            for word in text.split():
                start = text.index(word, start)
                if word[0].isupper():
                    entities.append(Entity("PER", word, start, start + len(word), 0.5))
                start += len(word)
            out.append(Prediction(text.split(), ["O"] * len(text.split()), entities))
        return out


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", "empty text"),
        ("  \n", "empty text"),
        (None, "no text (null, or no such field)"),
        (math.nan, "no text (null, or no such field)"),
        (b"caf\xc3", "invalid UTF-8: byte 0xc3 at position 3"),
        ("caf\udcc3", "invalid UTF-8: undecodable byte at character 3"),
        (17, "text is a int, not a string"),
        ("x" * 11, "text of 11 characters is longer than the limit of 10; split the document"),
        (Unreadable("line 3 is not JSON"), "line 3 is not JSON"),
    ],
)
def test_a_bad_value_gets_its_error(value: object, error: str) -> None:
    text, message = check_text(value, max_chars=10)
    assert text is None and message is not None and message.startswith(error)


def test_good_values_pass_as_strings() -> None:
    assert check_text("Ann") == ("Ann", None)
    assert check_text(b"caf\xc3\xa9") == ("café", None)


def test_bad_rows_never_cost_the_batch_and_order_is_kept() -> None:
    echo = Echo()
    results = tag_texts(echo, ["Ann met Bob", "", "BOOM Carl", b"\xff", "and Dora"])
    assert [r.error for r in results] == [
        None,
        "empty text",
        "tagging failed: RuntimeError: the model broke on BOOM",
        "invalid UTF-8: byte 0xff at position 0",
        None,
    ]
    assert [[e["text"] for e in r.entities] for r in results] == [
        ["Ann", "Bob"],
        [],
        [],
        [],
        ["Dora"],
    ]
    assert results[0].entities[1] == {
        "label": "PER",
        "start": 8,
        "end": 11,
        "score": 0.5,
        "text": "Bob",
    }
    assert echo.calls == [3, 1, 1, 1]  # the batch, then each good row alone
    assert results[0] == RowResult(results[0].entities, None, 3)


def test_the_spark_type_lists_the_struct_fields_in_order() -> None:
    assert ENTITIES_DDL == "array<struct<label:string,start:int,end:int,score:float,text:string>>"


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (['{"id": 1, "text": "Ann"}'], "jsonl"),
        (["{not json"], "text"),
        (["Ann left ."], "text"),
        (["EU B-ORG", "rejects O", ""], "conll"),
    ],
)
def test_sniffing_tells_jsonl_from_text_and_conll(head: list[str], kind: str) -> None:
    assert sniff_lines(head) == kind


def test_an_already_split_contraction_gives_no_empty_token() -> None:
    from tagsure.data.text import split_sentences

    tokens = [t.text for t in split_sentences("You do n't keep it .")[0]]
    assert tokens == ["You", "do", "n't", "keep", "it", "."]
