"""What each CLI command does, as plain functions over the library (no argument parsing here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tagsure.cli.arguments import (  # noqa: F401 (commands.X for the parser's types)
    DEMO_EPOCHS,
    CommandFailed,
    Placement,
    StreamOptions,
    launched,
)
from tagsure.cli.predicting import load_any_tagger
from tagsure.cli.progress import TqdmProgress
from tagsure.data.conll import Corpus, load_corpus, read_conll
from tagsure.errors import InputError
from tagsure.evaluation.verify import differences, same_gold_entities
from tagsure.storage.atomic import atomic_writer
from tagsure.storage.model_card import parse_card_options
from tagsure.storage.onnx_file import looks_like_onnx
from tagsure.tagger import Tagger
from tagsure.training.config import TrainConfig
from tagsure.training.trainer import format_record, resume
from tagsure.training.trainer import train as run_training

BUNDLED = Path(__file__).resolve().parents[1] / "data" / "bundled"
DEMO_SENTENCE = "Angela Merkel met Emmanuel Macron in Paris to discuss the European Union ."


def launch(nproc: int, argv: list[str], run_dir: Path | None) -> None:
    """``tagsure ARGV`` on ``nproc`` processes of this machine, started by torchrun."""
    args, skip = [], False
    for arg in argv:  # the same command, without --nproc: each process is one of the N
        if skip or arg.startswith("--nproc="):
            skip = False
            continue
        skip = arg == "--nproc"
        if not skip:
            args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={nproc}", "-m", "tagsure", *args]
    code = subprocess.run(command).returncode
    if code != 0:
        hint = f"; its last checkpoint is intact: resume with --resume {run_dir} --nproc {nproc}"
        raise CommandFailed(
            f"training on {nproc} processes failed (exit code {code}; torchrun's report above "
            f"names the process){hint if run_dir else ''}"
        )


def train(
    train_file: Path | None,
    dev_file: Path | None,
    out: Path,
    config_file: Path | None,
    overrides: dict[str, float | int | None],
    checkpoint_dir: Path | None,
    checkpoint_every: int,
    resume_dir: Path | None,
    placement: Placement = Placement(),
    card: list[str] | None = None,
) -> None:
    from tagsure.training.distributed import leave

    first = int(os.environ.get("RANK", "0")) == 0  # one process of N shows progress and prints
    progress = TqdmProgress() if first else None
    where = placement.device, placement.precision
    if resume_dir is not None:
        fixed = [name for name, value in overrides.items() if value is not None]
        fixed = [name for name in fixed if name not in ("epochs", "max_minutes")]
        if train_file or dev_file or config_file or fixed:
            options = ["--" + n.replace("_", "-") for n in fixed]
            options += [o for o, v in (("--train", train_file), ("--dev", dev_file)) if v]
            options += ["--config"] if config_file else []
            raise CommandFailed(
                f"--resume continues a run with the settings in its checkpoint; drop "
                f"{', '.join(options)} (only --epochs and --max-minutes extend it)",
                2,
            )
        epochs, minutes = overrides.get("epochs"), overrides.get("max_minutes")
        epochs = None if epochs is None else int(epochs)
        result = resume(resume_dir, progress, *where, epochs=epochs, max_minutes=minutes)
    else:
        config = TrainConfig.from_toml(config_file) if config_file else TrainConfig()
        if train_file:
            config.data.train = str(train_file)
        if dev_file:
            config.data.dev = str(dev_file)
        for name, value in overrides.items():
            if value is not None:
                setattr(config.training, name, value)
        for name, text in parse_card_options(card or []).items():
            setattr(config.card, name, text)
        for name in ("train", "dev", "word_vectors"):
            given = getattr(config.data, name)
            if given and not Path(given).is_file():
                named = f"[data] {name} in {config_file}" if config_file else f"--{name}"
                raise InputError(f"{given}: no such file ({named})")
        if not config.data.train:
            raise InputError("nothing to train on: give --train FILE or [data] train in --config")
        result = run_training(
            config,
            out=out,
            progress=progress,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            device=placement.device,
            precision=placement.precision,
        )
    leave()
    if not first:
        return
    best = next(r for r in result.history if r.epoch == result.best_epoch)
    print(f"stopped: {result.stop_reason}; best epoch {result.best_epoch}: {format_record(best)}")
    if resume_dir is None:
        print(f"saved {out} (with {out.stem}.metrics.jsonl and {out.stem}.curve.png beside it)")


def evaluate(
    model: Path,
    data: Path,
    as_json: bool,
    html: Path | None = None,
    placement: Placement = Placement(),
) -> None:
    tagger = load_any_tagger(model, placement=placement)
    if html is None:
        metrics = tagger.evaluate(read_conll(data))  # streamed: memory stays one chunk's
    else:
        metrics = evaluate_html(tagger, model, data, html)
    print(json.dumps(metrics.to_dict(), indent=2) if as_json else metrics.format_table())


def evaluate_html(tagger: Tagger, model: Path, data: Path, html: Path) -> Any:
    """Evaluate, drawing every sentence with its errors marked into the page ``html``."""
    from tagsure.writers_html import HtmlPage, error_summary

    note = f"{model.name} on {data.name}: wrong type, spurious and missed entities marked"
    with atomic_writer(html, "w") as handle:
        page = HtmlPage(handle, f"tagsure evaluate: {data.name}", note)
        scheme = tagger.output_scheme
        metrics = tagger.evaluate(
            read_conll(data), lambda s, tags: page.add_evaluated(s, tags, scheme)
        )
        page.close(f"{error_summary(page)}; F1 {100 * metrics.micro.f1:.2f}")
    return metrics


def export(model: Path, out: Path, export_format: str, quantize: str | None = None) -> None:
    if looks_like_onnx(model):
        raise CommandFailed(f"{model}: already an ONNX export; export its .tagsure file", 2)
    if quantize is not None and export_format != "onnx":
        raise CommandFailed(f"--quantize is for --format onnx, not {export_format}", 2)
    tagger = Tagger.load(model)
    if export_format == "onnx":
        from tagsure.storage.onnx_export import export_onnx

        export_onnx(tagger, out, quantize)
    elif export_format == "hf":
        from tagsure.interop.huggingface import export_hf  # written on another branch

        export_hf(tagger, out)
    else:
        raise CommandFailed(f"unknown export format {export_format!r}; use onnx or hf", 2)
    print(f"exported {model} to {out} ({', '.join(filter(None, [export_format, quantize]))})")


def demo(out: Path, epochs: int = DEMO_EPOCHS, max_minutes: float = 0.0) -> None:
    """Budgeted by work, not time: a busy machine trains the same model, only later."""
    files = {split: BUNDLED / f"wikiann-en-{split}.txt" for split in ("train", "dev", "test")}
    # the tests' 3,000 sentences and the 17,000 more of WikiANN's training split: with
    # fewer, a news sentence's names came out as one span or the wrong type
    parts = [load_corpus(files["train"]), load_corpus(BUNDLED / "wikiann-en-train-extra.txt")]
    sentences = [s for part in parts for s in part.sentences]
    corpora = (Corpus(sentences, parts[0].scheme, parts[0].path), load_corpus(files["dev"]))
    limit = f" (or {max_minutes} minutes)" if max_minutes else ""
    print(
        f"1/4 training on the bundled WikiANN sample ({len(sentences):,} sentences) "
        f"for {epochs} epochs{limit}"
    )
    config = TrainConfig.from_dict(
        {
            "data": {"train": str(files["train"]), "dev": str(files["dev"])},
            "training": {"max_minutes": max_minutes, "epochs": epochs},
        }
    )
    model_path = out / "wikiann.tagsure"
    result = run_training(config, out=model_path, progress=TqdmProgress(), corpora=corpora)
    test = load_corpus(files["test"])
    in_memory = result.tagger.evaluate(test)
    print(
        f"2/4 saved {model_path} (best dev epoch {result.best_epoch} of "
        f"{len(result.history)}); test F1 in memory: {100 * in_memory.micro.f1:.2f}"
    )
    print("3/4 reloading the file in a new process and evaluating again")
    started = time.perf_counter()
    command = ["evaluate", str(model_path), str(files["test"]), "--json"]
    reloaded = subprocess.run(
        [sys.executable, "-m", "tagsure", *command],
        check=True,
        capture_output=True,
        text=True,
    )
    after = json.loads(reloaded.stdout)
    same = after == json.loads(json.dumps(in_memory.to_dict()))
    print(
        f"    test F1 after reload:  {100 * after['micro']['f1']:.2f} "
        f"({'identical metrics' if same else 'DIFFERENT metrics'}, "
        f"{time.perf_counter() - started:.1f} s)"
    )
    print(in_memory.format_table())
    print(f"4/4 tagging: {DEMO_SENTENCE}")
    for entity in Tagger.load(model_path).predict([DEMO_SENTENCE])[0].entities:
        print(
            f"    {entity.label:5} {entity.text!r} [{entity.start}:{entity.end}] "
            f"score {entity.score:.2f}"
        )
    if not same:
        raise CommandFailed("the reloaded model's metrics differ from the trained model's")


def verify(model: Path, data: Path | None, tolerance: float | None, device: str = "cpu") -> None:
    from tagsure.storage import fingerprint

    tagger = load_any_tagger(model, verify=False, placement=Placement(device))
    is_onnx = not isinstance(tagger, Tagger)
    stored = tagger.metadata.get("fingerprint")
    if stored is None:
        raise CommandFailed(
            f"{model}: the file has no fingerprint to verify"
            + ("; re-export it from its .tagsure file with this tagsure" if is_onnx else "")
        )
    if is_onnx and tolerance is None and not tagger.quantized:  # fingerprinted in torch
        tolerance = fingerprint.CROSS_PLATFORM_TOLERANCE
    check = fingerprint.verify(tagger, stored, tolerance)
    tokens = sum(map(len, stored.sentences))
    tags = "see below" if check.problems else "identical"
    print(
        f"probe: {len(stored.sentences)} sentences, {tokens} tokens; emissions "
        f"{'bit-identical' if check.identical_emissions else 'differ'} (max abs difference "
        f"{check.max_abs_difference:.3g}, tolerance {check.tolerance:g}"
        f"{'' if check.same_platform else ': saved on another platform or device'}, run on "
        f"{'ONNX Runtime' if is_onnx else tagger.device}); tags {tags}"
    )
    saved = tagger.metadata.get("metrics", {}).get("dev")
    now = tagger.evaluate(load_corpus(data)) if data is not None else None
    if now is not None and saved and not same_gold_entities(saved, now):
        # Not the dev file the model was selected on: its metrics say nothing about the file.
        print(
            f"metrics on {data}: F1 {100 * now.micro.f1:.2f}; not compared: {data} is not the "
            f"dev file the model was selected on ({now.micro.gold} gold entities, the dev file "
            f"{saved['micro']['gold']}); the probe alone was verified"
        )
        now = None
    problems = differences(check.problems, saved, now, str(data))
    if now is not None and saved:
        print(
            f"metrics on {data} (the dev file): F1 {100 * now.micro.f1:.2f} "
            f"(at save time: {100 * saved['micro']['f1']:.2f})"
        )
    for problem in problems:
        print(f"DIFFERENT: {problem}")
    if problems:
        raise CommandFailed(f"{model}: verification failed ({len(problems)} differences)")
    print("verified: the model reproduces what it did when it was saved")


def inspect(path: Path, as_json: bool) -> None:
    from tagsure.storage.inspect import inspect_path

    report = inspect_path(path)
    print(json.dumps(report.to_dict(), indent=2) if as_json else report.format_text())


def load_weights(
    model: Path, checkpoint: Path, out: Path, allow_missing: list[str], ignore_unexpected: list[str]
) -> None:
    from tagsure.storage.foreign import load_into

    tagger = Tagger.load(model)
    report = load_into(
        tagger.model, checkpoint, allow_missing=allow_missing, ignore_unexpected=ignore_unexpected
    )
    tagger.save(out)
    print(report.format_table())
    print(f"saved {out}")


def import_hf(directory: Path, out: Path) -> None:
    from tagsure.interop.huggingface import import_hf as convert

    tagger = convert(directory, out)
    labels = ", ".join(tagger.labels)
    print(f"saved {out}: {len(tagger.labels)} labels ({labels}), {tagger.model_scheme.value}")
