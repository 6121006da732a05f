"""Certificate fingerprints as step writes and compares them: SHA-256 of the DER, lowercase hex."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex: step's root fingerprint."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def normalize_fingerprint(value: str) -> str:
    """A fingerprint as typed (`AB:CD…`, `ab-cd…`, spaces around) in the form compared."""
    return value.replace(":", "").replace("-", "").strip().lower()
