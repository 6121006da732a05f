"""`step-ca`: run the certificate authority appliance from a ca.json."""

from __future__ import annotations

import logging
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


def main() -> None:
    """Console-script entry point: one-line errors, a traceback only with STEPDEBUG=1."""
    raise SystemExit(run_cli(app))
