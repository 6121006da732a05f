"""The key files of `step ca provisioner add|update`: JWK public and private keys, X5C roots.

Reading them is where step's file formats live (PEM, plain or encrypted JWK, flattened JWE),
and where the password for a new encrypted key is asked for.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    load_pem_private_key,
    load_pem_public_key,
)
from cryptography.x509.oid import NameOID

from cli.ca import ui
from cli.common import CLIError, prompt_password, read_password_file
from pki.certs import parse_certificates
from pki.jose import JOSEError, key_from_jwk, public_jwk, thumbprint
from pki.jwe import decrypt_jwk, encrypt_jwk
from provisioners.x5c import encode_roots

PASSWORD_PROMPT = (
    "Please enter a password to encrypt the provisioner private key? "
    "[leave empty and we'll generate one]"
)


def new_password(password_file: Path | None) -> bytes:
    """The password for a new encrypted key: the file, or a prompt (empty: we generate one)."""
    if password_file is not None:
        password = read_password_file(password_file)
        if not password:
            raise CLIError(f"the password in {password_file} is empty")
        return password
    if not sys.stdin.isatty():
        raise CLIError("a password is needed to encrypt the provisioner key: use '--password-file'")
    entered = prompt_password(PASSWORD_PROMPT)
    if not entered:
        generated = secrets.token_urlsafe(24)
        ui.selected("Password", generated)
        return generated.encode()
    return entered


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CLIError(f"error reading {path}: {exc.strerror}") from None


def _key_of_pem(data: bytes, path: Path) -> Any:
    if b"CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    if b"PUBLIC KEY-----" in data:
        return load_pem_public_key(data)
    if b"PRIVATE KEY-----" in data:
        if b"ENCRYPTED" in data:
            raise CLIError(f"{path} is an encrypted private key: use a public key")
        return load_pem_private_key(data, None).public_key()
    raise CLIError(f"{path} does not contain a key")


def read_public_jwk(path: Path, password_file: Path | None) -> dict[str, Any]:
    """A provisioner's public key from a JWK (plain or encrypted) or PEM file."""
    data = _read(path)
    text = data.decode("utf-8", errors="replace").strip()
    try:
        if text.startswith("-----BEGIN"):
            key = _key_of_pem(data, path)
            jwk: dict[str, Any] = {}
        else:
            jwk = json.loads(text) if text.startswith("{") else {}
            if _is_jwe(jwk) or (not jwk and text.count(".") == 4):
                password = (
                    read_password_file(password_file)
                    if password_file
                    else prompt_password(f"Please enter the password to decrypt {path}")
                )
                jwk = decrypt_jwk(text, password)
            if not isinstance(jwk, dict) or not jwk:
                raise CLIError(f"error reading {path}: not a JWK")
            if jwk.get("kty") == "oct":
                raise CLIError("invalid JWK: a symmetric key cannot be used as a provisioner")
            key = key_from_jwk(jwk)
    except (ValueError, TypeError, KeyError, JOSEError) as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if not isinstance(key, _KEY_TYPES):
        raise CLIError(f"error reading {path}: unsupported key type")
    kid, alg, use = jwk.get("kid"), jwk.get("alg"), jwk.get("use")
    return public_jwk(
        key,
        kid=kid if isinstance(kid, str) and kid else None,
        alg=alg if isinstance(alg, str) and alg else None,
        use=use if isinstance(use, str) else "sig",
    )


_KEY_TYPES = (
    ec.EllipticCurvePublicKey,
    ec.EllipticCurvePrivateKey,
    rsa.RSAPublicKey,
    rsa.RSAPrivateKey,
    ed25519.Ed25519PublicKey,
    ed25519.Ed25519PrivateKey,
)


def _is_jwe(obj: Any) -> bool:
    return isinstance(obj, dict) and "ciphertext" in obj and "protected" in obj


def _compact_jwe(obj: dict[str, Any], path: Path) -> str:
    """A flattened JSON JWE (step's `.jwk` files) in the compact form ca.json uses."""
    if "recipients" in obj:
        recipients = obj["recipients"]
        if not isinstance(recipients, list) or len(recipients) != 1:
            raise CLIError(f"error reading {path}: a JWE with one recipient is required")
        obj = {**obj, **recipients[0]}
    if obj.get("unprotected") or obj.get("header") or obj.get("aad"):
        raise CLIError(f"error reading {path}: the JWE cannot be written in compact form")
    parts = [obj.get(k) for k in ("protected", "encrypted_key", "iv", "ciphertext", "tag")]
    if not all(isinstance(p, str) and p for p in parts):
        raise CLIError(f"error reading {path}: invalid JWE")
    return ".".join(str(p) for p in parts)


def read_private_key(path: Path, public: dict[str, Any], password_file: Path | None) -> str:
    """The `encryptedKey` for `--private-key`: a JWE kept as it is, or a plain private JWK
    encrypted with the password (file, or a prompt)."""
    text = _read(path).decode("utf-8", errors="replace").strip()
    if not text.startswith("{"):
        if text.count(".") != 4:
            raise CLIError(f"error reading {path}: not a JWE or a JWK")
        return text
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if _is_jwe(obj):
        return _compact_jwe(obj, path)
    if not isinstance(obj, dict) or "d" not in obj:
        raise CLIError("invalid jwk: private-key is a public key")
    try:
        key = key_from_jwk(obj)
    except (ValueError, TypeError, KeyError, JOSEError) as exc:
        raise CLIError(f"error reading {path}: {exc}") from None
    if thumbprint(public_jwk(key)) != thumbprint(public):
        raise CLIError(f"the private key {path} does not match the public key")
    private = dict(obj)
    private.setdefault("kid", public["kid"])
    return encrypt_jwk(private, new_password(password_file))


def read_attestation_roots(path: Path) -> str:
    """ACME's `attestationRoots` value: the certificates of a PEM (or DER) file, as X5C's."""
    try:
        certs = parse_certificates(_read(path))
    except ValueError:
        raise CLIError(f"error loading attestation root certificates from {path}") from None
    return encode_roots(b"".join(cert.public_bytes(Encoding.PEM) for cert in certs))


def read_x5c_roots(path: Path) -> str:
    """The `roots` value: the certificates of a PEM (or DER) file, each able to sign."""
    data = _read(path)
    try:
        certs = parse_certificates(data)
    except ValueError:
        raise CLIError(f"error loading X5C Root certificates from {path}") from None
    pem = b""
    for cert in certs:
        try:
            signs = cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        except x509.ExtensionNotFound:
            signs = False
        if not signs:
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = str(cns[0].value) if cns else ""
            raise CLIError(
                f"certificate with common name '{cn}' cannot be used as an X5C root "
                "certificate: X5C provisioner root certificates must have the 'Certificate "
                "Sign' key usage extension"
            )
        pem += cert.public_bytes(Encoding.PEM)
    return encode_roots(pem)
