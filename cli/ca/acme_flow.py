"""`step ca certificate` / `step ca sign` when the provisioner is of type ACME (or with
`--acme URL`): an RFC 8555 order instead of a one-time token, as step's ACMECreateCertFlow.

step's steps and lines: new account, new order (the SANs plus the subject as identifiers),
for each authorization its http-01 challenge ("Using Standalone Mode HTTP challenge to
validate NAME .. done!"), "Waiting for Order to be 'ready' for finalization", "Finalizing
Order", then the chain (leaf first) to CRT and the key to KEY, both 0600. Only http-01 is
answered, as step answers only http-01 (and device-attest-01 with `--attestation-uri`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cli.ca import ui
from cli.ca.acme_client import ACMEClient, describe, http_client
from cli.ca.acme_http01 import ChallengeMode, challenge_mode
from cli.ca.defaults import flag_value
from cli.ca.flows import TokenRequest
from cli.common import CLIError, write_output
from cli.crypto_keyio import private_pem
from keystores import KeySpec
from pki.durations import parse_time_or_duration
from pki.sans import SubjectAltNames

# The flags step's certificate and sign commands share for ACME.
ACME_URL = typer.Option(
    None, "--acme", help="ACME directory URL to use instead of the step CA's ACME provisioner."
)
STANDALONE = typer.Option(
    False, "--standalone", help="ACME: answer http-01 with our own HTTP server (the default)."
)
WEBROOT = typer.Option(
    None, "--webroot", help="ACME: write http-01 answers under this served directory."
)
CONTACT = typer.Option([], "--contact", help="ACME: an account contact email address (repeatable).")
HTTP_LISTEN = typer.Option(
    ":80", "--http-listen", help="ACME: the address the standalone server listens on."
)
ATTESTATION_URI = typer.Option(
    None,
    "--attestation-uri",
    help="The KMS <uri> used for attestation (ACME device-attest-01, e.g. "
    "'yubikey:slot-id=9a'): the subject is the device's serial, the key stays on it.",
)

_TOKEN_ERROR = "step ACME provisioners do not support token auth flows"


class ACMETokenError(CLIError):
    """The chosen provisioner is ACME: there is no token, the caller runs the ACME flow."""

    def __init__(self, name: str) -> None:
        super().__init__(_TOKEN_ERROR)
        self.name = name


def acme_token_flow(req: TokenRequest, provisioner: dict[str, Any]) -> str:
    """The "token flow" of an ACME provisioner: step's ErrACMEToken."""
    name = str(provisioner.get("name", ""))
    ui.selected("Provisioner", f"{name} (ACME)")
    raise ACMETokenError(name)


def directory_url(ca_url: str, provisioner: str) -> str:
    return f"{ca_url.rstrip('/')}/acme/{quote(provisioner, safe='')}/directory"


@dataclass
class ACMEOptions:
    """The flags of one run."""

    standalone: bool = False
    webroot: Path | None = None
    http_listen: str = ":80"
    contact: list[str] = field(default_factory=list)
    not_before: str | None = None
    not_after: str | None = None
    attestation_uri: str | None = None


@dataclass
class Names:
    """What the order asks for and the CSR carries."""

    subject: str
    dns: list[str]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address]

    def identifiers(self) -> list[dict[str, str]]:
        return [{"type": "dns", "value": d} for d in self.dns] + [
            {"type": "ip", "value": str(ip)} for ip in self.ips
        ]


def order_names(subject: str, sans: list[str]) -> Names:
    """step's createNewOrderRequest: the SANs (the subject when none), and the subject too
    when it is not among them; no email, URI or wildcard names."""
    split = SubjectAltNames.split(sans or [subject])
    if split.emails or split.uris:
        raise CLIError("Email Address and URI SANs are not supported for ACME flow")
    for name in split.dns:
        if "*" in name:
            raise CLIError(
                f"wildcard dnsnames ({name}) require dns validation, which is currently "
                "not implemented in this client"
            )
    names = Names(subject, list(split.dns), list(split.ips))
    if subject not in {i["value"] for i in names.identifiers()}:
        try:
            names.ips.append(ipaddress.ip_address(subject))
        except ValueError:
            names.dns.append(subject)
    return names


def csr_names(csr: x509.CertificateSigningRequest) -> Names:
    """The names of an existing CSR (step's withCSR): CN, DNS names and IPs."""
    cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        split = SubjectAltNames.of(ext)
    except x509.ExtensionNotFound:
        split = SubjectAltNames()
    return order_names(str(cn[0].value) if cn else "", [*split.dns, *map(str, split.ips)])


def order_window(not_before: str | None, not_after: str | None) -> dict[str, str]:
    """`notBefore`/`notAfter` of the order: times, or durations from now; unset ones left
    out."""
    now = datetime.now(UTC).replace(microsecond=0)
    out: dict[str, str] = {}
    for key, flag, value in (
        ("notBefore", "--not-before", not_before),
        ("notAfter", "--not-after", not_after),
    ):
        try:
            parsed = parse_time_or_duration(value or "", now)
        except ValueError:
            raise CLIError(f"invalid value '{value}' for flag '{flag}'") from None
        if parsed is not None:
            when = now + parsed if isinstance(parsed, timedelta) else parsed
            out[key] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def _contacts(values: list[str]) -> list[str]:
    """step sends `--contact` as given; a bare address becomes the mailto: URL RFC 8555
    asks for."""
    return [v if ":" in v else f"mailto:{v}" for v in values]


def _write(text: str) -> None:
    typer.echo(text, err=True, nl=False)


@contextmanager
def _stage(text: str) -> Iterator[Callable[[], None]]:
    """step's progress line: TEXT, a dot per wait, then " done!" or " Error!"."""
    _write(text)
    try:
        yield lambda: _write(".")
    except BaseException:
        _write(" Error!\n")
        raise
    _write(" done!\n")


def _challenge_failure(ch: dict[str, Any]) -> str:
    error = ch.get("error")
    if isinstance(error, dict):
        return f"Unable to validate challenge: {describe(error)}"
    return f"Unable to validate challenge: status {ch.get('status')}"


def authorize(client: ACMEClient, order: dict[str, Any], mode: ChallengeMode) -> None:
    """Answer the http-01 challenge of every pending authorization of the order."""
    for az_url in order.get("authorizations") or []:
        az, _ = client.get(str(az_url), f"error retrieving ACME Authz at {az_url}")
        ident = str((az.get("identifier") or {}).get("value", ""))
        if az.get("wildcard"):
            ident = "*." + ident
        if az.get("status") == "valid":
            continue
        ch = next((c for c in az.get("challenges") or [] if c.get("type") == "http-01"), None)
        if ch is None:
            raise CLIError(f"unable to validate any challenges for identifier: {ident}")
        url, token = str(ch.get("url")), str(ch.get("token"))
        with _stage(f"Using {mode.label} Mode HTTP challenge to validate {ident}") as tick:
            try:
                mode.serve(token, client.key_authorization(token))
                _write(" .")
                client.respond(url)
                final = client.poll(
                    url,
                    f"error retrieving ACME Challenge at {url}",
                    lambda c: c.get("status") in ("valid", "invalid"),
                    tick,
                )
            finally:
                mode.withdraw(token)
            if final.get("status") != "valid":
                raise CLIError(_challenge_failure(final))


def _order_problem(order: dict[str, Any]) -> str:
    error = order.get("error")
    reason = f": {describe(error)}" if isinstance(error, dict) else ""
    return f"status {order.get('status')}{reason}"


def finalize(
    client: ACMEClient, order_url: str, csr: x509.CertificateSigningRequest
) -> list[x509.Certificate]:
    """Wait for `ready`, finalize with the CSR, wait for `valid`, download the chain."""
    what = f"error retrieving order {order_url}"
    with _stage("Waiting for Order to be 'ready' for finalization .") as tick:
        order = client.poll(
            order_url, what, lambda o: o.get("status") in ("ready", "valid", "invalid"), tick
        )
        if order.get("status") != "ready":
            raise CLIError(f"Unable to validate order: {_order_problem(order)}")
    with _stage("Finalizing Order .") as tick:
        order = client.finalize(str(order.get("finalize")), csr.public_bytes(Encoding.DER))
        if order.get("status") != "valid":
            order = client.poll(
                order_url, what, lambda o: o.get("status") in ("valid", "invalid"), tick
            )
        if order.get("status") != "valid" or not order.get("certificate"):
            raise CLIError(f"Unable to finalize order: {_order_problem(order)}")
    return client.certificate(str(order["certificate"]))


def make_csr(names: Names, key: Any) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.subject)])
    )
    general: list[x509.GeneralName] = [x509.DNSName(d) for d in names.dns]
    general += [x509.IPAddress(ip) for ip in names.ips]
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def acme_certificate(
    directory: str,
    root: Path | None,
    names: Names,
    crt_file: Path,
    key_file: Path | None,
    opts: ACMEOptions,
    *,
    spec: KeySpec | None = None,
    csr: x509.CertificateSigningRequest | None = None,
    system_roots: bool = False,
) -> None:
    """The whole flow; a new key (by `spec`) unless an existing `csr` is given. The chain
    goes to `crt_file` and the new key to `key_file`, both 0600."""
    mode = challenge_mode(opts.standalone, opts.webroot, opts.http_listen)
    window = order_window(opts.not_before, opts.not_after)
    contacts = _contacts(opts.contact)
    with http_client(root, system_roots=system_roots) as http:
        client = ACMEClient(http, directory)
        mode.start()
        try:
            client.new_account(contacts)
            order_url, order = client.new_order(names.identifiers(), window)
            authorize(client, order, mode)
        finally:
            mode.close()
        key = None
        if csr is None:
            key = (spec or KeySpec()).generate()
            csr = make_csr(names, key)
        chain = finalize(client, order_url, csr)
    write_output(crt_file, b"".join(c.public_bytes(Encoding.PEM) for c in chain), mode=0o600)
    ui.selected("Certificate", str(crt_file))
    if key is not None and key_file is not None:
        write_output(key_file, private_pem(key, None), mode=0o600)
        ui.selected("Private Key", str(key_file))


def optional_root(given: str | None) -> Path | None:
    """With `--acme URL`: `--root` (or its default) when that file exists, as step adds it to
    the system's trust store; None otherwise."""
    value = flag_value(given, "root")
    path = Path(value).expanduser() if value else None
    if given and (path is None or not path.is_file()):
        raise CLIError(f"open {given}: no such file or directory")
    return path if path is not None and path.is_file() else None


def certificate(
    url: str,
    provisioner: str | None,
    root: Path | str | None,
    subject: str,
    sans: list[str],
    files: tuple[Path, Path | None],
    spec: KeySpec,
    opts: ACMEOptions,
) -> None:
    """`step ca certificate` by ACME: `url` is the CA's URL and `provisioner` the ACME
    provisioner's name (trusting `root` only), or `url` is a directory from `--acme` and
    `provisioner` None (the system's roots plus `--root`, if any). With an attestation URI
    the order is device-attest-01's (cli.ca.acme_attest) and no key file is written."""
    if provisioner is None:
        directory, trust, system = url, optional_root(str(root) if root else None), True
    else:
        directory, trust, system = directory_url(url, provisioner), Path(str(root)), False
    crt_file, key_file = files
    if opts.attestation_uri:  # device-attest-01: the key stays on the device
        from cli.ca.acme_attest import attested_certificate

        window = order_window(opts.not_before, opts.not_after)
        attested_certificate(
            directory, trust, subject, crt_file, opts.attestation_uri, window,
            _contacts(opts.contact), system_roots=system,
        )  # fmt: skip
        return
    names = order_names(subject, list(sans))
    acme_certificate(
        directory, trust, names, crt_file, key_file, opts, spec=spec, system_roots=system
    )


def sign(
    url: str,
    provisioner: str | None,
    root: Path | str | None,
    csr: x509.CertificateSigningRequest,
    crt_file: Path,
    opts: ACMEOptions,
) -> None:
    """`step ca sign` by ACME (step's ACMESignCSRFlow): the order's names are the CSR's."""
    if provisioner is None:
        directory, trust, system = url, optional_root(str(root) if root else None), True
    else:
        directory, trust, system = directory_url(url, provisioner), Path(str(root)), False
    acme_certificate(
        directory, trust, csr_names(csr), crt_file, None, opts, csr=csr, system_roots=system
    )
