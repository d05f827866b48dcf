"""A usage error (unknown option, missing argument, ...) as one line that says where to look."""

from __future__ import annotations

import sys

import typer


def usage_message(err: typer.TyperException, app: typer.Typer) -> str:
    """Click's message, and where to read the usage, on one line."""
    ctx = getattr(err, "ctx", None)
    where = ctx.command_path if ctx is not None else " ".join(["tagsure", *command_words(app)])
    return f"{one_line(err.format_message())} (see '{where} --help')"


def command_words(app: typer.Typer) -> list[str]:
    """The (sub)command names that start the command line: ``["lm", "train"]``."""
    command: object = typer.main.get_command(app)
    words = []
    for word in sys.argv[1:]:
        commands = getattr(command, "commands", {})
        if word not in commands:
            break
        words.append(word)
        command = commands[word]
    return words


def one_line(message: str) -> str:
    return " ".join(message.split())
