"""Spark: a pandas UDF built on ``pyspark.ml.functions.predict_batch_udf`` that tags a text column.

``predict_batch_udf`` calls our ``make_predict_fn`` once per Python worker and caches what it
returns, so the model is loaded (and verified) once per worker, not per row or batch.
:func:`tag_dataframe` adds two columns: ``entities``,
``array<struct<label:string,start:int,end:int,score:float,text:string>>`` with character
offsets, and ``error``, null or why the row was not tagged (see :mod:`tagsure.rows`).

Example:
    >>> df = spark.read.parquet("docs/")                                       # doctest: +SKIP
    >>> tag_dataframe(df, "model.tagsure").write.parquet("tagged/")            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tagsure.defaults import BATCH_SIZE
from tagsure.predictors import PredictorSpec
from tagsure.rows import ENTITIES_DDL, MAX_CHARS, tag_texts

RESULT_DDL = f"struct<entities:{ENTITIES_DDL},error:string>"


def tagsure_udf(
    model: str,
    batch_size: int = BATCH_SIZE,
    max_chars: int = MAX_CHARS,
    verify: bool = True,
    onnx: bool | None = None,
    threads: int | None = 1,
) -> Any:  # -> pyspark.sql.functions.UserDefinedFunction
    """A UDF from a text column to ``struct<entities, error>``; ``error`` is "" when none.

    The model path must be readable on every worker (a shared filesystem, or
    ``spark-submit --files model.tagsure`` and the bare file name).
    """
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import _parse_datatype_string

    spec = PredictorSpec(str(model), onnx, verify, threads=threads)

    def make_predict_fn() -> Any:
        predictor = spec.load()

        def predict(texts: np.ndarray) -> list[dict[str, Any]]:
            results = tag_texts(predictor, texts.tolist(), max_chars)
            # predict_batch_udf wants each array field as a 1-D ndarray, each scalar non-null
            return [{"entities": _objects(r.entities), "error": r.error or ""} for r in results]

        return predict

    return predict_batch_udf(
        make_predict_fn, return_type=_parse_datatype_string(RESULT_DDL), batch_size=batch_size
    )


def tag_dataframe(df: Any, model: str, text_column: str = "text", **settings: Any) -> Any:
    """``df`` plus ``entities`` and ``error`` columns, from one :func:`tagsure_udf` call per row."""
    from pyspark.sql import functions as F

    tagged = df.withColumn("_tagsure", tagsure_udf(model, **settings)(F.col(text_column)))
    return (
        tagged.withColumn("entities", F.col("_tagsure.entities"))
        .withColumn("error", F.nullif(F.col("_tagsure.error"), F.lit("")))
        .drop("_tagsure")
    )


def _objects(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out
