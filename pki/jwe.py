"""PBES2 JWE (RFC 7516/7518) as step uses it: a provisioner's private JWK sealed with a
password (`encryptedKey` in ca.json, `*_priv.jwk` files).

jwcrypto does the cryptography and the serialisations; this module adds step's choices (the
header step writes, member order byte-compatible with its files) and the checks a password-
sealed key from an untrusted place needs before the deliberately slow key derivation runs:
an iteration count within bounds, a salt long enough, PBES2 and AES-GCM only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import jwcrypto.jwa  # type: ignore[import-untyped]
from jwcrypto import jwe, jwk
from jwcrypto.common import JWException  # type: ignore[import-untyped]

from pki.jose import JOSEError, b64url_decode, b64url_encode

#: PBES2 iteration bounds on input: below the minimum the password is barely stretched, above
#: the maximum a hostile token could pin a CPU (step's own keys use 100 000 or 600 000).
MIN_P2C = 1000
DEFAULT_MAX_P2C = 1_000_000
DEFAULT_P2C = 600_000

PBES2_HS256_A128KW = "PBES2-HS256+A128KW"
_PBES2_ALGS = frozenset({"PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW"})
_GCM_ENCS = frozenset({"A128GCM", "A192GCM", "A256GCM"})
_MIN_SALT_LEN = 8  # RFC 7518 4.8.1.1

_cap_lock = threading.Lock()


@contextmanager
def pbes2_cap(limit: int) -> Iterator[None]:
    """jwcrypto's PBES2 iteration cap (a process-wide setting, 16 384 by default: below what
    step writes) set to `limit` for the block, one block at a time, then put back."""
    with _cap_lock:
        saved = jwcrypto.jwa.default_max_pbkdf2_iterations
        jwcrypto.jwa.default_max_pbkdf2_iterations = limit
        try:
            yield
        finally:
            jwcrypto.jwa.default_max_pbkdf2_iterations = saved


def _password_key(password: bytes | str) -> Any:
    if isinstance(password, str):
        password = password.encode("utf-8")
    if not isinstance(password, bytes | bytearray | memoryview):
        raise TypeError("password must be bytes or str")
    return jwk.JWK(kty="oct", k=b64url_encode(bytes(password)))


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
    header: dict[str, Any] = {"alg": PBES2_HS256_A128KW}
    if cty:
        header["cty"] = cty
    header.update({"enc": enc, "p2c": p2c, "p2s": b64url_encode(os.urandom(16))})
    # step's member order: the protected header is passed as the exact JSON text to sign.
    token = jwe.JWE(bytes(plaintext), protected=json.dumps(header, separators=(",", ":")))
    with pbes2_cap(p2c):
        token.add_recipient(_password_key(password))
    compact: str = token.serialize(compact=True)
    return compact


def _header(token: Any) -> dict[str, Any]:
    """The one recipient's merged header (protected, unprotected and per-recipient)."""
    unprotected = token.objects.get("unprotected")  # jwcrypto keeps it as JSON text
    if isinstance(unprotected, str):
        unprotected = json.loads(unprotected)
    if unprotected is not None and not isinstance(unprotected, dict):
        raise JOSEError("invalid JWE: unprotected header is not a JSON object")
    header = token.jose_header
    if isinstance(header, list):
        if len(header) != 1:
            raise JOSEError("invalid JWE: exactly one recipient is supported")
        header = header[0]
    if not isinstance(header, dict):
        raise JOSEError("invalid JWE: the header is not a JSON object")
    return header


def _check_header(header: Mapping[str, Any], max_p2c: int) -> None:
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
    p2s = header.get("p2s")
    try:
        salt = b64url_decode(p2s) if isinstance(p2s, str) else b""
    except ValueError:
        raise JOSEError("invalid JWE: p2s is not base64url") from None
    if len(salt) < _MIN_SALT_LEN:
        raise JOSEError(f"invalid JWE: p2s must be at least {_MIN_SALT_LEN} bytes")


def decrypt_pbes2(
    token: str | bytes,
    password: bytes | str,
    *,
    max_p2c: int = DEFAULT_MAX_P2C,
) -> bytes:
    """Decrypt a PBES2 + AES-GCM JWE (compact or JSON form), e.g. a provisioner encryptedKey.

    The header is checked before the key derivation, and the iteration count is capped by
    `max_p2c`, so a crafted token cannot burn minutes of CPU. Every failure, however odd the
    input, is a JOSEError.
    """
    if isinstance(token, bytes):
        try:
            token = token.decode("utf-8")
        except UnicodeDecodeError:
            raise JOSEError("invalid JWE: not UTF-8") from None
    if not isinstance(token, str):
        raise JOSEError("invalid JWE: expected a string")
    key = _password_key(password)
    sealed = jwe.JWE()
    try:
        sealed.deserialize(token.strip())
        _check_header(_header(sealed), max_p2c)
        with pbes2_cap(max_p2c):
            sealed.decrypt(key)
    except JOSEError:
        raise
    except (JWException, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        failures = " ".join(str(line) for line in getattr(sealed, "decryptlog", None) or [])
        if "InvalidTag" in failures:
            raise JOSEError(
                "failed to decrypt JWE: authentication failed (data tampered?)"
            ) from None
        if "InvalidUnwrap" in failures:
            raise JOSEError("failed to decrypt JWE: wrong password?") from None
        raise JOSEError(
            f"invalid JWE: {str(exc).split('[')[0].strip() or type(exc).__name__}"
        ) from None
    payload: bytes = sealed.payload
    return payload


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
