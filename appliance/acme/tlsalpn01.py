"""tls-alpn-01 (RFC 8737): the CA opens TLS to NAME:443 (`step-ca --acme-tls-port`) with SNI
NAME and ALPN `acme-tls/1`; the client answers with a self-signed certificate whose only SAN
is NAME and whose critical id-pe-acmeIdentifier extension holds SHA-256(keyAuthorization) as
an OCTET STRING. The certificate is not verified against any root: it proves control of the
name's TLS endpoint, not an identity. IP identifiers (RFC 8738) use the reverse-DNS name as
SNI and the address as the SAN.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from appliance.acme.problems import ACMEProblem

ALPN = "acme-tls/1"
#: id-pe-acmeIdentifier (RFC 8737 §6.1).
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")


def server_name(kind: str, value: str) -> str:
    """The SNI: the name, or the address's in-addr.arpa / ip6.arpa name (RFC 8738 §6)."""
    return ipaddress.ip_address(value).reverse_pointer if kind == "ip" else value


def extension_value(key_authorization: str) -> bytes:
    """The extension's DER: an OCTET STRING of the 32-byte digest."""
    return b"\x04\x20" + hashlib.sha256(key_authorization.encode()).digest()


def handshake(address: str, port: int, sni: str, timeout: float) -> tuple[bytes | None, str | None]:
    """(the leaf's DER, the negotiated protocol) of one TLS handshake; OSError/ssl.SSLError
    when there is no handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols([ALPN])
    with (
        socket.create_connection((address, port), timeout=timeout) as sock,
        ctx.wrap_socket(sock, server_hostname=sni) as tls,
    ):
        return tls.getpeercert(binary_form=True), tls.selected_alpn_protocol()


def check_certificate(der: bytes, kind: str, value: str, key_authorization: str) -> str | None:
    """Why the challenge certificate does not prove `value`, or None."""
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = cert.extensions
    except ValueError as exc:
        return f"the certificate cannot be parsed: {exc}"
    try:
        sans = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    want: x509.GeneralName
    if kind == "ip":
        want = x509.IPAddress(ipaddress.ip_address(value))
        ok = sans == [want]
    else:
        ok = (
            len(sans) == 1
            and isinstance(sans[0], x509.DNSName)
            and sans[0].value.lower() == value.lower()
        )
    if not ok:
        return f"the certificate must name {value} as its only subjectAltName, not {sans}"
    try:
        ext = extensions.get_extension_for_oid(ACME_IDENTIFIER)
    except x509.ExtensionNotFound:
        return "the certificate has no acmeIdentifier extension"
    if not ext.critical:
        return "the certificate's acmeIdentifier extension is not critical"
    got = ext.value.value if isinstance(ext.value, x509.UnrecognizedExtension) else b""
    expected = extension_value(key_authorization)
    if len(got) != len(expected) or got[:2] != expected[:2]:
        return "the certificate's acmeIdentifier extension is malformed"
    if got != expected:
        return (
            f"the certificate's acmeIdentifier is {got[2:].hex()}, but the key "
            f"authorization's digest is {expected[2:].hex()}"
        )
    return None


def check(
    kind: str, value: str, address: str, port: int, key_authorization: str, timeout: float
) -> tuple[dict[str, Any] | None, bool]:
    """(None, _) when the endpoint proves the name, else (the problem, whether another attempt
    may do better: a refused connection may be a client still starting its server)."""
    target = f"{address}:{port}" if ":" not in address else f"[{address}]:{port}"
    try:
        der, protocol = handshake(address, port, server_name(kind, value), timeout)
    except ssl.SSLError as exc:
        detail = f"error doing TLS handshake with {target}: {exc}"
        return ACMEProblem("tls", detail).document(), True
    except OSError as exc:
        detail = f"error doing TLS dial for {target}: {exc}"
        return ACMEProblem("connection", detail).document(), True
    if protocol != ALPN:
        detail = f"cannot negotiate ALPN {ALPN} with {target} for the tls-alpn-01 challenge"
        return ACMEProblem("tls", detail).document(), False
    if not der:
        return ACMEProblem("tls", f"{target} sent no certificate").document(), False
    why = check_certificate(der, kind, value, key_authorization)
    if why is None:
        return None, False
    detail = f"incorrect certificate for tls-alpn-01 challenge: {why}"
    return ACMEProblem("incorrectResponse", detail).document(), False
