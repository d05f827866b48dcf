"""`tagsure lm ...`: character language models (the flags, and the run they start)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tagsure.cli import arguments
from tagsure.cli.options import CheckpointDir, CheckpointEvery, Device, MaxMinutes, Resume

lm_app = typer.Typer(
    help="Character language models for contextual string embeddings.",
    rich_markup_mode=None,
    invoke_without_command=True,
)


@lm_app.command("train")
def lm_train(
    out: Annotated[Path, typer.Option(help="Where to write the LM (the best by held-out bpc).")],
    text: Annotated[
        list[Path] | None, typer.Option(exists=True, dir_okay=False, help="Raw UTF-8 text file(s).")
    ] = None,
    conll: Annotated[
        list[Path] | None,
        typer.Option(
            exists=True, dir_okay=False, help="Tagged corpus file(s): one sentence per line."
        ),
    ] = None,
    direction: Annotated[str, typer.Option(help="forward or backward.")] = "forward",
    hidden_size: Annotated[int, typer.Option(min=1, help="LSTM hidden size.")] = 512,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Passes over the text (10; with --resume: in all).")
    ] = None,
    max_minutes: MaxMinutes = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Text streams read in parallel.")] = 64,
    sequence_length: Annotated[int, typer.Option(min=1, help="Characters per TBPTT step.")] = 250,
    seed: Annotated[int, typer.Option(help="Seed; the same seed repeats a CPU run.")] = 1,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings and LSTM output.")] = 0.1,
    checkpoint_dir: CheckpointDir = None,
    checkpoint_every: CheckpointEvery = 0,
    resume: Resume = None,
    nproc: Annotated[
        int,
        typer.Option(
            help="Train data-parallel on N processes of this machine (torchrun); each reads "
            "--batch-size streams of N x that many."
        ),
    ] = 1,
    device: Device = "cpu",
) -> None:
    """Train a character-level LSTM language model (forward or backward) on raw text."""
    if nproc > 1 and not arguments.launched():
        from tagsure.cli import commands

        commands.launch(nproc, sys.argv[1:], resume or checkpoint_dir)
        return
    run_lm_training(
        out,
        [str(p) for p in text or []],
        [str(p) for p in conll or []],
        {
            "direction": direction,
            "hidden_size": hidden_size,
            "epochs": epochs,
            "max_minutes": max_minutes,
            "batch_size": batch_size,
            "sequence_length": sequence_length,
            "seed": seed,
            "dropout": dropout,
        },
        checkpoint_dir,
        checkpoint_every,
        resume,
        device,
    )


def run_lm_training(
    out: Path,
    text: list[str],
    conll: list[str],
    settings: dict[str, Any],
    checkpoint_dir: Path | None,
    checkpoint_every: int,
    resume_dir: Path | None,
    device: str = "cpu",
) -> None:
    from tagsure.cli.progress import TqdmLMProgress
    from tagsure.training.distributed import leave
    from tagsure.training.lm_trainer import LMTrainConfig, resume_lm, train_lm

    epochs = settings.pop("epochs")
    first = int(os.environ.get("RANK", "0")) == 0  # one process of N shows progress and prints
    progress = TqdmLMProgress() if first else None
    if resume_dir is not None:
        records = resume_lm(resume_dir, progress, epochs, out, device)
    else:
        config = LMTrainConfig(text=text, conll=conll, **settings)
        config.epochs = epochs or config.epochs
        records = train_lm(config, out, progress, checkpoint_dir, checkpoint_every, device)
    leave()
    if not first:
        return
    best = min(records, key=lambda r: r.holdout_bpc)
    print(f"best held-out {best.holdout_bpc:.3f} bits per char (epoch {best.epoch}); saved {out}")
