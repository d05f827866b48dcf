"""Spark with real PySpark (local[2]): the UDF's entities equal Tagger.predict row for row for
every tagger type, bad rows get an error, the model runs once per row, a Parquet table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.batch_helpers import (
    KINDS,
    batch_models,
    documents,
    expected_rows,
    require,
    same_entities,
)

require("pyspark")

from tagsure.integrations.spark import tag_dataframe  # noqa: E402
from tagsure.rows import ENTITIES_DDL  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return batch_models(tmp_path_factory)


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable  # the workers run this interpreter
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tagsure-tests")
        .config("spark.driver.memory", "768m")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def frame(spark, texts: list[object]):
    return spark.createDataFrame(list(enumerate(texts)), "id int, text string").repartition(2)


def entities_of(row) -> list[dict]:
    return [e.asDict() for e in row["entities"]]


@pytest.mark.parametrize("kind", KINDS)
def test_entities_equal_tagger_predict_for_every_tagger_type(
    spark, models: dict[str, Path], kind: str
) -> None:
    texts = documents(24)
    tagged = tag_dataframe(frame(spark, texts), str(models[kind]), batch_size=8)
    assert tagged.schema["entities"].dataType.simpleString() == ENTITIES_DDL
    rows = tagged.orderBy("id").collect()
    assert [r["id"] for r in rows] == list(range(len(texts)))
    for row, want in zip(rows, expected_rows(models[kind], texts), strict=True):
        assert row["error"] is None and same_entities(entities_of(row), want)


def test_bad_rows_get_an_error_and_the_model_runs_once_per_row(
    spark, models: dict[str, Path]
) -> None:
    texts: list[object] = documents(10)
    texts[2:2] = ["", None, "x" * 300]
    tagged = tag_dataframe(frame(spark, texts), str(models["bilstm"]), max_chars=200)
    plan = tagged._jdf.queryExecution().executedPlan().toString()
    assert plan.count("ArrowEvalPython") == 1, plan  # entities and error from one UDF call
    rows = tagged.orderBy("id").collect()
    assert [r["error"] for r in rows[2:5]] == [
        "empty text",
        "no text (null, or no such field)",
        "text of 300 characters is longer than the limit of 200; split the document or raise "
        "max_chars",
    ]
    good = [t for i, t in enumerate(texts) if not 2 <= i < 5]
    tagged_rows = [r for i, r in enumerate(rows) if not 2 <= i < 5]
    for row, want in zip(tagged_rows, expected_rows(models["bilstm"], good), strict=True):
        assert row["error"] is None and same_entities(entities_of(row), want)


def test_a_parquet_table_in_and_out(spark, models: dict[str, Path], tmp_path: Path) -> None:
    texts = documents(20)
    pq.write_table(pa.table({"doc": list(range(len(texts))), "body": texts}), tmp_path / "in.pq")
    df = spark.read.parquet(str(tmp_path / "in.pq"))
    tag_dataframe(df, str(models["onnx"]), text_column="body").write.parquet(str(tmp_path / "out"))
    rows = sorted(pq.read_table(tmp_path / "out").to_pylist(), key=lambda r: r["doc"])
    for row, want in zip(rows, expected_rows(models["onnx"], texts), strict=True):
        assert row["error"] is None and same_entities(row["entities"], want)
