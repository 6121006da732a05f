"""`step crypto jwk keyset add|remove|list|find`: a JWK set file edited under a lock.

Follows smallstep/cli's command/crypto/jwk/keyset.go: the file is created 0600 if missing,
locked without waiting (a second writer fails with "file is locked"), and rewritten as
indented JSON `{"keys": [...]}`. Keys are found by exact `kid`; several may share one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import typer

from cli.common import CLIError, go_strerror
from cli.crypto_jose_key import PASSWORD_FILE_HELP, indent_json, jwk_json, load_keyset, stdin_jwk
from cli.helptext import StepTyper

__all__ = ["app"]

app = StepTyper(help="Add, remove, list and find keys in a JSON Web Key set (JWKS).")


class _LockedKeySet:
    """A JWK set file opened and locked (non-blocking) as step's rwLockKeySet does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CLIError(f"open {path}: {go_strerror(exc)}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise CLIError(f"error reading {path}: file is locked") from None
        with os.fdopen(os.dup(self.fd), "rb") as f:
            data = f.read()
        try:
            self.keys = load_keyset(data, str(path)) if data.strip() else []
        except CLIError:
            os.close(self.fd)
            raise

    def close(self, write: bool) -> None:
        try:
            if write:
                data = indent_json({"keys": self.keys})
                os.ftruncate(self.fd, 0)
                os.pwrite(self.fd, data, 0)
        finally:
            os.close(self.fd)


def _jwks_arg() -> Any:
    return typer.Argument(..., metavar="JWKS_FILE", help="The JWK set file.")


@app.command("add")
def keyset_add(
    jwks_file: Path = _jwks_arg(),
    password_file: Path | None = typer.Option(
        None, "--password-file", metavar="file", help=PASSWORD_FILE_HELP
    ),
) -> None:
    """Add the JWK read from standard input to a JWK set, creating the file if needed.

    An encrypted JWK is decrypted first. Keys may share a kid (RFC 7517 allows it).

    Examples:

      $ step crypto jwk keyset add jwks.json < jwk.pub.json

      $ step crypto jwk create pub.json priv.json && step crypto jwk keyset add ks.json < pub.json
    """
    sk = stdin_jwk(password_file, "JWK")
    keyset = _LockedKeySet(jwks_file)
    keyset.keys.append(jwk_json(sk, private=not sk.is_public))
    keyset.close(write=True)


@app.command("remove")
def keyset_remove(
    jwks_file: Path = _jwks_arg(),
    kid: str = typer.Option("", "--kid", metavar="kid", help="The key ID of the keys to remove."),
) -> None:
    """Remove the keys with the given kid from a JWK set.

    Examples:

      $ step crypto jwk keyset remove jwks.json --kid my-key-id
    """
    keyset = _LockedKeySet(jwks_file)
    keyset.keys = [k for k in keyset.keys if k.get("kid", "") != kid]
    keyset.close(write=True)


@app.command("list")
def keyset_list(jwks_file: Path = _jwks_arg()) -> None:
    """Print the kid of every key in a JWK set, one a line.

    Examples:

      $ step crypto jwk keyset list jwks.json
    """
    keyset = _LockedKeySet(jwks_file)
    keyset.close(write=False)
    for key in keyset.keys:
        typer.echo(key.get("kid", ""))


@app.command("find")
def keyset_find(
    jwks_file: Path = _jwks_arg(),
    kid: str = typer.Option("", "--kid", metavar="kid", help="The key ID of the keys to print."),
) -> None:
    """Print the keys of a JWK set that have the given kid.

    Examples:

      $ step crypto jwk keyset find jwks.json --kid my-key-id
    """
    keyset = _LockedKeySet(jwks_file)
    keyset.close(write=False)
    for key in keyset.keys:
        if key.get("kid", "") == kid:
            typer.echo(indent_json(key).decode())
