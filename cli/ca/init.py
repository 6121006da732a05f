"""`step ca init`: create a new PKI and the configuration of a CA."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy.exc import SQLAlchemyError

from appliance.audit import record_init
from appliance.ceremony_record import CeremonyError, key_store_error
from appliance.config import CAConfig, ConfigError
from appliance.db.schema import SchemaError, database_state, upgrade
from appliance.offline_root import complete_init, init_csr
from appliance.pki import InitRequest, InitResult, init_pki, pending_path
from cli.ca import ui
from cli.common import CLIError, check_writable, prompt_password, read_password_file, step_path
from cli.kms import new_key_path, record_path
from keystores import KeyStoreError, redact_uri

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


@contextmanager
def _key_store_errors() -> Iterator[None]:
    """Key store, ceremony and file errors as `step ca init: ...` CLI errors."""
    try:
        yield
    except (KeyStoreError, CeremonyError, OSError) as exc:
        raise CLIError(f"step ca init: {key_store_error(exc)}") from None


def _progress(text: str) -> None:
    typer.echo(text, err=True, nl=False)


def _create_schema(res: InitResult, step: str = "init") -> None:
    """The schema of the SQLite database ca.json names, so that `step-ca` serves right away
    (it never creates tables itself), and the init's entry in its audit log. A CA moved to
    PostgreSQL is the operator's to upgrade."""
    try:
        config = CAConfig.load(res.ca_config)
        if not database_state(config).driver.startswith("sqlite"):
            return
        upgrade(config)
    except (ConfigError, SchemaError) as exc:
        raise CLIError(f"step ca init: database: {exc}") from None
    try:  # the CA exists now: a missing entry is a warning, not a failed init
        record_init(res, step)
    except (SQLAlchemyError, OSError, ConfigError) as exc:
        ui.note(f"Audit log: step ca init was not recorded: {exc}")


def _report(res: InitResult, root_key: str | None = None) -> None:
    """What a finished init wrote (`root_key`: the root key's line, when there is one)."""
    ui.note("")
    ui.selected("Root certificate", str(res.root_cert))
    if root_key is not None:
        ui.selected("Root private key", root_key)
    ui.selected("Root fingerprint", res.root_fingerprint)
    ui.selected("Intermediate certificate", str(res.intermediate_cert))
    ui.selected("Intermediate private key", redact_uri(res.intermediate_key))
    ui.selected("Database folder", str(res.db_dir))
    ui.selected("Default configuration", str(res.defaults))
    ui.selected("Certificate Authority configuration", str(res.ca_config))
    ui.selected("Ceremony record", str(res.record))
    ui.note(FEEDBACK)


def _complete(
    base: Path,
    intermediate_crt: Path,
    root: Path | None,
    password_file: Path | None,
    record: Path | None,
    conflicting: dict[str, object],
) -> None:
    """`step ca init --intermediate-crt FILE --root ROOT.crt`: finish an offline-root init."""
    given = [flag for flag, value in conflicting.items() if value]
    if given:
        raise CLIError(
            f"'{given[0]}' cannot be used with '--intermediate-crt': the pending "
            "initialisation already fixed it"
        )
    if root is None:
        raise CLIError("'--intermediate-crt' requires '--root ROOT.crt'")
    password = read_password_file(password_file) if password_file else None
    ui.note("")
    with _key_store_errors():
        res = complete_init(base, intermediate_crt, root, password, record, progress=_progress)
    _create_schema(res, "init-complete")
    _report(res)


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
    root_kms: str | None = typer.Option(
        None,
        "--root-kms",
        help="Key URI of the root key (taken if it exists, else created); kept out of ca.json.",
    ),
    kms: str | None = typer.Option(
        None,
        "--kms",
        help="Key URI of the intermediate key (taken if it exists, else created).",
    ),
    root: Path | None = typer.Option(
        None,
        "--root",
        help="An existing root certificate: for the '--root-kms' key, or to complete "
        "'--intermediate-crt'.",
    ),
    root_password_file: Path | None = typer.Option(
        None,
        "--root-password-file",
        help="File with the password of a file root key (default: --password-file).",
    ),
    intermediate_csr: Path | None = typer.Option(
        None,
        "--intermediate-csr",
        help="Offline root: make the intermediate key and write its CSR here; no ca.json yet.",
    ),
    intermediate_crt: Path | None = typer.Option(
        None,
        "--intermediate-crt",
        help="Offline root: complete a '--intermediate-csr' init with the signed certificate.",
    ),
    record: Path | None = typer.Option(
        None, "--record", help="The ceremony record (default $STEPPATH/ceremony/record.jsonl)."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing configuration."),
    ssh: bool = typer.Option(
        False, "--ssh", help="Create the SSH user and host CA keys too (enableSSHCA on)."
    ),
    acme: bool = typer.Option(
        False, "--acme", help="Add an ACME provisioner named 'acme' (RFC 8555, all challenges)."
    ),
) -> None:
    """Initialise a CA: root and intermediate certificates, keys and configuration.

    Creates, under $STEPPATH: certs/root_ca.crt, certs/intermediate_ca.crt,
    secrets/root_ca_key, secrets/intermediate_ca_key (encrypted PKCS#8, 0600),
    config/ca.json and config/defaults.json, with one JWK provisioner whose private key is
    escrowed in ca.json as a password-encrypted JWE. Nothing is asked when the flags are given.
    Every run appends an entry to the ceremony record ('step ca ceremony verify' checks it).

    Keys in other stores: '--root-kms URI' is the root key's URI and '--kms URI' the
    intermediate's (a file path, 'file:PATH', or a PKCS#11 URI as in the examples below). A key
    that exists there is taken, else an EC P-256 key is created. The root's URI is written
    nowhere in $STEPPATH; ca.json names only the intermediate: its path, or step-ca's '"key"'
    plus '"kms": {"type", "uri"}' (never a pin-value when a pin-source was given). File keys use
    --password-file (the root's --root-password-file). '--root ROOT.crt' with '--root-kms'
    reuses that root certificate.

    The offline root, in three steps: '--intermediate-csr FILE' makes the intermediate key,
    writes its CSR and a pending state (config/init-pending.json); 'step ca ceremony
    sign-intermediate' signs the CSR on the root's machine; '--intermediate-crt FILE --root
    ROOT.crt' checks the certificate matches the pending key and chains to the root, then
    writes ca.json and defaults.json.

    Examples:

      $ step ca init --name "Acme" --dns ca.acme.internal --address :443 \\
          --provisioner admin@acme.internal --password-file ./password.txt

      $ M=/usr/lib/softhsm/libsofthsm2.so
      $ step ca init --name Acme --dns ca.acme.internal --address :443 \\
          --provisioner ops --password-file pw.txt \\
          --root-kms "pkcs11:module-path=$M;token=root;id=7330;object=root?pin-source=/mnt/pin" \\
          --kms "pkcs11:module-path=$M;token=ca;id=7331;object=ca?pin-source=/etc/step/pin"

      $ step ca init --name Acme --dns ca.acme.internal --address :443 \\
          --provisioner ops --password-file pw.txt --intermediate-csr /media/usb/intermediate.csr

      $ step ca init --intermediate-crt /media/usb/intermediate.crt \\
          --root /media/usb/root_ca.crt --password-file pw.txt
    """
    base = step_path()
    ca_json = base / "config" / "ca.json"
    if intermediate_csr is not None and intermediate_crt is not None:
        raise CLIError("'--intermediate-csr' and '--intermediate-crt' cannot be used together")
    if ssh and (intermediate_csr is not None or intermediate_crt is not None):
        raise CLIError("'--ssh' cannot be used with '--intermediate-csr' or '--intermediate-crt'")
    if acme and (intermediate_csr is not None or intermediate_crt is not None):
        raise CLIError("'--acme' cannot be used with '--intermediate-csr' or '--intermediate-crt'")
    check_writable(
        ca_json,
        base / "config" / "defaults.json",
        base / "certs" / "root_ca.crt",
        base / "secrets" / "intermediate_ca_key",
        record_path(record),
        intermediate_csr,
        new_key_path(root_kms),
        new_key_path(kms),
    )
    if ca_json.exists() and not force:
        if not sys.stdin.isatty():
            raise CLIError(
                f"{ca_json} already exists: use '--force' to overwrite the existing configuration"
            )
        ui.note(f"⚠️  It looks like step is already configured in {base}.")
        if not typer.confirm("Would you like to overwrite it?"):
            raise typer.Exit(1)
    if intermediate_crt is not None:
        _complete(
            base,
            intermediate_crt,
            root,
            password_file,
            record,
            {
                "--name": name,
                "--dns": dns,
                "--address": address,
                "--provisioner": provisioner,
                "--provisioner-password-file": provisioner_password_file,
                "--root-kms": root_kms,
                "--kms": kms,
                "--root-password-file": root_password_file,
            },
        )
        return
    if intermediate_csr is not None:
        for flag, value in (("--root-kms", root_kms), ("--root", root)):
            if value is not None:
                raise CLIError(
                    f"'{flag}' cannot be used with '--intermediate-csr': the root key stays "
                    "off the appliance ('step ca ceremony sign-intermediate' signs the CSR)"
                )
        if pending_path(base).exists() and not force:
            raise CLIError(
                f"{pending_path(base)} exists: complete it with '--intermediate-crt', "
                "or use '--force' to start over"
            )
    elif root is not None and root_kms is None:
        raise CLIError("'--root' needs '--root-kms' (the root's key) or '--intermediate-crt'")
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
    root_password = read_password_file(root_password_file) if root_password_file else None
    request = InitRequest(
        base,
        pki_name,
        dns_names,
        listen,
        prov_name,
        password,
        prov_password,
        root_kms=root_kms,
        kms=kms,
        root_cert=root,
        root_password=root_password,
        record=record,
        ssh=ssh,
        acme=acme,
    )
    ui.note("")
    if intermediate_csr is not None:
        with _key_store_errors():
            csr = init_csr(request, intermediate_csr, progress=_progress)
        ui.note("")
        ui.selected("Intermediate private key", redact_uri(csr.intermediate_key))
        ui.selected("Intermediate public key SHA-256", csr.public_key_sha256)
        ui.selected("Certificate signing request", str(csr.csr))
        ui.selected("Pending initialisation", str(csr.pending))
        ui.selected("Ceremony record", str(csr.record))
        ui.note(
            "\nSign the CSR on the root's machine with 'step ca ceremony sign-intermediate', "
            "then run 'step ca init --intermediate-crt FILE --root ROOT.crt'."
        )
        return
    with _key_store_errors():
        res = init_pki(request, progress=_progress)
    _create_schema(res)
    root_key = res.root_key
    if root_key is None:
        root_key = f"{redact_uri(str(root_kms))} (not kept in ca.json)"
    _report(res, root_key)
    if ssh:
        for kind in ("user", "host"):
            ui.selected(f"SSH {kind} public key", str(base / "certs" / f"ssh_{kind}_ca_key.pub"))
            if kms is None:
                ui.selected(f"SSH {kind} private key", str(base / "secrets" / f"ssh_{kind}_ca_key"))
