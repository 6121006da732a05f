"""PBES2 JWE (RFC 7516/7518) as step uses it: a provisioner's private JWK sealed with a
password (`encryptedKey` in ca.json), built on `cryptography` primitives because PyJWT has
no JWE and step's files must be read and written byte-compatibly."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from pki.jose import JOSEError, b64url_decode, b64url_encode

#: PBES2 iteration bounds on input: below the minimum the password is barely stretched, above
#: the maximum a hostile token could pin a CPU (step's own keys use 100 000 or 600 000).
MIN_P2C = 1000
DEFAULT_MAX_P2C = 1_000_000
DEFAULT_P2C = 600_000

PBES2_HS256_A128KW = "PBES2-HS256+A128KW"

# alg -> (PRF hash, key-encryption-key length)
_PBES2_ALGS: dict[str, tuple[type[hashes.HashAlgorithm], int]] = {
    "PBES2-HS256+A128KW": (hashes.SHA256, 16),
    "PBES2-HS384+A192KW": (hashes.SHA384, 24),
    "PBES2-HS512+A256KW": (hashes.SHA512, 32),
}
# enc -> content-encryption-key length
_GCM_ENCS: dict[str, int] = {"A128GCM": 16, "A192GCM": 24, "A256GCM": 32}
_GCM_IV_LEN = 12
_GCM_TAG_LEN = 16
_MIN_SALT_LEN = 8  # RFC 7518 4.8.1.1


# --------------------------------------------------------------------------------------------
# PBES2 JWE


def _password_bytes(password: bytes | str) -> bytes:
    if isinstance(password, str):
        return password.encode("utf-8")
    if isinstance(password, bytes | bytearray | memoryview):
        return bytes(password)
    raise TypeError("password must be bytes or str")


def _derive_kek(alg: str, password: bytes, p2s: bytes, p2c: int) -> bytes:
    """PBKDF2 per RFC 7518 4.8: the salt is the alg name, a NUL, then the p2s salt input."""
    hash_cls, length = _PBES2_ALGS[alg]
    kdf = PBKDF2HMAC(
        algorithm=hash_cls(),
        length=length,
        salt=alg.encode("ascii") + b"\0" + p2s,
        iterations=p2c,
    )
    return kdf.derive(password)


def encrypt_pbes2(
    plaintext: bytes,
    password: bytes | str,
    *,
    p2c: int = DEFAULT_P2C,
    enc: str = "A256GCM",
    cty: str | None = "jwk+json",
) -> str:
    """Encrypt to a compact JWE with PBES2-HS256+A128KW, as `step crypto jwk create` does.

    The defaults match keys made by current step (A256GCM, 600 000 iterations, cty jwk+json).
    """
    if enc not in _GCM_ENCS:
        raise JOSEError(f"unsupported content encryption {enc!r}")
    if isinstance(p2c, bool) or not isinstance(p2c, int) or p2c < MIN_P2C:
        raise JOSEError(f"p2c must be an integer of at least {MIN_P2C}")
    alg = PBES2_HS256_A128KW
    p2s = os.urandom(16)
    header: dict[str, Any] = {"alg": alg}
    if cty:
        header["cty"] = cty
    header.update({"enc": enc, "p2c": p2c, "p2s": b64url_encode(p2s)})
    protected = b64url_encode(json.dumps(header, separators=(",", ":")).encode("utf-8"))

    kek = _derive_kek(alg, _password_bytes(password), p2s, p2c)
    cek = os.urandom(_GCM_ENCS[enc])
    encrypted_key = aes_key_wrap(kek, cek)
    iv = os.urandom(_GCM_IV_LEN)
    sealed = AESGCM(cek).encrypt(iv, bytes(plaintext), protected.encode("ascii"))
    ciphertext, tag = sealed[:-_GCM_TAG_LEN], sealed[-_GCM_TAG_LEN:]
    return ".".join(
        [
            protected,
            b64url_encode(encrypted_key),
            b64url_encode(iv),
            b64url_encode(ciphertext),
            b64url_encode(tag),
        ]
    )


def _decode_part(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise JOSEError(f"invalid JWE: {what} is missing or not a string")
    try:
        return b64url_decode(value)
    except ValueError:
        raise JOSEError(f"invalid JWE: {what} is not base64url") from None


def _parse_protected(segment: str) -> dict[str, Any]:
    raw = _decode_part(segment, "protected header")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise JOSEError("invalid JWE: protected header is not JSON") from None
    if not isinstance(header, dict):
        raise JOSEError("invalid JWE: protected header is not a JSON object")
    return header


def _split_jwe(token: str) -> tuple[str, dict[str, Any], str, str, str, str, str | None]:
    """(protected segment, merged header, encrypted_key, iv, ciphertext, tag, aad) of a JWE.

    Accepts the compact form and the JSON forms (flattened, or general with one recipient),
    since step writes `.jwk` files in the flattened form.
    """
    text = token.strip()
    if not text.startswith("{"):
        parts = text.split(".")
        if len(parts) != 5:
            raise JOSEError("invalid JWE: compact serialisation needs 5 parts")
        protected, encrypted_key, iv, ciphertext, tag = parts
        return protected, _parse_protected(protected), encrypted_key, iv, ciphertext, tag, None

    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise JOSEError("invalid JWE: not JSON") from None
    if not isinstance(obj, dict):
        raise JOSEError("invalid JWE: expected a JSON object")
    recipient: Any = obj
    if "recipients" in obj:
        recipients = obj["recipients"]
        if not isinstance(recipients, list) or len(recipients) != 1:
            raise JOSEError("invalid JWE: exactly one recipient is supported")
        recipient = recipients[0]
        if not isinstance(recipient, dict):
            raise JOSEError("invalid JWE: recipient is not a JSON object")
    protected = obj.get("protected", "")
    if not isinstance(protected, str):
        raise JOSEError("invalid JWE: protected header is not a string")
    header = _parse_protected(protected) if protected else {}
    for extra in (obj.get("unprotected"), recipient.get("header")):
        if extra is None:
            continue
        if not isinstance(extra, dict):
            raise JOSEError("invalid JWE: unprotected header is not a JSON object")
        if set(extra) & set(header):
            raise JOSEError("invalid JWE: duplicate header parameters")
        header.update(extra)
    aad = obj.get("aad")
    if aad is not None and not isinstance(aad, str):
        raise JOSEError("invalid JWE: aad is not a string")
    fields = []
    for name in ("iv", "ciphertext", "tag"):
        value = obj.get(name)
        if not isinstance(value, str):
            raise JOSEError(f"invalid JWE: {name} is missing")
        fields.append(value)
    encrypted_key = recipient.get("encrypted_key")
    if not isinstance(encrypted_key, str):
        raise JOSEError("invalid JWE: encrypted_key is missing")
    return protected, header, encrypted_key, fields[0], fields[1], fields[2], aad


def decrypt_pbes2(
    token: str | bytes,
    password: bytes | str,
    *,
    max_p2c: int = DEFAULT_MAX_P2C,
) -> bytes:
    """Decrypt a PBES2 + AES-GCM JWE (compact or JSON form), e.g. a provisioner encryptedKey.

    Every header check runs before the (deliberately slow) key derivation, and the iteration
    count is capped by `max_p2c` so a crafted token cannot burn minutes of CPU. Every failure,
    however odd the input, is a JOSEError.
    """
    if isinstance(token, bytes):
        try:
            token = token.decode("utf-8")
        except UnicodeDecodeError:
            raise JOSEError("invalid JWE: not UTF-8") from None
    if not isinstance(token, str):
        raise JOSEError("invalid JWE: expected a string")
    protected, header, ek_b64, iv_b64, ct_b64, tag_b64, aad_b64 = _split_jwe(token)

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in _PBES2_ALGS:
        raise JOSEError(f"unsupported JWE key management algorithm {alg!r}")
    enc = header.get("enc")
    if not isinstance(enc, str) or enc not in _GCM_ENCS:
        raise JOSEError(f"unsupported JWE content encryption {enc!r}")
    if "zip" in header:
        raise JOSEError("unsupported JWE: compressed payloads are not accepted")
    if "crit" in header:
        raise JOSEError("unsupported JWE: critical header parameters are not understood")
    p2c = header.get("p2c")
    if isinstance(p2c, bool) or not isinstance(p2c, int):
        raise JOSEError("invalid JWE: p2c must be an integer")
    if p2c < MIN_P2C:
        raise JOSEError(f"invalid JWE: p2c {p2c} is below the minimum of {MIN_P2C}")
    if p2c > max_p2c:
        raise JOSEError(f"invalid JWE: p2c {p2c} exceeds the maximum of {max_p2c}")
    p2s = _decode_part(header.get("p2s"), "p2s")
    if len(p2s) < _MIN_SALT_LEN:
        raise JOSEError(f"invalid JWE: p2s must be at least {_MIN_SALT_LEN} bytes")

    cek_len = _GCM_ENCS[enc]
    encrypted_key = _decode_part(ek_b64, "encrypted_key")
    iv = _decode_part(iv_b64, "iv")
    ciphertext = _decode_part(ct_b64, "ciphertext")
    tag = _decode_part(tag_b64, "tag")
    if len(encrypted_key) != cek_len + 8:
        raise JOSEError(f"invalid JWE: encrypted_key must be {cek_len + 8} bytes for {enc}")
    if len(iv) != _GCM_IV_LEN:
        raise JOSEError(f"invalid JWE: iv must be {_GCM_IV_LEN} bytes")
    if len(tag) != _GCM_TAG_LEN:
        raise JOSEError(f"invalid JWE: tag must be {_GCM_TAG_LEN} bytes")
    aad = protected.encode("ascii")
    if aad_b64 is not None:
        _decode_part(aad_b64, "aad")
        aad += b"." + aad_b64.encode("ascii")

    kek = _derive_kek(alg, _password_bytes(password), p2s, p2c)
    try:
        cek = aes_key_unwrap(kek, encrypted_key)
    except InvalidUnwrap:
        raise JOSEError("failed to decrypt JWE: wrong password?") from None
    try:
        return AESGCM(cek).decrypt(iv, ciphertext + tag, aad)
    except InvalidTag:
        raise JOSEError("failed to decrypt JWE: authentication failed (data tampered?)") from None


def encrypt_jwk(
    jwk: Mapping[str, Any],
    password: bytes | str,
    *,
    p2c: int = DEFAULT_P2C,
    enc: str = "A256GCM",
) -> str:
    """A provisioner `encryptedKey`: the private JWK's JSON sealed with :func:`encrypt_pbes2`."""
    payload = json.dumps(dict(jwk), separators=(",", ":")).encode("utf-8")
    return encrypt_pbes2(payload, password, p2c=p2c, enc=enc, cty="jwk+json")


def decrypt_jwk(
    token: str | bytes,
    password: bytes | str,
    *,
    max_p2c: int = DEFAULT_MAX_P2C,
) -> dict[str, Any]:
    """Open an `encryptedKey` (or a `*_priv.jwk` file) and return the private JWK as a dict."""
    plaintext = decrypt_pbes2(token, password, max_p2c=max_p2c)
    try:
        jwk = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise JOSEError("decrypted JWE payload is not a JSON JWK") from None
    if not isinstance(jwk, dict):
        raise JOSEError("decrypted JWE payload is not a JSON object")
    return jwk
