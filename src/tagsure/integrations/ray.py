"""Ray Data: tag a dataset's text column with ``map_batches`` and a callable class.

:class:`TagsurePredictor` loads (and verifies) the model once per actor in ``__init__`` and
maps a batch (pyarrow, pandas or numpy format) to the same batch with an ``entities`` column
(``list<struct<label, start, end, score, text>>``, character offsets) and an ``error`` column
(null, or why the row was not tagged). :func:`tag_dataset` applies it to a dataset in blocks of
at most one batch, so that every actor has work; :func:`predict_folder` runs it over a folder of
JSONL, Parquet or text files, as ``tagsure predict --engine ray IN --out OUT`` does.

Example:
    >>> import ray                                                            # doctest: +SKIP
    >>> ds = ray.data.read_parquet("docs/").map_batches(
    ...     TagsurePredictor, fn_constructor_kwargs={"model": "model.tagsure"},
    ...     concurrency=4, batch_size=256, batch_format="pyarrow")             # doctest: +SKIP
    >>> ds.write_parquet("tagged/")                                           # doctest: +SKIP
    >>> docs = ray.data.read_parquet("docs/")                                 # doctest: +SKIP
    >>> tag_dataset(docs, "model.tagsure", concurrency=4)                     # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from tagsure.errors import ConfigError, InputError
from tagsure.predictors import PredictorSpec
from tagsure.rows import MAX_CHARS, RowResult, entities_arrow_type, tag_texts

logger = logging.getLogger(__name__)

READERS = {".jsonl": "json", ".json": "json", ".ndjson": "json", ".parquet": "parquet"}
READERS |= {".txt": "text"}


class TagsurePredictor:
    """``Dataset.map_batches(TagsurePredictor, fn_constructor_kwargs={"model": path}, ...)``.

    ``device`` None picks the GPU Ray gave this actor (``num_gpus``), else the CPU; ``threads``
    caps torch's threads (Ray's ``num_cpus`` per actor, 1 by default).
    """

    def __init__(
        self,
        model: str,
        text_column: str = "text",
        max_chars: int = MAX_CHARS,
        verify: bool = True,
        onnx: bool | None = None,
        threads: int | None = 1,
        device: str | None = None,
    ) -> None:
        if device is None:
            device = "cuda" if _ray_gpus() else "cpu"
        spec = PredictorSpec(str(model), onnx, verify, threads=threads, device=device)
        self.predictor = spec.load()
        self.text_column = text_column
        self.max_chars = max_chars

    def __call__(self, batch: Any) -> Any:
        """The batch, in its own format, with ``entities`` and ``error`` columns added."""
        import pandas as pd
        import pyarrow as pa

        if isinstance(batch, pa.Table):
            results = self._tag(batch.column_names, lambda: batch.column(self.text_column))
            kept = batch.drop_columns([c for c in ("entities", "error") if c in batch.column_names])
            entities = pa.array([r.entities for r in results], type=entities_arrow_type())
            errors = pa.array([r.error for r in results], type=pa.string())
            return kept.append_column("entities", entities).append_column("error", errors)
        if isinstance(batch, pd.DataFrame):
            results = self._tag(list(batch.columns), lambda: batch[self.text_column])
            return batch.assign(
                entities=[r.entities for r in results], error=[r.error for r in results]
            )
        results = self._tag(list(batch), lambda: batch[self.text_column])  # numpy: dict of arrays
        entities = np.empty(len(results), dtype=object)  # ragged: one list per row
        for i, result in enumerate(results):
            entities[i] = result.entities
        errors = np.array([r.error for r in results], dtype=object)
        return {**batch, "entities": entities, "error": errors}

    def _tag(self, columns: list[str], column: Any) -> list[RowResult]:
        if self.text_column not in columns:
            raise ConfigError(
                f"the batch has no column {self.text_column!r} (columns: {', '.join(columns)}); "
                "pass fn_constructor_kwargs={'text_column': ...}"
            )
        values = column()
        texts = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
        return tag_texts(self.predictor, texts, self.max_chars)


def tag_dataset(
    dataset: Any,
    model: str,
    concurrency: int | tuple[int, int] = 1,
    batch_size: int = 256,
    num_gpus: float = 0.0,
    **predictor: Any,
) -> Any:  # ray.data.Dataset -> ray.data.Dataset
    """``dataset`` with ``entities`` and ``error`` columns, tagged by ``concurrency`` actors.

    Ray Data hands a whole block to one actor, and it reads a few small files as one block (a
    2,726-row corpus of 4 Parquet files came in as one block: one actor worked, the other
    waited), so the blocks are first cut, streaming, to at most ``batch_size`` rows. Keyword
    arguments go to :class:`TagsurePredictor` (``text_column``, ``max_chars``, ``onnx``,
    ``threads``, ...).
    """
    return dataset.repartition(target_num_rows_per_block=batch_size).map_batches(
        TagsurePredictor,
        fn_constructor_kwargs={"model": model, **predictor},
        concurrency=concurrency,
        batch_size=batch_size,
        batch_format="pyarrow",
        num_gpus=num_gpus or None,
    )


def _ray_gpus() -> list[Any]:
    import ray

    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


def _numbered_files(extension: str) -> Any:
    """Output files named ``part-000000-<write uuid>.<ext>`` by write task: with
    ``preserve_order`` the tasks run in input order, so the files listed by name hold the rows
    in input order (Ray wants the write's uuid in the name, so that no write overwrites)."""
    from ray.data.datasource import FilenameProvider

    class Numbered(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"part-{task_index:06d}-{write_uuid}.{extension}"

    return Numbered()


def input_files(source: str) -> tuple[list[str], str]:
    """The data files of a folder (or one file) and the Ray reader for them."""
    root = Path(source)
    if not root.exists():
        raise InputError(f"{source}: no such file or folder")
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    kinds = {READERS.get(p.suffix.lower()) for p in files if not p.name.startswith((".", "_"))}
    kinds.discard(None)
    if len(kinds) != 1:
        found = ", ".join(sorted(k for k in kinds if k)) or "none"
        raise ConfigError(
            f"{source}: expected files of one kind (.jsonl, .parquet or .txt), found: {found}"
        )
    kind = kinds.pop()
    chosen = [str(p) for p in files if READERS.get(p.suffix.lower()) == kind]
    return chosen, str(kind)


def predict_folder(
    model: str,
    source: str,
    dest: str,
    output_format: str | None = None,
    text_column: str = "text",
    concurrency: int = 1,
    batch_size: int = 256,  # 1,024 broke the output files' input order (test_ray)
    max_chars: int = MAX_CHARS,
    address: str | None = None,
    num_gpus: float = 0.0,
    onnx: bool | None = None,
) -> str:
    """Tag every file of ``source`` with ``concurrency`` actors; write ``dest`` (a folder) in
    input order, as Parquet (the default for Parquet input) or JSONL. Returns ``dest``.

    Starts local Ray when none is running and ``address`` is None; ``address`` joins a cluster
    (``"auto"`` or ``"ray://head:10001"``).
    """
    import ray

    files, kind = input_files(source)
    output_format = output_format or ("parquet" if kind == "parquet" else "jsonl")
    if output_format not in ("jsonl", "parquet"):
        raise ConfigError(f"Ray writes jsonl or parquet, not {output_format!r}")
    started = not ray.is_initialized()
    if started:
        # Locally, one logical CPU beyond the cores: actors take a CPU each, and Ray Data's
        # Parquet reads wait for a free one (with every CPU in an actor they would wait forever).
        cpus = None if address else (os.cpu_count() or 1) + 1
        ray.init(address=address, num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        read = {"json": ray.data.read_json, "parquet": ray.data.read_parquet}
        io_args: dict[str, Any] = {"ray_remote_args": {"num_cpus": 0}}
        dataset = read.get(kind, ray.data.read_text)(files, **io_args)
        tagged = tag_dataset(
            dataset,
            model,
            concurrency,
            batch_size,
            num_gpus,
            text_column=text_column,
            max_chars=max_chars,
            onnx=onnx,
        )
        io_args["filename_provider"] = _numbered_files(output_format)
        if output_format == "parquet":
            tagged.write_parquet(dest, **io_args)
        else:
            tagged.write_json(dest, **io_args)
        logger.info("tagged %d files of %s into %s", len(files), source, dest)
        return dest
    finally:
        if started:
            ray.shutdown()
