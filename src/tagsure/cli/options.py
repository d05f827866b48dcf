"""Option types that several commands share (their help text is part of the rendered help)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Options that `train` and `lm train` share.
MaxMinutes = Annotated[float | None, typer.Option(min=0.01, help="Stop after this many minutes.")]
CheckpointDir = Annotated[
    Path | None, typer.Option(help="Write a resumable checkpoint here after every epoch.")
]
CheckpointEvery = Annotated[
    int,
    typer.Option(min=0, help="Also checkpoint every N optimizer steps (0: only at epoch ends)."),
]
Resume = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        file_okay=False,
        help="Continue the run checkpointed in this folder, exactly where it stopped.",
    ),
]
# Options of every command that runs a network.
Device = Annotated[
    str, typer.Option(help="cpu, cuda, cuda:N, mps or auto (a GPU where there is one).")
]
Precision = Annotated[
    str, typer.Option(help="fp32, or bf16/fp16 mixed precision (autocast; fp16 scales the loss).")
]
# Options of the commands that only predict.
InferencePrecision = Annotated[
    str,
    typer.Option(
        "--precision",
        help="fp32; bf16/fp16 autocast; or int8: Linear/LSTM weights quantised in memory after "
        "the fp32 file is verified (CPU only).",
    ),
]
Quantize = Annotated[
    str | None,
    typer.Option(help="int8: an ONNX file with int8 weights, fingerprinted as quantised."),
]
