"""The ``tagsure`` command: a thin layer that parses arguments, calls the library and prints.

A :class:`~tagsure.errors.TagsureError` becomes one line on stderr and a non-zero exit code;
any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from tagsure.cli import arguments, lm, serve
from tagsure.cli.options import (
    CheckpointDir,
    CheckpointEvery,
    Device,
    InferencePrecision,
    MaxMinutes,
    Precision,
    Quantize,
    Resume,
)
from tagsure.cli.usage import one_line, usage_message
from tagsure.defaults import BATCH_SIZE, MAX_CHARS
from tagsure.errors import TagsureError
from tagsure.version import __version__

app = typer.Typer(
    help="Train, evaluate and use named-entity taggers that load exactly as they were trained.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        print(f"tagsure {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train, evaluate and use named-entity taggers that load exactly as they were trained."""
    _help_without_command(ctx)


def _help_without_command(ctx: typer.Context) -> None:
    """A bare ``tagsure`` (or ``tagsure lm``) prints its help and succeeds."""
    if ctx.invoked_subcommand is None:
        print(ctx.get_help())
        raise typer.Exit(0)


app.command()(serve.serve)


@app.command()
def train(
    train_file: Annotated[
        Path | None,
        typer.Option("--train", exists=True, dir_okay=False, help="Training corpus (CoNLL)."),
    ] = None,
    dev_file: Annotated[
        Path | None,
        typer.Option(
            "--dev",
            exists=True,
            dir_okay=False,
            help="Dev corpus, for model selection and learning-rate annealing.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the model file.")] = Path(
        "model.tagsure"
    ),
    config: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="TOML file with [data], [model], [training] sections."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum number of epochs.")] = None,
    max_minutes: MaxMinutes = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed; the same seed repeats a CPU run bit for bit.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Sentences per batch.")] = None,
    checkpoint_dir: CheckpointDir = None,
    checkpoint_every: CheckpointEvery = 0,
    resume: Resume = None,
    compile_steps: Annotated[
        bool, typer.Option("--compile", help="Run the training steps under torch.compile.")
    ] = False,
    card: Annotated[
        list[str] | None,
        typer.Option(
            help="A model-card field, KEY=VALUE (name, description, language, license, "
            "training_data, intended_use, limitations, authors); repeat it. Overrides [card]."
        ),
    ] = None,
    device: Device = "cpu",
    precision: Precision = "fp32",
    nproc: Annotated[
        int,
        typer.Option(
            help="Train data-parallel on N processes of this machine (torchrun --standalone "
            "--nproc-per-node N); each takes --batch-size sentences of a batch of N x that."
        ),
    ] = 1,
) -> None:
    """Train a BiLSTM-CRF tagger on a CoNLL file and save it as one self-contained file.

    Beside the model it writes NAME.metrics.jsonl (one line per epoch) and NAME.curve.png.
    """
    from tagsure.cli import commands

    if nproc > 1 and not arguments.launched():
        commands.launch(nproc, sys.argv[1:], resume or checkpoint_dir)
        return
    overrides = {
        "epochs": epochs,
        "max_minutes": max_minutes,
        "seed": seed,
        "batch_size": batch_size,
        "compile": True if compile_steps else None,
    }
    commands.train(
        train_file,
        dev_file,
        out,
        config,
        overrides,
        checkpoint_dir,
        checkpoint_every,
        resume,
        arguments.Placement(device, precision),
        card,
    )


@app.command()
def evaluate(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A .tagsure model file (or its .onnx export).")
    ],
    data: Annotated[
        Path,
        typer.Argument(metavar="DATA", exists=True, dir_okay=False, help="A tagged CoNLL file."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            help="Also write this HTML page: every sentence, entities highlighted, errors "
            "(wrong type, spurious, missed) marked."
        ),
    ] = None,
    device: Device = "cpu",
    precision: Precision = "fp32",
) -> None:
    """Score a model on a tagged file: entity precision/recall/F1 per type, as conlleval counts."""
    from tagsure.cli import commands

    commands.evaluate(model, data, as_json, html, arguments.Placement(device, precision))


@app.command()
def predict(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A .tagsure model file (or .onnx).")
    ],
    data: Annotated[
        Path,
        typer.Argument(
            metavar="DATA",
            help="Raw text (one document per line), JSON lines, Parquet or a CoNLL file; '-' "
            "reads standard input. With --engine ray: a folder of JSONL or Parquet files.",
        ),
    ],
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="conll: token [gold] predicted per line; jsonl: entities per input line / "
            "sentence / record; parquet; html: one page, entities highlighted. Default: conll "
            "for CoNLL input, parquet for Parquet input or an --out ending in .parquet, else "
            "jsonl.",
        ),
    ] = "",
    input_format: Annotated[
        str, typer.Option("--input", help="auto, conll, text, jsonl or parquet.")
    ] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(help="Write here instead of stdout ('-' is stdout; a folder for Ray)."),
    ] = None,
    compile_model: Annotated[
        bool, typer.Option("--compile", help="Run inference under torch.compile.")
    ] = False,
    onnx: Annotated[
        bool, typer.Option("--onnx", help="MODEL is an .onnx file: run it with ONNX Runtime.")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes tagging in parallel, each loading the model once.")
    ] = 1,
    batch_size: Annotated[
        int,
        typer.Option(min=1, help="Documents read, tagged and written at a time (bounds memory)."),
    ] = BATCH_SIZE,
    text_field: Annotated[
        str, typer.Option(help="The text field of JSONL records / column of Parquet files.")
    ] = "text",
    max_chars: Annotated[
        int, typer.Option(min=1, help="Longer documents get an error field instead of entities.")
    ] = MAX_CHARS,
    progress: Annotated[
        bool, typer.Option("--progress", help="Show words/s on stderr even when not a TTY.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="local (this machine's processes) or ray (Ray Data).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="With --engine ray: the cluster (default: local Ray).")
    ] = None,
    num_gpus: Annotated[
        float, typer.Option(min=0, help="With --engine ray: GPUs per actor (0: CPU actors).")
    ] = 0.0,
    device: Device = "cpu",
    precision: InferencePrecision = "fp32",
) -> None:
    """Tag raw text or a CoNLL file (or JSON lines, Parquet); streams in --batch-size rows."""
    from tagsure.cli import predicting

    if engine == "ray":
        predicting.predict_ray(
            model,
            data,
            out,
            output_format,
            text_field,
            workers,
            batch_size,
            max_chars,
            address,
            num_gpus,
        )
        return
    if engine != "local":
        raise typer.BadParameter(f"unknown engine {engine!r}; use local or ray")
    predicting.predict(
        model,
        data,
        output_format,
        input_format,
        out,
        compile_model,
        onnx,
        arguments.StreamOptions(workers, batch_size, text_field, max_chars, progress),
        arguments.Placement(device, precision),
    )


@app.command()
def export(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A .tagsure model file.")],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Output: OUT.onnx, or a folder for hf.")
    ],
    export_format: Annotated[
        str, typer.Option("--format", help="onnx: one self-contained ONNX file; hf: a folder.")
    ] = "onnx",
    quantize: Quantize = None,
) -> None:
    """Export a model for other runtimes: ONNX (ONNX Runtime, no tagsure file needed) or hf."""
    from tagsure.cli import commands

    commands.export(model, out, export_format, quantize)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo model and its logs.")] = Path(
        "demo-output"
    ),
    epochs: Annotated[
        int, typer.Option(help="Epochs to train: the same model on every machine, only slower.")
    ] = arguments.DEMO_EPOCHS,
    max_minutes: Annotated[
        float, typer.Option(help="Also stop after this many minutes (0: no time limit).")
    ] = 0.0,
) -> None:
    """Train on the bundled WikiANN sample, save, reload in a new process, compare, tag text."""
    from tagsure.cli import commands

    commands.demo(out, epochs, max_minutes)


@app.command()
def verify(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A .tagsure model file (or its .onnx export).")
    ],
    data: Annotated[
        Path | None,
        typer.Argument(
            metavar="DATA",
            exists=True,
            dir_okay=False,
            help="Optional: a tagged file. On the dev file the model was selected on, its "
            "metrics must equal those stored at save time; on any other they are only shown.",
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            help="Allowed max abs difference of emission scores (default: 0, bit-identical, "
            "on the platform the file was saved on; 1e-4 on another)."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Where to re-run the probe (cpu, cuda, cuda:N, mps, auto).")
    ] = "cpu",
) -> None:
    """Re-run the probe stored at save time (and the dev metrics, given DATA); exit 1 on change."""
    from tagsure.cli import commands

    commands.verify(model, data, tolerance, device)


@app.command("inspect")
def inspect_command(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="A tagsure file, .safetensors, .pt/.pth/.bin or a Hugging Face model folder.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what a model file holds: config, labels, tensors, wrapper prefixes and the head."""
    from tagsure.cli import commands

    commands.inspect(path, as_json)


@app.command("load-weights")
def load_weights(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="The tagsure model to load weights into.")
    ],
    checkpoint: Annotated[
        Path, typer.Argument(metavar="CHECKPOINT", help="A .safetensors/.pt/.ckpt checkpoint.")
    ],
    out: Annotated[Path, typer.Option(help="Where to write the updated model.")],
    allow_missing: Annotated[
        list[str] | None, typer.Option(help="Glob of model tensors that may stay as they are.")
    ] = None,
    ignore_unexpected: Annotated[
        list[str] | None, typer.Option(help="Glob of checkpoint tensors to drop.")
    ] = None,
) -> None:
    """Load a foreign checkpoint into a tagsure model strictly; report every mismatch."""
    from tagsure.cli import commands

    commands.load_weights(model, checkpoint, out, allow_missing or [], ignore_unexpected or [])


@app.command("import-hf")
def import_hf(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            exists=True,
            file_okay=False,
            help="A local Hugging Face token-classification folder (with id2label).",
        ),
    ],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Where to write the tagsure model file.")
    ],
) -> None:
    """Convert a Hugging Face token classifier into a tagsure model with the same predictions."""
    from tagsure.cli import commands

    commands.import_hf(directory, out)


app.add_typer(lm.lm_app, name="lm")
lm.lm_app.callback()(_help_without_command)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(prog_name="tagsure", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except arguments.CommandFailed as err:
        print(f"tagsure: {one_line(str(err))}", file=sys.stderr)
        sys.exit(err.exit_code)
    except TagsureError as err:
        print(f"tagsure: error: {one_line(str(err))}", file=sys.stderr)
        sys.exit(1)
    except typer.TyperException as err:  # a usage error: unknown option, missing argument, ...
        print(f"tagsure: error: {usage_message(err, app)}", file=sys.stderr)
        sys.exit(err.exit_code)
    except typer.Abort:
        print("tagsure: aborted", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("tagsure: interrupted", file=sys.stderr)
        sys.exit(130)
    # Anything else is a bug: it keeps its traceback.


if __name__ == "__main__":
    main()
