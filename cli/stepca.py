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

from appliance.acme import validation
from appliance.acme.dns01 import parse_nameserver
from appliance.assembly import AuthorityError
from appliance.authority import Authority
from appliance.config import CAConfig, ConfigError
from appliance.credentials import CredentialError, ca_password, with_kms_pin
from appliance.db.engine import DatabaseConfigError
from appliance.logs import LogFormat, configure
from cli import stepca_backup, stepca_certificates
from cli.common import CLIError, read_password_file, run_cli
from cli.helptext import StepTyper
from cli.stepca_audit import register as register_audit
from cli.stepca_check import run_check
from cli.stepca_db import register as register_db
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
    check: bool = typer.Option(
        False,
        "--check",
        help="Check CONFIG (files, key, chain, provisioners, database) and exit: every "
        "problem on its own line and status 1, else a summary. Writes nothing.",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="With '--check': print the report as JSON."
    ),
    resolver: str | None = typer.Option(
        None,
        "--resolver",
        metavar="HOST:PORT",
        help="The DNS resolver (an IP address, port 53 unless given) for ACME's dns-01 "
        "lookups and the addresses of http-01 and tls-alpn-01 names, instead of the system's.",
    ),
    acme_http_port: int = typer.Option(
        80, "--acme-http-port", min=1, max=65535, help="The port ACME's http-01 is fetched from."
    ),
    acme_tls_port: int = typer.Option(
        443, "--acme-tls-port", min=1, max=65535, help="The port ACME's tls-alpn-01 connects to."
    ),
    acme_strict_fqdn: bool = typer.Option(
        False,
        "--acme-strict-fqdn",
        help="Look up http-01 and tls-alpn-01 names as fully qualified (a trailing dot), so the "
        "system's DNS search domains are never tried.",
    ),
) -> None:
    """Run the Stepstone certificate authority (step-ca compatible).

    Serves the step-ca HTTPS API on the `address` of CONFIG with a TLS certificate the CA
    issues to itself for its `dnsNames` (24 hours, renewed in place at 2/3 of its life).
    `kill -HUP` reloads CONFIG without dropping requests (a bad CONFIG is refused and the
    running one kept); SIGTERM stops gracefully.

    Secrets under systemd: without '--password-file', the intermediate key's password is
    read from $CREDENTIALS_DIRECTORY/ca-password, and a PKCS#11 or YubiKey PIN that ca.json
    does not give from $CREDENTIALS_DIRECTORY/kms-pin (files systemd's LoadCredential=
    makes, mode 0400). Never from the command line or the environment.

    Examples:

      $ step-ca $(step path)/config/ca.json --password-file ./password.txt

      $ step-ca ./ca.json --password-file /run/secrets/ca-password --pidfile /run/step-ca.pid

      $ step-ca --check /var/lib/stepstone/config/ca.json

      $ step-ca ./ca.json --password-file ./pw --resolver 10.0.0.53 --acme-tls-port 8443

    ACME validation: '--resolver', '--acme-http-port', '--acme-tls-port' and
    '--acme-strict-fqdn' are set in the
    server's master process before it forks its workers, which inherit them
    (appliance.acme.validation.configure); an ACME provisioner's `stepstone` test block
    (`httpPort`, `hosts`) wins over them.

    Operator commands: 'step-ca version', 'step-ca db', 'step-ca certificates',
    'step-ca audit', 'step-ca backup', 'step-ca restore' (each with --help).
    """
    password = read_password_file(password_file) if password_file else None
    try:
        nameserver = parse_nameserver(resolver) if resolver is not None else None
    except ValueError as exc:
        raise CLIError(f"step-ca: --resolver {exc}") from None
    if json_output and not check:
        raise CLIError("step-ca: '--json' goes with '--check'")
    if check:
        raise typer.Exit(run_check(config, password, json_output))
    configure(log_format, quiet)
    validation.configure(
        validation.Settings(nameserver, acme_http_port, acme_tls_port, acme_strict_fqdn)
    )
    from api.server import ApplianceServer, ListenError, check_listen
    from api.tls import ServerTLS

    try:
        cfg = with_kms_pin(CAConfig.load(config))
        password = ca_password(password)
        check_listen(cfg.host, cfg.port)
        authority = Authority.open(cfg, password=password, migrate_schema=False)
    except (
        ConfigError,
        CredentialError,
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
    server = ApplianceServer(
        authority,
        tls,
        config_path=config,
        password=password,
        pidfile=str(pidfile) if pidfile else None,
    )
    try:
        server.run()
    except ListenError as exc:  # the metrics address, bound as the master starts
        raise CLIError(f"step-ca: {exc}") from None


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


stepca_backup.register(commands)
stepca_certificates.register(commands)
register_db(commands)
register_audit(commands)


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
