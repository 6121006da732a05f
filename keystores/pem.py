"""Private keys as PEM: write PBKDF2-600k PKCS#8, read whatever step, OpenSSL or we wrote.

Reading accepts encrypted PKCS#8 (any PBES2 cryptography supports, scrypt included), the
legacy `Proc-Type: 4,ENCRYPTED` PEM step-ca writes for EC/RSA CA keys, and plain keys.
The envelope is checked before decryption so a damaged file and a wrong password get
different, one-line errors.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from keystores import pkcs8
from keystores.base import KeyStoreError, WrongPasswordError
from pki import der

__all__ = ["encrypt_private_key_pem", "load_private_key_pem", "plaintext_private_key_pem"]

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_ENCRYPTED_PKCS8 = b"ENCRYPTED PRIVATE KEY"
_PRIVATE_LABELS = frozenset(
    {_ENCRYPTED_PKCS8, b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY"}
)


@dataclass(frozen=True)
class _Block:
    label: bytes
    headers: dict[str, str]
    der: bytes
    text: bytes

    @property
    def encrypted(self) -> bool:
        proc_type = self.headers.get("Proc-Type", "").replace(" ", "").upper()
        return self.label == _ENCRYPTED_PKCS8 or proc_type == "4,ENCRYPTED"


def _armor(label: bytes, data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return b"\n".join(
        [b"-----BEGIN " + label + b"-----", *lines, b"-----END " + label + b"-----\n"]
    )


def _parse_block(label: bytes, body: bytes, text: bytes) -> _Block:
    headers: dict[str, str] = {}
    lines = body.splitlines()
    if lines and b":" in lines[0]:
        while lines and lines[0].strip():
            name, _, value = lines.pop(0).decode("ascii", "replace").partition(":")
            headers[name.strip()] = value.strip()
    try:
        data = base64.b64decode(b"".join(line.strip() for line in lines), validate=True)
    except binascii.Error:
        raise KeyStoreError("damaged PEM: the body is not valid base64") from None
    if not data:
        raise KeyStoreError("damaged PEM: the body is empty")
    return _Block(label, headers, data, text)


def _private_block(data: bytes) -> _Block:
    """The first private-key block; skips others such as `openssl ecparam`'s EC PARAMETERS."""
    for match in _BLOCK.finditer(data):
        if match.group(1) in _PRIVATE_LABELS:
            return _parse_block(match.group(1), match.group(2), match.group(0))
    raise KeyStoreError("not a PEM private key")


def _check_envelope(block: _Block) -> None:
    """Reject a malformed encrypted envelope before trying the password on it."""
    if block.label == _ENCRYPTED_PKCS8:
        try:
            pkcs8.encryption_algorithm(block.der)
        except der.DERError as exc:
            raise KeyStoreError(f"damaged encrypted private key: {exc}") from None
        return
    dek_info = block.headers.get("DEK-Info", "")
    cipher, _, iv = dek_info.partition(",")
    if not cipher or not iv:
        raise KeyStoreError("damaged encrypted PEM: missing DEK-Info header")
    if len(block.der) % 8:
        raise KeyStoreError("damaged encrypted PEM: ciphertext is not whole cipher blocks")


def _reason(exc: Exception) -> str:
    """cryptography's first sentence, which is the useful part of its long messages."""
    return str(exc).split(". ")[0].rstrip(".")


def load_private_key_pem(data: bytes, password: bytes | None) -> PrivateKeyTypes:
    """Load a PEM private key; WrongPasswordError or KeyStoreError with a one-line reason.

    A password given for an unencrypted key is ignored, so a store configured with a
    password still reads plain keys (e.g. imported ones).
    """
    block = _private_block(data)
    if not block.encrypted:
        try:
            return load_pem_private_key(block.text, None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError(f"not a usable private key: {_reason(exc)}") from None
    if not password:
        raise WrongPasswordError("the key is encrypted and no password was given")
    _check_envelope(block)
    try:
        return load_pem_private_key(block.text, password)
    except UnsupportedAlgorithm as exc:
        raise KeyStoreError(f"unsupported key encryption: {_reason(exc)}") from None
    except TypeError as exc:
        raise KeyStoreError(f"not a usable private key: {_reason(exc)}") from None
    except ValueError as exc:
        # cryptography reports these only as ValueError; its wording is the one clue.
        message = str(exc).lower()
        if "password" in message and "could not deserialize" not in message:
            raise WrongPasswordError("wrong password") from None
        # "Could not deserialize key data ... unsupported algorithm" is cryptography's one
        # message for anything the decrypted bytes fail to parse as, garbage from a wrong
        # password included; the envelope was checked above, so it is not the algorithm.
        if ("unknown" in message or "unsupported" in message) and (
            "could not deserialize" not in message
        ):
            raise KeyStoreError(f"unsupported key encryption: {_reason(exc)}") from None
        # A wrong password sometimes yields valid CBC padding and garbage (~1 in 300), which
        # looks just like a damaged file: CBC without a MAC cannot tell them apart.
        raise WrongPasswordError(f"wrong password or damaged key ({_reason(exc)})") from None


def encrypt_private_key_pem(
    key: PrivateKeyTypes, password: bytes, iterations: int = pkcs8.DEFAULT_ITERATIONS
) -> bytes:
    """`ENCRYPTED PRIVATE KEY` PEM: PBES2, PBKDF2-HMAC-SHA256 at `iterations`, AES-256-CBC."""
    plain = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    try:
        encrypted = pkcs8.encrypt_pkcs8(plain, password, iterations)
    except ValueError as exc:
        raise KeyStoreError(str(exc)) from None
    return _armor(_ENCRYPTED_PKCS8, encrypted)


def plaintext_private_key_pem(key: PrivateKeyTypes) -> bytes:
    """Unencrypted PKCS#8 PEM, for stores explicitly allowed to keep plaintext keys."""
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
