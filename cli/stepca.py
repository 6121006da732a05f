"""`step-ca`: run the certificate authority appliance from a ca.json, and its operator commands.

`step-ca CONFIG` serves, as step-ca does. A first argument that names one of the operator
commands (`step-ca version`, ...) runs that command instead: a ca.json is never called
`version`, and this keeps step-ca's command line while leaving room for the appliance's own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import typer

from appliance.assembly import AuthorityError
from appliance.authority import Authority
from appliance.config import CAConfig, ConfigError
from appliance.db.engine import DatabaseConfigError
from appliance.logs import LogFormat, configure
from cli.common import CLIError, read_password_file, run_cli
from cli.helptext import StepTyper
from keystores import KeyStoreError
from provisioners.base import ProvisionerConfigError

app = StepTyper(help="Run the Stepstone certificate authority (step-ca compatible).")
commands = StepTyper(
    name="step-ca",
    help="Operator commands of the Stepstone appliance; 'step-ca CONFIG' serves.",
)


@app.command()
def serve(
    config: Path = typer.Argument(..., help="Path to the CA's ca.json.", metavar="CONFIG"),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password that decrypts the intermediate key."
    ),
    pidfile: Path | None = typer.Option(None, "--pidfile", help="Write the server's PID here."),
    quiet: bool = typer.Option(
        False, "--quiet", help="Log warnings and errors only (gunicorn's included)."
    ),
    log_format: LogFormat = typer.Option(
        LogFormat.json,
        "--log-format",
        help="json: one JSON object per line, for log shippers; text: one line for people.",
    ),
) -> None:
    """Run the Stepstone certificate authority (step-ca compatible).

    Serves the step-ca HTTPS API on the `address` of CONFIG with a TLS certificate the CA
    issues to itself for its `dnsNames` (24 hours, renewed in place at 2/3 of its life).
    `kill -HUP` reloads CONFIG without dropping requests (a bad CONFIG is refused and the
    running one kept); SIGTERM stops gracefully.

    Examples:

      $ step-ca $(step path)/config/ca.json --password-file ./password.txt

      $ step-ca ./ca.json --password-file /run/secrets/ca-password --pidfile /run/step-ca.pid

    Operator commands: 'step-ca version'.
    """
    configure(log_format, quiet)
    password = read_password_file(password_file) if password_file else None
    from api.server import ApplianceServer, ListenError, check_listen
    from api.tls import ServerTLS

    try:
        cfg = CAConfig.load(config)
        check_listen(cfg.host, cfg.port)
        authority = Authority.open(cfg, password=password)
    except (
        ConfigError,
        ListenError,
        AuthorityError,
        ProvisionerConfigError,
        DatabaseConfigError,
    ) as exc:
        raise CLIError(f"step-ca: {exc}") from None

    tls = ServerTLS(authority)
    try:
        authority.issuer_signer.run_safely(tls.issue)
    except KeyStoreError as exc:
        raise CLIError(f"step-ca: issuing the CA's TLS certificate: {exc}") from None
    logging.getLogger("stepstone").info("serving on https://%s", cfg.address)
    ApplianceServer(
        authority,
        tls,
        config_path=config,
        password=password,
        pidfile=str(pidfile) if pidfile else None,
    ).run()


@commands.callback()
def _commands() -> None:
    """Operator commands of the Stepstone appliance; 'step-ca CONFIG' serves."""


@commands.command(name="version")
def version_command() -> None:
    """Print the version of Stepstone's step-ca.

    Examples:

      $ step-ca version
    """
    try:
        number = package_version("stepstone")
    except PackageNotFoundError:  # run from a checkout that was never installed
        number = "development"
    typer.echo(f"Stepstone step-ca/{number}")


def command_names() -> set[str]:
    """The operator commands' names: a first argument equal to one runs it, not the server."""
    return {info.name or "" for info in commands.registered_commands} | {
        info.name or "" for info in commands.registered_groups
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: one-line errors, a traceback only with STEPDEBUG=1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in command_names():
        raise SystemExit(run_cli(commands, args))
    raise SystemExit(run_cli(app, args))
