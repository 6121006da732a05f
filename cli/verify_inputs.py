"""The inputs of `step certificate verify`: the leaf and intermediates, the roots, the issuer.

Kept apart from the checks because it is where step's file, PEM and system-store rules live:
a PEM file (first certificate the leaf) or a TLS server's chain, ``--roots`` or the system
store found the way Go finds it on Linux, and ``--issuing-ca``. Each certificate is parsed by
both parsers (:class:`Cert`) so that Go's wording and `cryptography`'s verifier can be used.
"""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from cli.certinfo import Certificate, CertParseError, parse_certificate, pem_blocks
from cli.common import CLIError, go_strerror
from cli.tlsfetch import fetch_peer_certificates, read_cert_pool, trim_url

#: Seconds allowed for each network operation (connect, TLS, read) of the checks.
NETWORK_TIMEOUT = 10.0

# Where Go's crypto/x509 looks for the system roots on Linux (root_linux.go).
_GO_CERT_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
)
_GO_CERT_DIRECTORIES = ("/etc/ssl/certs", "/etc/pki/tls/certs")


@dataclass(frozen=True)
class Cert:
    """One certificate, as Go reads it (`info`) and as `cryptography` does (`x509`)."""

    info: Certificate
    x509: x509.Certificate

    @classmethod
    def from_der(cls, der: bytes) -> Cert:
        """Parse with both parsers; CertParseError with Go's wording when either refuses."""
        info = parse_certificate(der)
        try:
            with warnings.catch_warnings():
                # e.g. a serial number of zero in an old root: Go accepts it, and so do we
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                parsed = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise CertParseError(f"x509: {exc}") from None
        return cls(info, parsed)


def load_input(name: str, *, server_name: str | None, roots: str | None) -> tuple[Cert, list[Cert]]:
    """The leaf and the candidate intermediates, from a PEM file or a TLS server."""
    target = trim_url(name)
    if target is not None:
        chain = fetch_peer_certificates(
            target[0],
            target[1],
            server_name=server_name,
            roots=roots,
            insecure=False,
            timeout=NETWORK_TIMEOUT,
        )
        try:
            certs = [Cert.from_der(der) for der in chain]
        except CertParseError as exc:
            raise CLIError(f"failed to connect: tls: failed to parse certificate: {exc}") from None
        return certs[0], certs
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        op = "read" if exc.errno == errno.EISDIR else "open"
        raise CLIError(f"{op} {name} failed: {go_strerror(exc)}") from None
    blocks = list(pem_blocks(data))
    if not blocks and data.strip():
        raise CLIError(f"{name} contains an invalid PEM block")
    leaf: Cert | None = None
    intermediates: list[Cert] = []
    for block in blocks:
        if block.type != "CERTIFICATE":
            continue
        if leaf is None:
            try:
                leaf = Cert.from_der(block.data)
            except CertParseError as exc:
                raise CLIError(str(exc)) from None
            continue
        try:
            intermediates.append(Cert.from_der(block.data))
        except CertParseError:
            continue  # x509.CertPool.AppendCertsFromPEM skips what does not parse
    if leaf is None:
        raise CLIError(f"{name} contains no PEM certificate blocks")
    other_certificates = sum(1 for block in blocks if block.type == "CERTIFICATE") - 1
    if other_certificates > 0 and not intermediates:
        raise CLIError(f"failure creating intermediate list from certificate '{name}'")
    return leaf, intermediates


def _pem_certificates(data: bytes) -> list[bytes]:
    return [b.data for b in pem_blocks(data) if b.type == "CERTIFICATE" and not b.headers]


def system_roots() -> list[Cert]:
    """The system trust store the way Go finds it on Linux."""
    cert_file = os.environ.get("SSL_CERT_FILE", "")
    cert_dirs = os.environ.get("SSL_CERT_DIR", "")
    files = [cert_file] if cert_file else list(_GO_CERT_FILES)
    directories = cert_dirs.split(":") if cert_dirs else list(_GO_CERT_DIRECTORIES)
    found: dict[bytes, None] = {}
    for name in files:
        try:
            data = Path(name).read_bytes()
        except OSError:
            continue
        found.update(dict.fromkeys(_pem_certificates(data)))
        break
    for directory in directories:
        try:
            entries = sorted(Path(directory).iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_file():
                    found.update(dict.fromkeys(_pem_certificates(entry.read_bytes())))
            except OSError:
                continue
    roots: list[Cert] = []
    for der in found:
        try:
            roots.append(Cert.from_der(der))
        except CertParseError:
            continue  # x509.CertPool.AppendCertsFromPEM skips what does not parse
    if not roots:
        raise CLIError(
            "failed to verify certificate: x509: failed to load system roots and no roots provided"
        )
    return roots


def load_roots(roots: str | None) -> list[Cert]:
    """--roots (step's x509util.ReadCertPool) or the system store."""
    if not roots:
        return system_roots()
    found: list[Cert] = []
    for der in read_cert_pool(roots):
        try:
            found.append(Cert.from_der(der))
        except CertParseError:
            continue
    if not found:
        raise CLIError(
            f"failure to load root certificate pool from input path '{roots}': "
            "error reading cert pool: not certificates found"
        )
    return found


def load_issuing_ca(path: str) -> Cert:
    """--issuing-ca: the first PEM block of the file, which must be a certificate."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise CLIError("unable to load the issuing CA certificate file") from None
    block = next(iter(pem_blocks(data)), None)
    if block is None or block.type != "CERTIFICATE":
        raise CLIError("failed to decode the issuing CA certificate")
    try:
        return Cert.from_der(block.data)
    except CertParseError:
        raise CLIError("failed to parse the issuing CA certificate") from None
