"""The `step` command: the client side of Stepstone, with step's command tree."""

from __future__ import annotations

import typer

from cli import ca, certificate, crypto, kms, path
from cli.common import CLIError

app = typer.Typer(
    name="step",
    help="Stepstone's step: bootstrap trust in a CA, get, inspect and manage certificates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(ca.app, name="ca")
app.add_typer(certificate.app, name="certificate")
app.add_typer(crypto.app, name="crypto")
app.add_typer(kms.app, name="kms")
app.command(name="path")(path.path_command)


def main() -> None:
    """Console-script entry point: one-line errors, never a traceback."""
    try:
        app()
    except CLIError as exc:
        typer.echo(str(exc), err=True)
        raise SystemExit(1) from None
