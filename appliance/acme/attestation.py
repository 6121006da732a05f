"""ACME device-attest-01 (draft-acme-device-attest) in the `step` format, as step-ca checks it.

The client POSTs `{"attObj": base64url(CBOR)}` to the challenge, the CBOR being a WebAuthn-like
attestation object without authData: `{"fmt": "step", "attStmt": {"alg": -7, "sig":
CBOR(bstr signature), "x5c": [attestation certificate, intermediate, ...]}}`. It holds when

- `x5c` chains to the provisioner's `attestationRoots`, or to Yubico's PIV roots without them;
- `sig` is the attested key's signature over the key authorization (token.thumbprint): ECDSA
  P-256 or RSA PKCS#1 v1.5 with SHA-256, or Ed25519;
- the YubiKey serial in the attestation certificate (Yubico's 1.3.6.1.4.1.41482.3.7) is the
  order's `permanent-identifier`.

Finalize then issues only for the attested key (its fingerprint is kept in the store), with
step-ca's attested-leaf profile: the permanent identifier as a `permanentIdentifier` otherName
SAN (RFC 4043), clientAuth only. Every refusal is a `badAttestationStatement` problem (step-ca's
detailed form), stored on the challenge, which becomes invalid.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.acme import jws
from appliance.acme.problems import PREFIX, ACMEProblem
from keystores.yubikey.attestation import attestation_serial
from pki.certs import is_ca, issued_by
from provisioners.acme import ATTESTATION_FORMATS, PERMANENT_IDENTIFIER, ACMEProvisioner

__all__ = [
    "OID_PERMANENT_IDENTIFIER",
    "AttestationError",
    "attested_common_name",
    "fingerprint",
    "verify_payload",
    "yubico_roots",
]

OID_PERMANENT_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.3")
_MAX_CHAIN = 6
_BAD = "Attestation statement cannot be verified"
_REJECTED = "The server will not issue certificates for the identifier"

# Yubico PIV Root CA Serial 263751 (https://developers.yubico.com/PIV/Introduction/
# piv-attestation-ca.pem) and Yubico Attestation Root 1 (YubiKey 5.7.4+,
# https://developers.yubico.com/PKI/yubico-ca-1.pem): the roots step-ca trusts for the `step`
# format when the provisioner has no attestationRoots.
_YUBICO_ROOTS = b"""-----BEGIN CERTIFICATE-----
MIIDFzCCAf+gAwIBAgIDBAZHMA0GCSqGSIb3DQEBCwUAMCsxKTAnBgNVBAMMIFl1
YmljbyBQSVYgUm9vdCBDQSBTZXJpYWwgMjYzNzUxMCAXDTE2MDMxNDAwMDAwMFoY
DzIwNTIwNDE3MDAwMDAwWjArMSkwJwYDVQQDDCBZdWJpY28gUElWIFJvb3QgQ0Eg
U2VyaWFsIDI2Mzc1MTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAMN2
cMTNR6YCdcTFRxuPy31PabRn5m6pJ+nSE0HRWpoaM8fc8wHC+Tmb98jmNvhWNE2E
ilU85uYKfEFP9d6Q2GmytqBnxZsAa3KqZiCCx2LwQ4iYEOb1llgotVr/whEpdVOq
joU0P5e1j1y7OfwOvky/+AXIN/9Xp0VFlYRk2tQ9GcdYKDmqU+db9iKwpAzid4oH
BVLIhmD3pvkWaRA2H3DA9t7H/HNq5v3OiO1jyLZeKqZoMbPObrxqDg+9fOdShzgf
wCqgT3XVmTeiwvBSTctyi9mHQfYd2DwkaqxRnLbNVyK9zl+DzjSGp9IhVPiVtGet
X02dxhQnGS7K6BO0Qe8CAwEAAaNCMEAwHQYDVR0OBBYEFMpfyvLEojGc6SJf8ez0
1d8Cv4O/MA8GA1UdEwQIMAYBAf8CAQEwDgYDVR0PAQH/BAQDAgEGMA0GCSqGSIb3
DQEBCwUAA4IBAQBc7Ih8Bc1fkC+FyN1fhjWioBCMr3vjneh7MLbA6kSoyWF70N3s
XhbXvT4eRh0hvxqvMZNjPU/VlRn6gLVtoEikDLrYFXN6Hh6Wmyy1GTnspnOvMvz2
lLKuym9KYdYLDgnj3BeAvzIhVzzYSeU77/Cupofj093OuAswW0jYvXsGTyix6B3d
bW5yWvyS9zNXaqGaUmP3U9/b6DlHdDogMLu3VLpBB9bm5bjaKWWJYgWltCVgUbFq
Fqyi4+JE014cSgR57Jcu3dZiehB6UtAPgad9L5cNvua/IWRmm+ANy3O2LH++Pyl8
SREzU8onbBsjMg9QDiSf5oJLKvd/Ren+zGY7
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----
MIIDPjCCAiagAwIBAgIUXzeiEDJEOTt14F5n0o6Zf/bBwiUwDQYJKoZIhvcNAQEN
BQAwJDEiMCAGA1UEAwwZWXViaWNvIEF0dGVzdGF0aW9uIFJvb3QgMTAgFw0yNDEy
MDEwMDAwMDBaGA85OTk5MTIzMTIzNTk1OVowJDEiMCAGA1UEAwwZWXViaWNvIEF0
dGVzdGF0aW9uIFJvb3QgMTCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEB
AMZ6/TxM8rIT+EaoPvG81ontMOo/2mQ2RBwJHS0QZcxVaNXvl12LUhBZ5LmiBScI
Zd1Rnx1od585h+/dhK7hEm7JAALkKKts1fO53KGNLZujz5h3wGncr4hyKF0G74b/
U3K9hE5mGND6zqYchCRAHfrYMYRDF4YL0X4D5nGdxvppAy6nkEmtWmMnwO3i0TAu
csrbE485HvGM4r0VpgVdJpvgQjiTJCTIq+D35hwtT8QDIv+nGvpcyi5wcIfCkzyC
imJukhYy6KoqNMKQEdpNiSOvWyDMTMt1bwCvEzpw91u+msUt4rj0efnO9s0ZOwdw
MRDnH4xgUl5ZLwrrPkfC1/0CAwEAAaNmMGQwHQYDVR0OBBYEFNLu71oijTptXCOX
PfKF1SbxJXuSMB8GA1UdIwQYMBaAFNLu71oijTptXCOXPfKF1SbxJXuSMBIGA1Ud
EwEB/wQIMAYBAf8CAQMwDgYDVR0PAQH/BAQDAgGGMA0GCSqGSIb3DQEBDQUAA4IB
AQC3IW/sgB9pZ8apJNjxuGoX+FkILks0wMNrdXL/coUvsrhzsvl6mePMrbGJByJ1
XnquB5sgcRENFxdQFma3mio8Upf1owM1ZreXrJ0mADG2BplqbJnxiyYa+R11reIF
TWeIhMNcZKsDZrFAyPuFjCWSQvJmNWe9mFRYFgNhXJKkXIb5H1XgEDlwiedYRM7V
olBNlld6pRFKlX8ust6OTMOeADl2xNF0m1LThSdeuXvDyC1g9+ILfz3S6OIYgc3i
roRcFD354g7rKfu67qFAw9gC4yi0xBTPrY95rh4/HqaUYCA/L8ldRk6H7Xk35D+W
Vpmq2Sh/xT5HiFuhf4wJb0bK
-----END CERTIFICATE-----
"""


class AttestationError(Exception):
    """A refused attestation: `problem` is the challenge's RFC 8555 error object."""

    def __init__(self, kind: str, detail: str, subproblems: list[dict[str, Any]] | None = None):
        super().__init__(detail)
        self.problem = ACMEProblem(kind, detail).document()
        if subproblems:
            self.problem["subproblems"] = subproblems


def _bad(message: str) -> AttestationError:
    return AttestationError("badAttestationStatement", f"{_BAD}: {message}")


def _q(value: object) -> str:
    """Go's %q, which step-ca's messages use."""
    return json.dumps(value if isinstance(value, str) else str(value))


def yubico_roots() -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(_YUBICO_ROOTS)


def fingerprint(key: Any) -> str:
    """SHA-256 of the key's SubjectPublicKeyInfo, hex: how finalize recognises the key."""
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def verify_payload(
    payload: dict[str, Any],
    identifier: str,
    key_authorization: str,
    prov: ACMEProvisioner,
    now: datetime | None = None,
) -> dict[str, str]:
    """Check a device-attest-01 payload for the permanent identifier `identifier`; what it
    vouches for (format, fingerprint, identifier), or AttestationError."""
    if payload.get("error"):
        raise AttestationError(
            "rejectedIdentifier", f"{_REJECTED}: payload contained error: {payload['error']}"
        )
    att_obj = payload.get("attObj", "")  # missing: empty, as Go unmarshals it
    try:
        raw = jws.b64decode(att_obj) if isinstance(att_obj, str) else None
    except (ACMEProblem, binascii.Error, ValueError):
        raw = None
    if raw is None:
        raise _bad(f"failed base64 decoding attObj {_q(att_obj)}")
    if raw in (b"", b"{}"):
        raise _bad("attObj must not be empty")
    try:
        obj = cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise _bad(f"attObj is not well formed CBOR: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("fmt", ""), str):
        raise _bad("attObj is not an attestation object")
    fmt, statement = obj.get("fmt", ""), obj.get("attStmt") or {}
    if not prov.attestation_format_enabled(fmt):
        if fmt not in ATTESTATION_FORMATS:
            raise _bad(f"unsupported attestation object format {_q(fmt)}")
        raise _bad(f"attestation format {_q(fmt)} is not enabled")
    if fmt != "step":  # step-ca's other formats (Apple, TPM, Android) are not implemented
        raise _bad(f'unsupported attestation object format {_q(fmt)}: this CA checks "step"')
    if not isinstance(statement, dict):
        raise _bad("attStmt is malformed")
    leaf = _step_statement(statement, key_authorization, prov, now or datetime.now(UTC))
    serial = attestation_serial(leaf)
    attested = "" if serial is None else str(serial)
    if attested != identifier:
        detail = (
            f"challenge identifier {_q(identifier)} doesn't match the attested hardware "
            f"identifier {_q(attested)}"
        )
        raise AttestationError(
            "badAttestationStatement",
            f"{_BAD}: permanent identifier does not match",
            [
                {
                    "type": PREFIX + "rejectedIdentifier",
                    "detail": detail,
                    "identifier": {"type": PERMANENT_IDENTIFIER, "value": identifier},
                }
            ],
        )
    return {"format": fmt, "fingerprint": fingerprint(leaf.public_key()), "identifier": attested}


def _step_statement(
    statement: dict[Any, Any], key_authorization: str, prov: ACMEProvisioner, now: datetime
) -> x509.Certificate:
    """doStepAttestationFormat: the chain, then the signature over the key authorization;
    the attestation certificate."""
    x5c = statement.get("x5c")
    if not isinstance(x5c, list):
        raise _bad("x5c not present")
    if not x5c:
        raise AttestationError("rejectedIdentifier", f"{_REJECTED}: x5c is empty")
    try:
        if not all(isinstance(der, bytes) for der in x5c):
            raise ValueError
        chain = [x509.load_der_x509_certificate(der) for der in x5c]
    except ValueError:
        raise _bad("x5c is malformed") from None
    roots = prov.attestation_roots if prov.attestation_roots is not None else yubico_roots()
    problem = verify_chain(chain[0], chain[1:], roots, now)
    if problem:
        raise _bad(f"x5c is not valid: {problem}")
    sig = statement.get("sig")
    if not isinstance(sig, bytes):
        raise _bad("sig not present")
    try:
        signature = cbor2.loads(sig)
    except (cbor2.CBORDecodeError, ValueError, TypeError):
        signature = None
    if not isinstance(signature, bytes):
        raise _bad("sig is malformed")
    _check_signature(chain[0].public_key(), signature, key_authorization.encode())
    return chain[0]


def _check_signature(public: Any, signature: bytes, message: bytes) -> None:
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            if not isinstance(public.curve, ec.SECP256R1):
                raise _bad(f"unsupported elliptic curve {public.curve.name}")
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, message)
        else:
            raise _bad(f"unsupported public key type {type(public).__name__}")
    except InvalidSignature:
        raise _bad("failed to validate signature") from None


def verify_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    now: datetime,
) -> str | None:
    """Why `leaf` does not chain through `intermediates` (CA certificates) to one of
    `roots`, each valid now, as Go's x509 messages put it; None when it does. A root need
    not be self-signed (it is an anchor, as in Go's pool)."""

    def in_time(cert: x509.Certificate) -> bool:
        return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc

    if not in_time(leaf):
        return "x509: certificate has expired or is not yet valid"

    def reaches(cert: x509.Certificate, depth: int, seen: tuple[bytes, ...]) -> bool:
        if any(in_time(r) and issued_by(cert, r) for r in roots):
            return True
        if depth >= _MAX_CHAIN:
            return False
        for ca in intermediates:
            fp = ca.fingerprint(hashes.SHA256())
            if fp in seen or not (is_ca(ca) and in_time(ca) and issued_by(cert, ca)):
                continue
            if reaches(ca, depth + 1, (*seen, fp)):
                return True
        return False

    return None if reaches(leaf, 0, ()) else "x509: certificate signed by unknown authority"


def attested_common_name(
    csr: x509.CertificateSigningRequest, identifier: str, attested: str | None, order_id: str
) -> str:
    """Finalize of a permanent-identifier order (step-ca's Order.Finalize): the CSR's key must
    be the attested one, and its common name empty or the identifier; that common name."""
    if attested is None or fingerprint(csr.public_key()) != attested:
        raise ACMEProblem("unauthorized", f"order {order_id} csr does not match the attested key")
    cns = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    common_name = str(cns[0].value) if cns else ""
    if common_name and common_name != identifier:
        raise ACMEProblem(
            "badCSR",
            "CSR Subject Common Name does not match identifiers exactly: CSR Subject Common "
            f"Name = {common_name}, Order Permanent Identifier = {identifier}",
        )
    return common_name


def permanent_identifier_san(value: str) -> x509.OtherName:
    """RFC 4043's PermanentIdentifier ::= SEQUENCE { identifierValue UTF8String OPTIONAL,
    assigner OID OPTIONAL }, with the identifier only (as step-ca's x509util marshals it)."""
    utf8 = value.encode()
    inner = b"\x0c" + _der_length(len(utf8)) + utf8
    return x509.OtherName(OID_PERMANENT_IDENTIFIER, b"\x30" + _der_length(len(inner)) + inner)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body
