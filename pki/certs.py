"""Certificate helpers the CA and the `step` client share: reading certificate files (a PEM
bundle, or one DER certificate), the AKI of what an issuer signs, and who issued what."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature

__all__ = ["aki_for", "is_ca", "issued_by", "parse_certificates"]


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, or the one of DER data; ValueError when neither.

    Callers wrap the ValueError in their own layer's error with the file's name."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def aki_for(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI of certificates `issuer` signs: its SKI, or one computed from its key."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()  # type: ignore[arg-type]
        )


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `cert` names `issuer` as its issuer and carries its valid signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):  # not this issuer
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    """Whether the certificate has basic constraints with CA true."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
