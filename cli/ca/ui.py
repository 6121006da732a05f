"""step's way of talking to people: `✔ Name: value` lines and notes on stderr."""

from __future__ import annotations

import sys

import typer

_GREEN_CHECK = "\x1b[32m✔\x1b[0m"


def selected(name: str, value: str) -> None:
    """A `✔ Name: value` line, coloured on a terminal as step does."""
    if sys.stderr.isatty():
        typer.echo(f"{_GREEN_CHECK} \x1b[1m{name}:\x1b[0m {value}", err=True)
    else:
        typer.echo(f"✔ {name}: {value}", err=True)


def note(message: str) -> None:
    """A plain line on stderr."""
    typer.echo(message, err=True)
