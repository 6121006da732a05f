"""Pieces every `step` command shares: failing with one line, STEPPATH, reading secrets, and
checking and writing output files."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import typer
import typer.main

from keystores import write_atomic
from pki.steppath import step_path

__all__ = [
    "CLIError",
    "check_outputs",
    "check_writable",
    "die",
    "go_strerror",
    "os_error_line",
    "prompt_password",
    "read_password_file",
    "run_cli",
    "step_path",
    "write_output",
]


class CLIError(Exception):
    """An error the user caused or can fix: printed as one line, exit status 1."""


def die(message: str, code: int = 1) -> NoReturn:
    """Print `message` to stderr the way step does (no traceback) and exit."""
    typer.echo(message, err=True)
    raise typer.Exit(code)


def go_strerror(exc: OSError) -> str:
    """An OSError worded like Go's syscall errors ("no such file or directory")."""
    text = os.strerror(exc.errno) if exc.errno else str(exc)
    return text[:1].lower() + text[1:]


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


# --- output files ---------------------------------------------------------------------------


def _why_unwritable(path: Path) -> str | None:
    """Why `write_output(path, ...)` would fail, or None.

    Mirrors `write_atomic`: missing parent directories are created, and the file is replaced
    by a rename, so what must hold is that the nearest existing ancestor is a directory we can
    create files in and that `path` is not a directory.
    """
    if path.is_dir():
        return go_strerror(IsADirectoryError(errno.EISDIR, ""))
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return go_strerror(NotADirectoryError(errno.ENOTDIR, ""))
    try:
        # An unnamed file (O_TMPFILE) where supported: a real test that leaves nothing behind.
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        return go_strerror(exc)
    return None


def check_writable(*paths: Path | None) -> None:
    """Fail now, with step's `open PATH: reason` line, if a file could not be written later.

    Commands call this before they spend a token or ask the CA for anything, so a certificate
    is never issued and then lost for want of a place to put it.
    """
    for path in paths:
        if path is None:
            continue
        reason = _why_unwritable(Path(path))
        if reason is not None:
            raise CLIError(f"open {path}: {reason}")


def check_outputs(paths: Sequence[Path], force: bool) -> None:
    """`check_writable`, then step's overwrite rule: an existing file is replaced only with
    '--force' or after a yes on a terminal."""
    check_writable(*paths)
    existing = [p for p in paths if p.exists()]
    if not existing or force:
        return
    if not sys.stdin.isatty():
        raise CLIError(f"file {existing[0]} already exists: use '--force' to overwrite it")
    for p in existing:
        if not typer.confirm(f"Would you like to overwrite {p}?"):
            raise typer.Exit(1)


def write_output(path: Path, data: bytes, mode: int = 0o600) -> None:
    """`write_atomic`, failing with step's one line instead of an OSError."""
    try:
        write_atomic(path, data, mode=mode)
    except OSError as exc:
        raise CLIError(f"open {path}: {go_strerror(exc)}") from None


# --- running a command ----------------------------------------------------------------------


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: `PATH [PATH2]: reason`."""
    if exc.filename is None:
        return go_strerror(exc)
    names = " ".join(str(n) for n in (exc.filename, exc.filename2) if n is not None)
    return f"{names}: {go_strerror(exc)}"


def _fail(exc: BaseException, message: str, code: int) -> int:
    if os.environ.get("STEPDEBUG") == "1":
        traceback.print_exception(exc, file=sys.stderr)
    typer.echo(message, err=True)
    return code


def run_cli(app: typer.Typer, args: Sequence[str] | None = None) -> int:
    """Run `app` as step ends: exit status 0, or one line on stderr and a non-zero status,
    whatever went wrong. STEPDEBUG=1 adds the traceback."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, standalone_mode=False)
    except CLIError as exc:
        return _fail(exc, str(exc), 1)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort as exc:
        return _fail(exc, "aborted", 1)
    except typer.TyperException as exc:  # usage errors: unknown flag, missing argument, ...
        return _fail(exc, " ".join(exc.format_message().split()), exc.exit_code)
    except KeyboardInterrupt:
        return 130  # Ctrl-C: the shell's convention, and nothing more to say
    except BrokenPipeError:
        # The reader went away (`step ... | head`): nothing more can be said on stdout.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces stdout until exit
        return 1
    except OSError as exc:
        return _fail(exc, os_error_line(exc), 1)
    except Exception as exc:
        return _fail(exc, str(exc) or type(exc).__name__, 1)
    return result if isinstance(result, int) else 0
