"""Yubico-like PIV attestation chains and `step`-format attestation statements for the ACME
device-attest-01 tests: a root, an f9 attestation CA under it, and attestation certificates
for slot keys carrying Yubico's serial extension (1.3.6.1.4.1.41482.3.7), as a YubiKey makes
them (tests/piv_emulator.py makes the same on the emulated card)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

OID_YUBICO_SERIAL = x509.ObjectIdentifier("1.3.6.1.4.1.41482.3.7")
SlotKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([0x02, len(body)]) + body


@dataclass
class AttestationCA:
    """A "Yubico PIV Root CA" and the f9 attestation CA of one YubiKey under it."""

    root: x509.Certificate
    f9: x509.Certificate
    f9_key: ec.EllipticCurvePrivateKey

    @classmethod
    def make(cls, label: str = "test") -> AttestationCA:
        now = dt.datetime.now(dt.UTC)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = (
            x509.CertificateBuilder()
            .subject_name(_name(f"Yubico PIV Root CA ({label})"))
            .issuer_name(_name(f"Yubico PIV Root CA ({label})"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        f9_key = ec.generate_private_key(ec.SECP256R1())
        f9 = (
            x509.CertificateBuilder()
            .subject_name(_name("Yubico PIV Attestation"))
            .issuer_name(root.subject)
            .public_key(f9_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        return cls(root, f9, f9_key)

    def root_pem(self) -> bytes:
        return self.root.public_bytes(Encoding.PEM)

    def attest(
        self, key: SlotKey, serial: int | None, *, expired: bool = False
    ) -> x509.Certificate:
        """The attestation certificate of a slot key (no serial extension when None)."""
        now = dt.datetime.now(dt.UTC)
        start = now - dt.timedelta(days=10 if expired else 1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("YubiKey PIV Attestation 9a"))
            .issuer_name(self.f9.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=30))
        )
        if serial is not None:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_YUBICO_SERIAL, _der_int(serial)), critical=False
            )
        return builder.sign(self.f9_key, hashes.SHA256())


def sign_key_authorization(key: SlotKey, key_authorization: str) -> tuple[int, bytes]:
    """(COSE alg, signature) as step signs the key authorization with the slot key."""
    data = key_authorization.encode()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return -7, key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return -257, key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return -8, key.sign(data)


def att_obj(
    key: SlotKey,
    chain: list[x509.Certificate],
    key_authorization: str,
    *,
    fmt: str = "step",
    signature: bytes | None = None,
) -> bytes:
    """The CBOR attestation object step sends (signature over the key authorization unless
    `signature` is given)."""
    alg, sig = sign_key_authorization(key, key_authorization)
    statement: dict[str, Any] = {
        "alg": alg,
        "sig": cbor2.dumps(sig if signature is None else signature),
        "x5c": [c.public_bytes(Encoding.DER) for c in chain],
    }
    return bytes(cbor2.dumps({"fmt": fmt, "attStmt": statement}))


def payload(obj: bytes) -> dict[str, str]:
    """The challenge POST's payload: `{"attObj": base64url(CBOR)}`."""
    return {"attObj": base64.urlsafe_b64encode(obj).rstrip(b"=").decode()}
