"""Streaming `tagsure predict`: every tagger type equals Tagger.predict row for row, JSONL and
Parquet in and out, stdin/stdout, workers in input order, a killed worker, flat memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tagsure.data.records import Chunk
from tagsure.predictors import PredictorSpec
from tagsure.rows import entities_arrow_type
from tagsure.streaming import JsonlSink, open_source, predict_stream
from tagsure.workers import ordered_map
from tests.batch_helpers import KINDS, batch_models, documents, expected_rows, same_entities
from tests.helpers import run_cli as run


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return batch_models(tmp_path_factory)


def write_jsonl(path: Path, texts: list[object]) -> Path:
    with path.open("wb") as handle:
        for i, text in enumerate(texts):
            if isinstance(text, bytes):  # a record whose text is not valid UTF-8
                handle.write(b'{"id": %d, "text": "' % i + text + b'"}\n')
            else:
                handle.write(json.dumps({"id": i, "text": text}).encode() + b"\n")
    return path


@pytest.mark.parametrize("kind", KINDS)
def test_jsonl_entities_equal_tagger_predict_for_every_tagger_type(
    models: dict[str, Path], kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = documents(40)
    data = write_jsonl(tmp_path / "docs.jsonl", texts)
    code, out, _ = run(["predict", str(models[kind]), str(data), "--batch-size", "7"], capsys)
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == list(range(len(texts)))
    for record, want in zip(records, expected_rows(models[kind], texts), strict=True):
        assert "error" not in record
        assert same_entities(record["entities"], want), record["id"]


def test_bad_rows_get_an_error_and_their_batch_is_tagged(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts: list[object] = documents(6)
    texts[2:2] = ["", b"caf\xff", "x" * 200]
    data = write_jsonl(tmp_path / "docs.jsonl", texts)
    with data.open("ab") as handle:
        handle.write(b"not json\n")
    code, out, err = run(
        ["predict", str(models["bilstm"]), str(data), "--max-chars", "150"], capsys
    )
    assert code == 0 and "4 of 14 rows have an error field" in err
    records = [json.loads(line) for line in out.splitlines()]
    assert [r.get("error") for r in records[2:5]] == [
        "empty text",
        "invalid UTF-8: byte 0xff at position 22 of line 4",
        "text of 200 characters is longer than the limit of 150; split the document or raise "
        "max_chars",
    ]
    assert records[-1] == {
        "entities": [],
        "error": "line 14 is not JSON: Expecting value at column 1",
    }
    good = [t for t in texts if isinstance(t, str) and 0 < len(t) <= 150]
    tagged = [r for r in records if "error" not in r]
    assert [r["text"] for r in tagged] == good
    for record, want in zip(tagged, expected_rows(models["bilstm"], good), strict=True):
        assert same_entities(record["entities"], want)


def test_parquet_in_and_out_keeps_every_column(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = documents(30)
    source = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"doc": list(range(len(texts))), "body": texts}), source)
    out = tmp_path / "tagged.parquet"
    args = ["predict", str(models["bilstm"]), str(source), "--out", str(out)]
    code, _, _ = run([*args, "--text-field", "body", "--batch-size", "8"], capsys)
    assert code == 0
    table = pq.read_table(out)
    assert table.column_names == ["doc", "body", "entities", "error"]
    assert table.schema.field("entities").type.equals(entities_arrow_type())
    rows = table.to_pylist()
    assert [r["doc"] for r in rows] == list(range(len(texts)))
    for row, want in zip(rows, expected_rows(models["bilstm"], texts), strict=True):
        assert row["error"] is None and same_entities(row["entities"], want)


def test_stdin_to_stdout_with_two_workers_keeps_input_order(
    models: dict[str, Path], tmp_path: Path
) -> None:
    texts = documents(60)
    command = [sys.executable, "-m", "tagsure", "predict", str(models["bilstm"]), "-"]
    done = subprocess.run(
        [*command, "--workers", "2", "--batch-size", "5", "--progress"],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in records] == texts
    for record, want in zip(records, expected_rows(models["bilstm"], texts), strict=True):
        assert same_entities(record["entities"], want)
    assert "words" in done.stderr  # --progress draws the bar on stderr, not a TTY


class DiesOnce(PredictorSpec):
    """A predictor whose worker process dies the first time it meets the text 'DIE'."""

    def load(self):
        real = super().load()
        marker = Path(self.path).with_suffix(".died")

        class Predictor:
            def predict(self, texts, with_scores=True):
                if "DIE" in texts and not marker.exists():
                    marker.touch()
                    os._exit(1)
                return real.predict(texts, with_scores)

        return Predictor()


def test_a_killed_worker_is_replaced_and_each_row_is_written_once(
    models: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model.tagsure"
    model.write_bytes(models["bilstm"].read_bytes())
    texts = documents(20)
    texts[11] = "DIE"
    chunks = [Chunk(texts[i : i + 4], [{"i": j} for j in range(i, i + 4)]) for i in range(0, 24, 4)]
    out = list(ordered_map(DiesOnce(str(model)), chunks, workers=2))
    assert model.with_suffix(".died").exists()
    assert [r["i"] for chunk, _ in out for r in chunk.records] == list(range(24))
    results = [r for _, rs in out for r in rs]
    want = expected_rows(models["bilstm"], texts)
    assert all(same_entities(r.entities, w) for r, w in zip(results, want, strict=True))


@pytest.mark.slow
def test_streaming_a_file_20_times_its_batch_keeps_memory_flat(
    models: dict[str, Path], tmp_path: Path
) -> None:
    batch = 64
    base = documents(batch)
    data = tmp_path / "big.txt"
    with data.open("w") as handle:
        for _ in range(20):
            handle.write("\n".join(base[:batch]) + "\n")
    rss: list[int] = []
    process = psutil.Process()
    sink = JsonlSink(open(os.devnull, "wb"))  # noqa: SIM115
    stats = predict_stream(
        PredictorSpec(str(models["bilstm"])),
        open_source(str(data)).chunks("text", batch),
        sink,
        on_chunk=lambda rows, words: rss.append(process.memory_info().rss),
    )
    assert stats.rows == 20 * batch and len(rss) == 20
    settled = rss[2]  # after the model's first batches have sized torch's buffers
    assert max(rss[2:]) <= 1.10 * settled, [r // 2**20 for r in rss]
