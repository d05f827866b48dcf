"""Ray Data with real local Ray (2 CPUs): TagsurePredictor equals Tagger.predict row for row, in
order, for every tagger type and batch format; bad rows; `--engine ray`; a killed actor."""

from __future__ import annotations

import json
import os
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

require("ray")
import ray  # noqa: E402

from tagsure.integrations.ray import TagsurePredictor, predict_folder, tag_dataset  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return batch_models(tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import cloudpickle

    import tests.test_ray

    cloudpickle.register_pickle_by_value(tests.test_ray)  # DiesOnce, below, travels by value
    # 2 cores for 2 actors, plus the logical CPU Parquet reads wait for (as predict_folder does)
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    yield
    ray.shutdown()


def tag(texts: list[object], model: Path, batch_format: str = "pyarrow", cls=TagsurePredictor):
    dataset = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    return dataset.map_batches(
        cls,
        fn_constructor_kwargs={"model": str(model)},
        concurrency=2,
        batch_size=8,
        batch_format=batch_format,
    ).take_all()


@pytest.mark.parametrize("kind", KINDS)
def test_entities_equal_tagger_predict_for_every_tagger_type(
    models: dict[str, Path], kind: str
) -> None:
    texts = documents(30)
    rows = tag(texts, models[kind])
    assert [r["id"] for r in rows] == list(range(len(texts)))
    for row, want in zip(rows, expected_rows(models[kind], texts), strict=True):
        assert row["error"] is None and same_entities(list(row["entities"]), want)


@pytest.mark.parametrize("batch_format", ["pandas", "numpy"])
def test_pandas_and_numpy_batches_with_bad_rows(models: dict[str, Path], batch_format: str) -> None:
    texts: list[object] = documents(12)
    texts[3:3] = ["", None, "   "]
    rows = tag(texts, models["bilstm"], batch_format)
    assert [r["id"] for r in rows] == list(range(len(texts)))
    assert [r["error"] for r in rows[3:6]] == [
        "empty text",
        "no text (null, or no such field)",
        "empty text",
    ]
    good = [t for i, t in enumerate(texts) if not 3 <= i < 6]
    tagged = [r for i, r in enumerate(rows) if not 3 <= i < 6]
    for row, want in zip(tagged, expected_rows(models["bilstm"], good), strict=True):
        assert row["error"] is None and same_entities([dict(e) for e in row["entities"]], want)


def test_engine_ray_over_a_folder_of_jsonl_and_of_parquet(
    models: dict[str, Path], tmp_path: Path
) -> None:
    texts = documents(40)
    jsonl, parquet = tmp_path / "jsonl", tmp_path / "parquet"
    jsonl.mkdir(), parquet.mkdir()
    for part in range(2):
        chunk = texts[part * 22 : (part + 1) * 22]
        ids = range(part * 22, part * 22 + len(chunk))
        (jsonl / f"part-{part}.jsonl").write_text(
            "".join(
                json.dumps({"id": i, "text": t}) + "\n" for i, t in zip(ids, chunk, strict=True)
            )
        )
        pq.write_table(pa.table({"id": list(ids), "text": chunk}), parquet / f"part-{part}.parquet")
    want = expected_rows(models["bilstm"], texts)
    for source in (jsonl, parquet):
        out = tmp_path / f"out-{source.name}"
        predict_folder(str(models["bilstm"]), str(source), str(out), "parquet", concurrency=2)
        files = sorted(out.glob("*.parquet"))  # part-000000.parquet, ...: by write task
        assert files and all(f.name.startswith("part-") for f in files)
        rows = [row for f in files for row in pq.read_table(f).to_pylist()]
        assert [r["id"] for r in rows] == list(range(len(texts)))  # input order, each row once
        for row, expected in zip(rows, want, strict=True):
            assert row["error"] is None and same_entities(row["entities"], expected)


def test_tag_dataset_gives_every_actor_work_from_one_file(
    models: dict[str, Path], tmp_path: Path
) -> None:
    texts = documents(40)
    ids = list(range(len(texts)))
    pq.write_table(pa.table({"id": ids, "text": texts}), tmp_path / "one.parquet")
    dataset = ray.data.read_parquet(str(tmp_path / "one.parquet"))
    assert dataset.materialize().num_blocks() == 1  # one file, one block: one actor's work
    tagged = tag_dataset(dataset, str(models["bilstm"]), concurrency=2, batch_size=8).materialize()
    assert tagged.num_blocks() >= 2  # cut to batches, so the second actor has work too
    rows = tagged.take_all()
    assert [r["id"] for r in rows] == ids
    for row, want in zip(rows, expected_rows(models["bilstm"], texts), strict=True):
        assert row["error"] is None and same_entities(list(row["entities"]), want)


class DiesOnce(TagsurePredictor):
    """An actor that kills its process the first time a batch holds the text 'DIE'."""

    def __call__(self, batch):
        marker = Path(os.environ["TAGSURE_TEST_MARKER"])
        if "DIE" in batch.column("text").to_pylist() and not marker.exists():
            marker.touch()
            os._exit(1)
        return super().__call__(batch)


def test_a_killed_actor_is_restarted_and_each_row_appears_once(
    models: dict[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    # the actors learn the marker through their runtime environment
    texts = documents(30)
    texts[17] = "DIE"
    dataset = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    rows = dataset.map_batches(
        DiesOnce,
        fn_constructor_kwargs={"model": str(models["bilstm"])},
        concurrency=2,
        batch_size=8,
        batch_format="pyarrow",
        runtime_env={"env_vars": {"TAGSURE_TEST_MARKER": str(marker)}},
    ).take_all()
    assert marker.exists(), "the actor never died: the test tested nothing"
    assert [r["id"] for r in rows] == list(range(len(texts)))
    want = expected_rows(models["bilstm"], texts)
    for row, expected in zip(rows, want, strict=True):
        assert same_entities(list(row["entities"]), expected)
