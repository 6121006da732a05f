"""Pieces every `step` command shares: failing with one line, STEPPATH, reading secrets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer

from appliance.steppath import step_path

__all__ = ["CLIError", "die", "prompt_password", "read_password_file", "step_path"]


class CLIError(Exception):
    """An error the user caused or can fix: printed as one line, exit status 1."""


def die(message: str, code: int = 1) -> NoReturn:
    """Print `message` to stderr the way step does (no traceback) and exit."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def read_password_file(path: Path) -> bytes:
    """Read a password file as step does: the whole file with trailing newlines removed."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"error reading {path}: {exc.strerror}") from exc
    return data.rstrip(b"\r\n")


def prompt_password(prompt: str) -> bytes:
    """Ask for a password on the terminal; refuse when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise CLIError(f"{prompt.rstrip(': ')}: no terminal to prompt on; use a password file")
    value: str = typer.prompt(prompt, hide_input=True)
    return value.encode()
