"""``tagsure predict``: stream a file through a tagger (torch, or ONNX Runtime for an .onnx
file). Only what the command uses is imported, when it runs: an ONNX model never loads torch
through here, and a usage or file error shows before any model library is imported.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from tagsure.cli.arguments import CommandFailed, Placement, StreamOptions
from tagsure.errors import ModelFileError
from tagsure.predictors import PredictorSpec
from tagsure.storage.atomic import atomic_writer
from tagsure.storage.onnx_file import looks_like_onnx
from tagsure.streaming import JsonlSink, ParquetSink, Source, open_source, predict_stream
from tagsure.workers import threads_per_worker
from tagsure.writers_html import HtmlSink


def predict(
    model: Path,
    data: Path,
    output_format: str,
    input_format: str,
    out: Path | None,
    compile_model: bool = False,
    onnx: bool = False,
    options: StreamOptions = StreamOptions(),
    placement: Placement = Placement(),
) -> None:
    source = open_source(str(data), input_format)
    if source.format == "conll":
        return predict_conll(model, source, output_format, out, compile_model, onnx, placement)
    if options.workers < 1 or options.batch_size < 1:
        raise CommandFailed("--workers and --batch-size must be at least 1", 2)
    wanted = output_format or (
        "parquet" if source.format == "parquet" or str(out).endswith(".parquet") else "jsonl"
    )
    if wanted not in ("jsonl", "parquet", "html"):
        raise CommandFailed(
            f"{source.format} input is written as jsonl, parquet or html: {wanted}?", 2
        )
    if not model.exists():
        raise ModelFileError(f"{model}: no such model file")
    threads = threads_per_worker(options.workers) if options.workers > 1 else None
    device, precision = placement.checked().device, placement.precision
    spec = PredictorSpec(str(model), onnx or None, True, compile_model, threads, device, precision)
    to_stdout = out is None or str(out) == "-"
    from tagsure.cli.progress import PredictProgress  # tqdm

    with (
        contextlib.nullcontext(sys.stdout.buffer)
        if out is None or to_stdout
        else atomic_writer(out, "wb")
    ) as handle:
        sink: Any = ParquetSink(handle) if wanted == "parquet" else JsonlSink(handle)
        if wanted == "html":
            sink = HtmlSink(handle, f"tagsure predict: {data.name}")
        with PredictProgress(enabled=True if options.progress else None) as bar:
            stats = predict_stream(
                spec,
                # one --batch-size piece per worker in each chunk (tagsure.workers)
                source.chunks(options.text_field, options.batch_size * options.workers),
                sink,
                options.workers,
                options.max_chars,
                bar.update,
            )
    if stats.errors:
        print(f"tagsure: {stats.errors} of {stats.rows} rows have an error field", file=sys.stderr)


def predict_conll(
    model: Path,
    source: Source,
    output_format: str,
    out: Path | None,
    compile_model: bool,
    onnx: bool,
    placement: Placement = Placement(),
) -> None:
    """CoNLL sentences, as before streaming predict: a sentence per block, gold tags kept."""
    from tagsure.writers import OUTPUT_FORMATS, tag_file  # torch

    output_format = output_format or "conll"
    if output_format not in OUTPUT_FORMATS:
        raise CommandFailed(f"unknown output format {output_format!r}; use conll, jsonl or html", 2)
    tagger = load_any_tagger(model, compile_model, onnx, placement=placement)
    with contextlib.ExitStack() as stack:
        data = source.path
        if data is None:  # the CoNLL reader wants a file: spool standard input, deleted after
            spool = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "stdin.txt"
            with spool.open("wb") as raw:
                raw.writelines(source.lines or [])
            data = str(spool)
        handle: IO[str] = sys.stdout
        if out is not None and str(out) != "-":
            handle = stack.enter_context(atomic_writer(out, "w"))
        tag_file(tagger, data, "conll", output_format, handle)


def predict_ray(
    model: Path,
    data: Path,
    out: Path | None,
    output_format: str,
    text_field: str,
    actors: int,
    batch_size: int,
    max_chars: int,
    address: str | None,
    num_gpus: float,
) -> None:
    from tagsure.integrations.ray import predict_folder

    if out is None:
        raise CommandFailed("--engine ray writes a folder: give it with --out", 2)
    predict_folder(
        str(model),
        str(data),
        str(out),
        output_format=output_format or None,
        text_column=text_field,
        concurrency=actors,
        batch_size=batch_size,
        max_chars=max_chars,
        address=address,
        num_gpus=num_gpus,
    )
    print(f"tagged {data} into {out} (files part-NNNNNN-*, in input order)", file=sys.stderr)


def load_any_tagger(
    model: Path,
    compile_model: bool = False,
    onnx: bool = False,
    verify: bool = True,
    placement: Placement = Placement(),
) -> Any:
    """A .tagsure tagger (optionally compiled) on ``placement``'s device, or an ONNX file's
    tagger under ONNX Runtime: with ``onnx``, or when the file is one (by name or content)."""
    if onnx or looks_like_onnx(model):
        if compile_model:
            raise CommandFailed(f"{model}: an ONNX model cannot run under --compile", 2)
        if not model.exists():
            raise CommandFailed(f"{model}: no such ONNX file")
        from tagsure.serving.onnx_runtime import OnnxTagger

        if placement != Placement():
            raise CommandFailed(f"{model}: an ONNX model runs on ONNX Runtime's CPU, fp32", 2)
        return OnnxTagger(model)
    from tagsure.tagger import Tagger

    tagger = Tagger.load(
        model, verify=verify, device=placement.device, precision=placement.precision
    )
    if compile_model:
        from tagsure.training.compiled import compile_tagger

        tagger = compile_tagger(tagger)
    return tagger
