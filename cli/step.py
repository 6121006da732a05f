"""The `step` command: the client side of Stepstone, with step's command tree."""

from __future__ import annotations

import typer

from cli import ca, certificate, crypto, kms, oauth, path, ssh
from cli.common import run_cli
from cli.helptext import StepTyper, help_for

app = StepTyper(
    name="step",
    help="Stepstone's step: bootstrap trust in a CA, get, inspect and manage certificates.",
)
app.add_typer(ca.app, name="ca")
app.add_typer(certificate.app, name="certificate")
app.add_typer(crypto.app, name="crypto")
app.add_typer(kms.app, name="kms")
app.add_typer(ssh.app, name="ssh")
app.command(name="path")(path.path_command)
app.command(name="oauth")(oauth.oauth_command)


@app.command(name="help")
def help_command(
    ctx: typer.Context,
    command: list[str] | None = typer.Argument(
        None, metavar="COMMAND", help="The command to describe, e.g. 'ca certificate'."
    ),
) -> None:
    """Print the help of a command: 'step help ca certificate' is 'step ca certificate --help'.

    Examples:

      $ step help

      $ step help ca

      $ step help ca certificate
    """
    root = ctx.parent or ctx
    typer.echo(help_for(root, command or []))


def main() -> None:
    """Console-script entry point: one-line errors, never a traceback (unless STEPDEBUG=1)."""
    raise SystemExit(run_cli(app))
