"""`step ca init`: create a new PKI and the configuration of a CA."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from appliance.pki import InitRequest, init_pki
from cli.ca import ui
from cli.common import CLIError, prompt_password, read_password_file, step_path
from keystores import KeyStoreError

FEEDBACK = (
    "\nYour PKI is ready to go. To generate certificates for individual services see "
    "'step help ca'."
)


def _ask(value: str | None, question: str, flag: str) -> str:
    if value:
        return value
    if not sys.stdin.isatty():
        raise CLIError(f"'{flag}' is required when not running interactively")
    answer: str = typer.prompt(question)
    return answer


def _split_dns(values: list[str]) -> list[str]:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def init_command(
    name: str | None = typer.Option(None, "--name", help="The name of the new PKI."),
    dns: list[str] = typer.Option(
        [], "--dns", help="DNS name or IP of the CA (repeatable or comma-separated)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="The address the CA listens on, e.g. ':443' or '127.0.0.1:9000'."
    ),
    provisioner: str | None = typer.Option(
        None, "--provisioner", help="The name of the first (JWK) provisioner."
    ),
    password_file: Path | None = typer.Option(
        None, "--password-file", help="File with the password that encrypts the CA's keys."
    ),
    provisioner_password_file: Path | None = typer.Option(
        None,
        "--provisioner-password-file",
        help="File with the password that encrypts the provisioner key (default: --password-file).",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing configuration."),
) -> None:
    """Initialise a CA: root and intermediate certificates, keys and configuration.

    Creates, under $STEPPATH: certs/root_ca.crt, certs/intermediate_ca.crt,
    secrets/root_ca_key, secrets/intermediate_ca_key (encrypted PKCS#8, 0600),
    config/ca.json and config/defaults.json, with one JWK provisioner whose private key is
    escrowed in ca.json as a password-encrypted JWE. Nothing is asked when the flags are given.

    Examples:

      $ step ca init --name "Acme" --dns ca.acme.internal --address :443 \\
          --provisioner admin@acme.internal --password-file ./password.txt

      $ STEPPATH=/srv/ca step ca init --name Lab --dns 127.0.0.1,localhost \\
          --address 127.0.0.1:9000 --provisioner ops --password-file pw.txt \\
          --provisioner-password-file prov-pw.txt
    """
    base = step_path()
    ca_json = base / "config" / "ca.json"
    if ca_json.exists() and not force:
        if not sys.stdin.isatty():
            raise CLIError(
                f"{ca_json} already exists: use '--force' to overwrite the existing configuration"
            )
        ui.note(f"⚠️  It looks like step is already configured in {base}.")
        if not typer.confirm("Would you like to overwrite it?"):
            raise typer.Exit(1)
    pki_name = _ask(name, "What would you like to name your new PKI?", "--name")
    dns_names = _split_dns(dns) or _split_dns(
        [_ask(None, "What DNS names or IP addresses will clients use to reach your CA?", "--dns")]
    )
    listen = _ask(address, "What IP and port will your new CA bind to?", "--address")
    if ":" not in listen or not listen.rpartition(":")[2].isdigit():
        raise CLIError(f"invalid value '{listen}' for flag '--address': must be host:port")
    prov_name = _ask(
        provisioner, "What would you like to name the CA's first provisioner?", "--provisioner"
    )
    password = (
        read_password_file(password_file)
        if password_file
        else prompt_password("Choose a password for your CA keys and first provisioner")
    )
    if not password:
        raise CLIError("the password cannot be empty")
    prov_password = (
        read_password_file(provisioner_password_file) if provisioner_password_file else password
    )
    if not prov_password:
        raise CLIError("the provisioner password cannot be empty")
    ui.note("")
    try:
        res = init_pki(
            InitRequest(base, pki_name, dns_names, listen, prov_name, password, prov_password),
            progress=lambda text: typer.echo(text, err=True, nl=False),
        )
    except (KeyStoreError, OSError) as exc:
        raise CLIError(f"step ca init: {exc}") from None
    ui.note("")
    ui.selected("Root certificate", str(res.root_cert))
    ui.selected("Root private key", str(res.root_key))
    ui.selected("Root fingerprint", res.root_fingerprint)
    ui.selected("Intermediate certificate", str(res.intermediate_cert))
    ui.selected("Intermediate private key", str(res.intermediate_key))
    ui.selected("Database folder", str(res.db_dir))
    ui.selected("Default configuration", str(res.defaults))
    ui.selected("Certificate Authority configuration", str(res.ca_config))
    ui.note(FEEDBACK)
