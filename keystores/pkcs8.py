"""PKCS#8 encryption with PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC at a chosen cost.

cryptography's BestAvailableEncryption uses only 2048 PBKDF2 rounds and offers no knob, so
the EncryptedPrivateKeyInfo (RFC 5958, RFC 8018) is assembled here around the unencrypted
PKCS#8 DER cryptography produces. The PRF is written explicitly with NULL parameters, the
form OpenSSL 3 and cryptography accept (step-crypto 0.24's `00 00` is rejected by both).
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from pki import der

__all__ = [
    "DEFAULT_ITERATIONS",
    "OID_PBES2",
    "encrypt_pkcs8",
    "encryption_algorithm",
]

DEFAULT_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256; ~0.1 s here.
SALT_BYTES = 16

OID_PBES2 = "1.2.840.113549.1.5.13"
OID_PBKDF2 = "1.2.840.113549.1.5.12"
OID_HMAC_SHA256 = "1.2.840.113549.2.9"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def encrypt_pkcs8(
    plain_pkcs8_der: bytes, password: bytes, iterations: int = DEFAULT_ITERATIONS
) -> bytes:
    """Wrap an unencrypted PKCS#8 PrivateKeyInfo into a DER EncryptedPrivateKeyInfo."""
    if not password:
        raise ValueError("an empty password cannot protect a key")
    if iterations < 1:
        raise ValueError("PBKDF2 iteration count must be positive")
    salt = os.urandom(SALT_BYTES)
    iv = os.urandom(16)
    kdf_sha256 = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations)
    key = kdf_sha256.derive(password)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain_pkcs8_der) + padder.finalize()
    encryptor = Cipher(algorithms.AES256(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()

    kdf = der.sequence(
        der.object_identifier(OID_PBKDF2),
        der.sequence(
            der.octet_string(salt),
            der.integer(iterations),
            der.sequence(der.object_identifier(OID_HMAC_SHA256), der.NULL),
        ),
    )
    cipher = der.sequence(der.object_identifier(OID_AES256_CBC), der.octet_string(iv))
    algorithm = der.sequence(der.object_identifier(OID_PBES2), der.sequence(kdf, cipher))
    return der.sequence(algorithm, der.octet_string(ciphertext))


def encryption_algorithm(encrypted_pkcs8_der: bytes) -> str:
    """The encryption algorithm OID of an EncryptedPrivateKeyInfo; DERError if malformed.

    Used to tell a damaged file (fails here) from a wrong password (fails on decryption).
    """
    tag, body, end = der.read_tlv(encrypted_pkcs8_der)
    if tag != der.TAG_SEQUENCE or end != len(encrypted_pkcs8_der):
        raise der.DERError("not an EncryptedPrivateKeyInfo")
    tag, algorithm, pos = der.read_tlv(body)
    if tag != der.TAG_SEQUENCE:
        raise der.DERError("missing encryption algorithm")
    tag, data, end = der.read_tlv(body, pos)
    if tag != der.TAG_OCTET_STRING or end != len(body) or not data:
        raise der.DERError("missing encrypted data")
    tag, oid, _ = der.read_tlv(algorithm)
    if tag != der.TAG_OID:
        raise der.DERError("missing algorithm identifier")
    return der.read_oid(oid)
