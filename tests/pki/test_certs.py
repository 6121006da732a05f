"""pki.certs: PEM bundles and DER files read into certificates, anything else refused."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pki.certs import is_ca, issued_by, parse_certificates


def _cert(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_pem_bundle_keeps_every_certificate_in_order() -> None:
    a, b = _cert("a"), _cert("b")
    data = a.public_bytes(Encoding.PEM) + b.public_bytes(Encoding.PEM)
    assert parse_certificates(data) == [a, b]


def test_der_is_one_certificate() -> None:
    a = _cert("a")
    assert parse_certificates(a.public_bytes(Encoding.DER)) == [a]


@pytest.mark.parametrize("data", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nxx"])
def test_anything_else_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_certificates(data)


def _signed(
    name: str, issuer: x509.Certificate | None, ca: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    return builder.sign(key, hashes.SHA256()), key


def test_issued_by_checks_the_name_and_the_signature() -> None:
    root, root_key = _signed("Root", None, ca=True)
    twin, _ = _signed("Root", None, ca=True)  # the same name, another key
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")]))
        .issuer_name(root.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(1)
        .not_valid_before(root.not_valid_before_utc)
        .not_valid_after(root.not_valid_after_utc)
        .sign(root_key, hashes.SHA256())
    )
    assert issued_by(leaf, root) and issued_by(root, root)
    assert not issued_by(leaf, twin), "same name, wrong signature"
    assert not issued_by(root, leaf), "wrong name"


def test_is_ca_reads_basic_constraints() -> None:
    assert is_ca(_signed("CA", None, ca=True)[0])
    assert not is_ca(_signed("no constraints", None, ca=False)[0])
