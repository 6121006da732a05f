"""Reading and writing keys for `step crypto`: every format step's key commands accept.

A key file may be PEM (private keys in PKCS#8, SEC1 or PKCS#1, encrypted PKCS#8, the legacy
`Proc-Type: 4,ENCRYPTED` PEM older step wrote, OpenSSH private keys, public keys,
certificates and CSRs), DER, an OpenSSH public key line, a JWK, or a JWK wrapped in a PBES2
JWE (pki.jwe) as `step crypto jwk create` writes it. Like step's `pemutil.ParseKey`, only the
first PEM block counts, and a certificate or CSR stands for its public key.

New private keys are written as PBES2 PKCS#8 (PBKDF2-HMAC-SHA256, 600,000 rounds,
AES-256-CBC), which step reads and itself writes for Ed25519, rather than the MD5-based legacy
PEM step still writes for EC and RSA; unencrypted ones in step's forms.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, TypeGuard

import typer
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_der_private_key,
    load_der_public_key,
    load_pem_public_key,
    load_ssh_private_key,
    load_ssh_public_key,
)

from cli.common import CLIError, go_strerror, read_password_file
from keystores import KeyStoreError, WrongPasswordError
from keystores.pem import encrypt_private_key_pem, load_private_key_pem
from pki.jose import AnyKey, JOSEError, PrivateKey, PublicKey, key_from_jwk
from pki.jwe import decrypt_pbes2, encrypt_pbes2

__all__ = [
    "AnyKey",
    "PrivateKey",
    "PublicKey",
    "decrypt_jwe",
    "encrypt_jwe",
    "input_kind",
    "is_private",
    "new_password",
    "parse_jwk_text",
    "parse_key",
    "private_pem",
    "public_of",
    "public_pem",
    "read_input",
]

JWE_ENC = "A256GCM"
PBES2_COUNT = 600_000  # go.step.sm/crypto/jose.PBKDF2Iterations
MAX_PBES2_COUNT = 1_000_000  # refuse files that would pin the CPU for minutes

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PRIVATE_LABELS = {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY"}
_SSH_PREFIXES = (b"ssh-rsa", b"ssh-dss", b"ecdsa-sha2-nistp", b"ssh-ed25519")
_B64 = r"[A-Za-z0-9_-]"
_COMPACT_JWE = re.compile(rf"{_B64}+\.{_B64}*\.{_B64}+\.{_B64}+\.{_B64}+")


def read_input(name: str) -> bytes:
    """The bytes of file `name`, or of standard input for `-` (a UTF-8 BOM is dropped)."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise CLIError(f"open {name}: {go_strerror(exc)}") from None
    return data.removeprefix(b"\xef\xbb\xbf")


def is_private(key: object) -> TypeGuard[PrivateKey]:
    """Whether `key` is a private key of a type step handles."""
    return isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    )


def public_of(key: AnyKey) -> PublicKey:
    """The public half of `key` (a public key is its own)."""
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key.public_key()
    return key


def _supported(key: object, name: str) -> AnyKey:
    """`key` if it is an EC (NIST curve), RSA or Ed25519 key; step handles no other."""
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp224r1", "secp256r1", "secp384r1", "secp521r1"):
            raise CLIError(f"error parsing {name}: unsupported elliptic curve {key.curve.name}")
        return key
    if isinstance(
        key,
        rsa.RSAPrivateKey | rsa.RSAPublicKey | ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey,
    ):
        return key
    raise CLIError(f"error parsing {name}: unsupported key type {type(key).__name__.lstrip('_')}")


# --- passwords --------------------------------------------------------------------------------


def _existing_password(name: str, password_file: Path | None) -> bytes:
    """The password that opens `name`: from `--password-file`, else asked on a terminal."""
    if password_file is not None:
        return read_password_file(password_file)
    if not sys.stdin.isatty():
        raise CLIError(f"{name} is encrypted: use '--password-file' to give its password")
    value: str = typer.prompt(f"Please enter the password to decrypt {name}", hide_input=True)
    return value.encode()


def new_password(password_file: Path | None, what: str, flag: str = "--password-file") -> bytes:
    """A password for encrypting: from `flag`'s file, else asked twice on a terminal."""
    if password_file is not None:
        password = read_password_file(password_file)
        if not password:
            raise CLIError(f"the password in {password_file} is empty")
        return password
    if not sys.stdin.isatty():
        raise CLIError(
            f"a password is needed to encrypt {what}: use '{flag}', "
            "or '--no-password --insecure' to leave it unencrypted"
        )
    while True:
        value: str = typer.prompt(
            f"Please enter the password to encrypt {what}",
            hide_input=True,
            confirmation_prompt=True,
        )
        if value:
            return value.encode()
        typer.echo("the password cannot be empty", err=True)


# --- JWE (PBES2) --------------------------------------------------------------------------


def encrypt_jwe(payload: bytes, password: bytes, cty: str = "jwk+json") -> dict[str, str]:
    """A PBES2-HS256+A128KW / A256GCM JWE (pki.jwe) in go-jose's flattened JSON member order."""
    parts = encrypt_pbes2(payload, password, p2c=PBES2_COUNT, enc=JWE_ENC, cty=cty).split(".")
    return dict(zip(("protected", "encrypted_key", "iv", "ciphertext", "tag"), parts, strict=True))


def decrypt_jwe(text: str, password: bytes, name: str) -> bytes:
    """The payload of a PBES2 JWE (compact or JSON form); one line on any failure."""
    try:
        return decrypt_pbes2(text, password, max_p2c=MAX_PBES2_COUNT)
    except JOSEError as exc:
        message = str(exc)
        if "wrong password" in message or "authentication failed" in message:
            raise CLIError(f"error decrypting {name}: wrong password") from None
        count = re.search(r"p2c (\d+) exceeds", message)
        if count:
            message = f"PBES2 count {count[1]} is above {MAX_PBES2_COUNT}"
        raise CLIError(f"error decrypting {name}: {message}") from None


def _is_jwe_text(text: str) -> bool:
    stripped = text.strip()
    if _COMPACT_JWE.fullmatch(stripped):
        return True
    if not stripped.startswith("{"):
        return False
    try:
        obj = json.loads(stripped)
    except (json.JSONDecodeError, RecursionError):
        return False
    return isinstance(obj, dict) and "ciphertext" in obj


def parse_jwk_text(
    data: bytes, name: str, password_file: Path | None
) -> tuple[AnyKey, dict[str, Any], bool]:
    """(key, JWK members, was it encrypted) of a JWK file, opening a JWE wrapping if any."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"error parsing {name}: not UTF-8") from None
    encrypted = _is_jwe_text(text)
    if encrypted:
        text = decrypt_jwe(text, _existing_password(name, password_file), name).decode(
            "utf-8", "replace"
        )
    try:
        members = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CLIError(f"error parsing {name}: not a JWK") from None
    if not isinstance(members, dict):
        raise CLIError(f"error parsing {name}: not a JWK")
    try:
        key = key_from_jwk(members)
    except JOSEError as exc:
        raise CLIError(f"error parsing {name}: {exc}") from None
    return key, members, encrypted


# --- reading any key ------------------------------------------------------------------------


def _pem_key(label: bytes, block: bytes, name: str, password_file: Path | None) -> object:
    if label in _PRIVATE_LABELS:
        try:
            try:
                return load_private_key_pem(block, None)
            except WrongPasswordError:  # encrypted: now is the time to ask for the password
                return load_private_key_pem(block, _existing_password(name, password_file))
        except WrongPasswordError as exc:
            raise CLIError(f"error decrypting {name}: {exc}") from None
        except KeyStoreError as exc:
            raise CLIError(f"error parsing {name}: {exc}") from None
    try:
        if label == b"OPENSSH PRIVATE KEY":
            return load_ssh_private_key(block, None)
        if label in (b"PUBLIC KEY", b"RSA PUBLIC KEY"):
            return load_pem_public_key(block)
        if label == b"CERTIFICATE":
            return x509.load_pem_x509_certificate(block).public_key()
        if label in (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"):
            return x509.load_pem_x509_csr(block).public_key()
    except TypeError:  # an OpenSSH key with a passphrase needs bcrypt, not installed
        raise CLIError(
            f"error parsing {name}: encrypted OpenSSH private keys are not supported"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CLIError(f"error parsing {name}: {str(exc).split('. ')[0]}") from None
    raise CLIError(f"error parsing {name}: unsupported PEM type {label.decode()}")


def _der_key(data: bytes, name: str) -> object:
    loaders = (
        lambda: load_der_private_key(data, None),
        lambda: load_der_public_key(data),
        lambda: x509.load_der_x509_certificate(data).public_key(),
        lambda: x509.load_der_x509_csr(data).public_key(),
    )
    for load in loaders:
        try:
            return load()
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    raise CLIError(
        f"error parsing {name}: not a key in PEM, DER, JWK or OpenSSH format, nor a certificate"
    )


def input_kind(data: bytes) -> str:
    """How step's key commands tell formats apart: "pem", "ssh", "jwk" or else "der"."""
    if data.lstrip().startswith(b"-----BEGIN ") or b"\n-----BEGIN " in data:
        return "pem"  # text before the block, as `openssl x509 -text` writes, is skipped
    if data.startswith(_SSH_PREFIXES):
        return "ssh"
    stripped = data.strip()
    if stripped.startswith(b"{") or _COMPACT_JWE.fullmatch(stripped.decode("latin-1")):
        return "jwk"
    return "der"


def parse_key(data: bytes, name: str, password_file: Path | None = None) -> AnyKey:
    """The key in `data` (file `name`): private, public, or a certificate's public key."""
    kind = input_kind(data)
    if kind == "pem":
        for match in _PEM_BLOCK.finditer(data):
            if match.group(1) != b"EC PARAMETERS":  # `openssl ecparam -genkey` writes these
                key = _pem_key(match.group(1), match.group(0), name, password_file)
                return _supported(key, name)
        raise CLIError(f"error parsing {name}: damaged PEM")
    if kind == "ssh":
        try:
            key = load_ssh_public_key(data.split(b"\n")[0].strip())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CLIError(f"error parsing {name}: {exc}") from None
        return _supported(key, name)
    if kind == "jwk":
        return parse_jwk_text(data, name, password_file)[0]
    return _supported(_der_key(data, name), name)


# --- writing --------------------------------------------------------------------------------


def private_pem(key: PrivateKey, password: bytes | None, pkcs8: bool = False) -> bytes:
    """PEM of a private key: encrypted PKCS#8 with a password; else step's plain forms
    (SEC1 for EC, PKCS#1 for RSA, PKCS#8 for Ed25519 or with `pkcs8`)."""
    if password is not None:
        try:
            return encrypt_private_key_pem(key, password)
        except KeyStoreError as exc:
            raise CLIError(str(exc)) from None
    plain_pkcs8 = pkcs8 or isinstance(key, ed25519.Ed25519PrivateKey)
    fmt = PrivateFormat.PKCS8 if plain_pkcs8 else PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(Encoding.PEM, fmt, NoEncryption())


def public_pem(key: AnyKey) -> bytes:
    """`PUBLIC KEY` PEM (SubjectPublicKeyInfo) of a key or of a private key's public half."""
    return public_of(key).public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
