"""`step ssh`: SSH certificates from the CA, the ssh-agent, and client/host configuration.

The command tree is step's; `inspect` and `fingerprint` live here, the rest in cli/ssh_*.py."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import typer
from cryptography.hazmat.primitives.serialization import SSHCertificate

from cli import renewal_check, ssh_config, ssh_keys, ssh_login, ssh_pop, ssh_proxy, ssh_sign
from cli.certinfo import Certificate
from cli.common import CLIError, die
from cli.helptext import StepTyper

app = StepTyper(help="Create and manage SSH certificates.")
app.command(name="certificate")(ssh_sign.certificate_command)
app.command(name="login")(ssh_login.login_command)
app.command(name="logout")(ssh_login.logout_command)
app.command(name="list")(ssh_login.list_command)
app.command(name="config")(ssh_config.config_command)
app.command(name="hosts")(ssh_proxy.hosts_command)
app.command(name="check-host")(ssh_proxy.check_host_command)
app.command(name="proxycommand")(ssh_proxy.proxycommand_command)
app.command(name="renew")(ssh_pop.renew_command)
app.command(name="rekey")(ssh_pop.rekey_command)
app.command(name="revoke")(ssh_pop.revoke_command)

_NO_EXPIRY = 2**64 - 1
_LAYOUT = "%Y-%m-%dT%H:%M:%S"  # ssh-keygen's, in local time


def _validity(valid_after: int, valid_before: int) -> str:
    if valid_before >= _NO_EXPIRY:
        return "forever"
    after = datetime.fromtimestamp(valid_after).strftime(_LAYOUT)
    before = datetime.fromtimestamp(valid_before).strftime(_LAYOUT)
    return f"from {after} to {before}"


def _options(values: dict[bytes, bytes]) -> list[tuple[str, str]]:
    return sorted(
        (k.decode(errors="replace"), v.decode(errors="replace")) for k, v in values.items()
    )


def _go_time(ts: int) -> str:
    """A time as Go's JSON encoder writes it (RFC 3339 in local time, `Z` for UTC)."""
    local = datetime.fromtimestamp(ts, UTC).astimezone()
    offset = local.strftime("%z")
    zone = "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + zone


@app.command(name="inspect")
def inspect_command(
    cert_file: str = typer.Argument("-", metavar="FILE", help="The certificate ('-' for stdin)."),
    fmt: str = typer.Option("text", "--format", help="Output format: text or json."),
) -> None:
    """Print the contents of an SSH certificate, like 'ssh-keygen -L'.

    Examples:

      $ step ssh inspect id_ecdsa-cert.pub

      $ step ssh list --raw joe@example.com | step ssh inspect
    """
    if fmt not in ("text", "json"):
        raise CLIError(f"invalid value '{fmt}' for flag '--format'; options are text, json")
    cert = ssh_keys.load_certificate(ssh_keys.read_input(cert_file))
    blob = ssh_keys.wire_blob(cert)
    key_algo, _ = ssh_keys.type_and_size(cert)
    ca_algo, _ = ssh_keys.type_and_size(cert.signature_key())
    sig_format, sig = ssh_keys.signature_of(cert)
    kind = ssh_keys.cert_type_name(cert)
    principals = [p.decode(errors="replace") for p in cert.valid_principals]
    critical = _options(cert.critical_options)
    extensions = _options(cert.extensions)
    if fmt == "json":
        doc = {
            "Type": kind,
            "KeyName": ssh_keys.key_type(blob),
            "KeyID": cert.key_id.decode(errors="replace"),
            "KeyAlgo": key_algo,
            "KeyFingerprint": ssh_keys.fingerprint(cert.public_key()),
            "SigningKeyAlgo": ca_algo,
            "SigningKeyFingerprint": ssh_keys.fingerprint(cert.signature_key()),
            "Signature": {"Type": sig_format, "Value": base64.b64encode(sig).decode()},
            "Serial": cert.serial,
            "ValidAfter": _go_time(cert.valid_after),
            "ValidBefore": (
                "0001-01-01T00:00:00Z"
                if cert.valid_before >= _NO_EXPIRY
                else _go_time(cert.valid_before)
            ),
            # Go's nil slices and maps: null when empty.
            "Principals": principals or None,
            "CriticalOptions": dict(critical) or None,
            "Extensions": dict(extensions) or None,
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    pad, pad2 = " " * 8, " " * 16
    lines = [
        f"{cert_file}:",
        f"{pad}Type: {ssh_keys.key_type(blob)} {kind} certificate",
        f"{pad}Public key: {key_algo} {ssh_keys.fingerprint(cert.public_key())}",
        f"{pad}Signing CA: {ca_algo} {ssh_keys.fingerprint(cert.signature_key())}"
        f" (using {sig_format})",
        f'{pad}Key ID: "{cert.key_id.decode(errors="replace")}"',
        f"{pad}Serial: {cert.serial}",
        f"{pad}Valid: {_validity(cert.valid_after, cert.valid_before)}",
    ]
    for title, items in (
        ("Principals", [(p, None) for p in principals]),
        ("Critical Options", critical),
        ("Extensions", extensions),
    ):
        if not items:
            lines.append(f"{pad}{title}: (none)")
            continue
        lines.append(f"{pad}{title}: ")
        lines += [f"{pad2}{k}" if v is None else f"{pad2}{k} {v}" for k, v in items]
    hexed = [f"{b:02x}" for b in sig]
    sig_lines = [":".join(hexed[i : i + 16]) for i in range(0, len(hexed), 16)]
    text = f"{pad}Signature:" + "".join(
        f"\n{pad2}{chunk}{':' if i < len(sig_lines) - 1 else ''}"
        for i, chunk in enumerate(sig_lines)
    )
    lines.append(text)
    typer.echo("\n".join(lines))


@app.command(name="fingerprint")
def fingerprint_command(
    key_file: str = typer.Argument("-", metavar="FILE", help="An SSH public key or certificate."),
    fmt: str = typer.Option(
        "base64-raw",
        "--format",
        help="Encoding: hex, base64, base64-url, base64-raw or base64-url-raw.",
    ),
    certificate: bool = typer.Option(
        False, "--certificate", help="Fingerprint the whole certificate, not its public key."
    ),
) -> None:
    """Print the fingerprint of an SSH public key or certificate, as 'ssh-keygen -l' does.

    Examples:

      $ step ssh fingerprint id_ecdsa.pub

      $ step ssh fingerprint id_ecdsa-cert.pub --certificate
    """
    key, comment = ssh_keys.parse_public(ssh_keys.read_input(key_file), "public key")
    if certificate and not isinstance(key, SSHCertificate):
        raise CLIError(f"{key_file} is not an SSH certificate")
    typer.echo(ssh_keys.format_fingerprint(key, comment, fmt, certificate))


@app.command(name="needs-renewal")
def needs_renewal_command(
    cert_file: str = typer.Argument("-", metavar="CERT-FILE", help="An SSH certificate."),
    expires_in: str | None = typer.Option(
        None,
        "--expires-in",
        metavar="PERCENT|DURATION",
        help='A share of the lifetime followed by "%" (default 66%), or a duration such as '
        '"1h15m" (needs renewal when it expires within it).',
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print whether the certificate needs renewal."
    ),
) -> None:
    """Exit 0 if an SSH certificate needs renewal, 1 if not (2: no such file, 255: error).

    Examples:

      $ step ssh needs-renewal ssh_host_ecdsa_key-cert.pub

      $ step ssh needs-renewal ssh_host_ecdsa_key-cert.pub --expires-in 1h15m
    """
    try:
        threshold = renewal_check.parse_expires_in(expires_in)
        if cert_file != "-" and not Path(cert_file).exists():
            raise renewal_check.RenewalCheckError(
                f"stat {cert_file}: no such file or directory", renewal_check.EXIT_FILE_MISSING
            )
        try:
            cert = ssh_keys.load_certificate(ssh_keys.read_input(cert_file))
        except CLIError as exc:
            raise renewal_check.RenewalCheckError(str(exc)) from None
    except renewal_check.RenewalCheckError as exc:
        die(str(exc), exc.exit_code)
    window = SimpleNamespace(
        not_before=datetime.fromtimestamp(cert.valid_after, UTC),
        not_after=datetime.fromtimestamp(min(cert.valid_before, 2**62 // 10**9), UTC),
    )
    now_ns = time.time_ns()
    if renewal_check.certificate_needs_renewal(cast(Certificate, window), threshold, now_ns):
        if verbose:
            typer.echo("certificate needs renewal")
        raise typer.Exit(renewal_check.EXIT_NEEDS_RENEWAL)
    if verbose:
        die("certificate does not need renewal", renewal_check.EXIT_NO_RENEWAL)
    raise typer.Exit(renewal_check.EXIT_NO_RENEWAL)
