"""Private keys for `step certificate`: generate, read, and open signers by URI.

step's rules (the new-key password and PEM are :mod:`cli.crypto_keyio`'s, shared with
`step crypto`): a new key is written encrypted (PBES2 PKCS#8, PBKDF2-SHA256 at 600,000 rounds,
AES-256-CBC, as go.step.sm/crypto's pemutil does) unless `--no-password --insecure`; the
password comes from `--password-file` or a terminal prompt, never from an argument, and is
never echoed. A CA key is a PEM file (decrypted with `--ca-password-file` or a prompt) or a
key in any key store named by URI (`pkcs11:`, `yubikey:`, `softkms:`), opened through
:mod:`keystores`.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from cli.common import CLIError, go_strerror, read_password_file
from keystores import (
    KeySpec,
    KeyStoreError,
    SigningKey,
    WrongPasswordError,
    is_hardware,
    open_keystore,
)
from keystores.pem import load_private_key_pem
from keystores.uri import split_scheme

__all__ = [
    "generate_key",
    "is_store_uri",
    "key_spec",
    "open_signer",
    "read_private_key",
    "same_public_key",
    "signature_hash",
]

_STEP_CURVES = {"P-256", "P-384", "P-521"}


def key_spec(kty: str, curve: str | None, size: int | None) -> KeySpec:
    """step's `--kty --curve --size` rules: EC P-256 by default, RSA 2048, OKP Ed25519."""
    if kty not in ("EC", "RSA", "OKP"):
        raise CLIError(f"invalid value '{kty}' for flag '--kty'; options are EC, RSA or OKP")
    if kty == "EC" and size is not None:
        raise CLIError("flag '--size' is incompatible with '--kty EC'")
    if kty == "OKP" and size is not None:
        raise CLIError("flag '--size' is incompatible with '--kty OKP'")
    if kty == "RSA" and curve is not None:
        raise CLIError("flag '--curve' is incompatible with '--kty RSA'")
    if kty == "EC" and curve is not None and curve not in _STEP_CURVES:
        raise CLIError(
            f"invalid value '{curve}' for flag '--curve'; options are P-256, P-384, P-521"
        )
    if kty == "OKP" and curve not in (None, "Ed25519"):
        raise CLIError(f"invalid value '{curve}' for flag '--curve'; options are Ed25519")
    try:
        if kty == "OKP":
            return KeySpec("OKP", "Ed25519")
        if kty == "RSA":
            return KeySpec("RSA", size=2048 if size is None else size)
        return KeySpec("EC", curve or "P-256")
    except KeyStoreError as exc:
        raise CLIError(str(exc)) from None


def generate_key(kty: str, curve: str | None, size: int | None) -> SigningKey:
    return key_spec(kty, curve, size).generate()


def _as_signing_key(key: object, source: str) -> SigningKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise CLIError(f"the key {source} cannot be used to sign X509 certificates")


def read_private_key(path: str, password_file: Path | None, flag: str) -> SigningKey:
    """A PEM private key file; an encrypted one is opened with the password file, or with a
    password asked on a terminal. `flag` names the password flag in the error."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"open {path}: {go_strerror(exc)}") from None
    password = read_password_file(password_file) if password_file is not None else None
    try:
        return _as_signing_key(load_private_key_pem(data, password), path)
    except WrongPasswordError as exc:
        if password is not None:
            raise CLIError(f"error decrypting {path}: {exc}") from None
    except KeyStoreError as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if not sys.stdin.isatty():
        raise CLIError(f"{path} is encrypted: use '{flag}' to give its password")
    value: str = typer.prompt(f"Please enter the password to decrypt {path}", hide_input=True)
    try:
        return _as_signing_key(load_private_key_pem(data, value.encode()), path)
    except KeyStoreError as exc:
        raise CLIError(f"error decrypting {path}: {exc}") from None


def is_store_uri(name: str) -> bool:
    """A key named by a key-store URI (pkcs11:, yubikey:, softkms:), not a plain PEM path."""
    scheme, _ = split_scheme(name)
    return scheme is not None and (scheme == "softkms" or is_hardware(name))


def open_signer(
    stack: contextlib.ExitStack,
    key: str,
    kms: str | None,
    password_file: Path | None,
    flag: str,
) -> SigningKey:
    """The signer for `key`: a PEM file, or a key in the store `kms` (or `key`'s own URI).

    The store stays open in `stack` while the caller signs (a PKCS#11 session must).
    """
    if not kms and not is_store_uri(key):
        return read_private_key(key, password_file, flag)
    store_uri = kms or key
    password = read_password_file(password_file) if password_file is not None else None
    try:
        store = stack.enter_context(open_keystore(store_uri, password=password))
        return store.signer(key)
    except KeyStoreError as exc:
        raise CLIError(f"error opening the key {key}: {exc}") from None


def signature_hash(key: SigningKey) -> hashes.HashAlgorithm | None:
    """The digest Go's x509 picks for a key: by curve for ECDSA, SHA-256 for RSA, none for
    Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        if size > 384:
            return hashes.SHA512()
        return hashes.SHA384() if size > 256 else hashes.SHA256()
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None


def same_public_key(a: PublicKeyTypes, b: PublicKeyTypes) -> bool:
    """Whether two public keys are the same key (compared by their SubjectPublicKeyInfo)."""
    spki = PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(Encoding.DER, spki) == b.public_bytes(Encoding.DER, spki)
