"""Compact JWS tokens decoded once and verified with a key prepared once.

PyJWT's `decode` splits and base64-decodes a token on every call, checking each character of
every segment in a Python loop (about a third of its cost), and prepares the key each time. A
signing request used to pay that three times (header, unverified claims, verified claims).
Here a token is decoded once (`decode_compact`), with a compiled pattern doing the alphabet
check, and verified by PyJWT's own algorithm objects (`JWSVerifier`) with the key prepared
at start-up; `check_claims` applies PyJWT's registered-claim rules. Every refusal is the one
PyJWT 2.15 makes, with its text: tests/pki/test_jws.py compares the two on the same tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import Algorithm

from pki.jose import JOSEError

# The base64url alphabet, without padding (PyJWT's `_BASE64URL_ALPHABET`).
_ALPHABET = re.compile(rb"[A-Za-z0-9_-]*")
# Text that may hold a lone UTF-16 surrogate once parsed: a literal one (JSON bytes are decoded
# with `surrogatepass`) or a \uD800-\uDFFF escape. Valid pairs match too: it is only a hint.
_SURROGATE_HINT = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
# Extensions PyJWT understands in `crit` (only RFC 7797's b64).
_SUPPORTED_CRIT = frozenset({"b64"})


@dataclass(frozen=True)
class CompactJWS:
    """A compact JWS split and decoded, its signature not yet checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes
    may_hold_surrogates: bool = False
    """True when the header or claims text may carry a lone surrogate (see `_SURROGATE_HINT`)."""


def decode_segment(segment: bytes, name: str) -> bytes:
    """One base64url segment, refused exactly where PyJWT refuses it: more than two `=`,
    padding on a length that is not a multiple of 4, a character outside the alphabet, a
    length of 4n+1, or a non-canonical encoding (unused low bits set)."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or len(stripped) % 4 == 1
        or not _ALPHABET.fullmatch(stripped)
    ):
        raise JOSEError(f"Invalid {name} padding")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except binascii.Error:  # pragma: no cover - the checks above leave nothing to refuse
        raise JOSEError(f"Invalid {name} padding") from None
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise JOSEError(f"Invalid {name} padding")
    return decoded


def _json_object(data: bytes, what: str) -> tuple[dict[str, Any], bool]:
    """`json.loads(data)` (same encoding detection and `surrogatepass`), which must be an
    object; with whether its text may hold a lone surrogate."""
    try:
        text = data.decode(json.detect_encoding(data), "surrogatepass")
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise JOSEError(f"Invalid {what} string: {exc}") from None
    if not isinstance(value, dict):
        raise JOSEError(f"Invalid {what} string: must be a json object")
    return value, _SURROGATE_HINT.search(text) is not None


def _check_header(header: dict[str, Any]) -> None:
    """PyJWS._validate_headers and decode_complete's RFC 7797 rules, with its messages."""
    if "kid" in header and not isinstance(header["kid"], str):
        raise JOSEError("Key ID header parameter must be a string")
    if "crit" in header:
        crit = header["crit"]
        if not isinstance(crit, list) or len(crit) == 0:
            raise JOSEError("Invalid 'crit' header: must be a non-empty list")
        for ext in crit:
            if not isinstance(ext, str):
                raise JOSEError("Invalid 'crit' header: values must be strings")
            if ext not in _SUPPORTED_CRIT:
                raise JOSEError(f"Unsupported critical extension: {ext}")
            if ext not in header:
                raise JOSEError(f"Critical extension '{ext}' is missing from headers")
    if header.get("b64", True) is False:  # a detached payload: a token never has one
        crit = header.get("crit") or []
        if not isinstance(crit, list) or "b64" not in crit:
            raise JOSEError("The 'b64' header parameter requires 'b64' to be listed in 'crit'.")
        raise JOSEError(
            'It is required that you pass in a value for the "detached_payload" argument to '
            "decode a message having the b64 header set to false."
        )


def decode_compact(raw: str | bytes) -> CompactJWS:
    """Split and decode a compact JWS once, in PyJWT's order of checks and with its texts
    (what `jwt.get_unverified_header` then `jwt.decode` without verification refuse)."""
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise JOSEError("Invalid token type: not UTF-8 text") from None
    try:
        signing_input, crypto_segment = raw.rsplit(b".", 1)
        header_segment, payload_segment = signing_input.split(b".", 1)
    except ValueError:
        raise JOSEError("Not enough segments") from None
    header, header_hint = _json_object(decode_segment(header_segment, "header"), "header")
    if header.get("b64", True) is False:
        if payload_segment:
            raise JOSEError("Payload segment must be empty when 'b64' is false.")
        payload = b""
    else:
        payload = decode_segment(payload_segment, "payload")
    signature = decode_segment(crypto_segment, "crypto")
    _check_header(header)
    claims, claims_hint = _json_object(payload, "payload")
    return CompactJWS(header, claims, signing_input, signature, header_hint or claims_hint)


class JWSVerifier:
    """One public key and one JWS algorithm, prepared once by PyJWT's algorithm object."""

    def __init__(self, key: object, alg: str) -> None:
        """Raises JOSEError (PyJWT's text) for an algorithm PyJWT lacks or a key it refuses."""
        try:
            self._algorithm: Algorithm = jwt.get_algorithm_by_name(alg)
            self._key = self._algorithm.prepare_key(key)
        except NotImplementedError:
            raise JOSEError("Algorithm not supported") from None
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise JOSEError(str(exc)) from None
        self.alg = alg

    def verify(self, signing_input: bytes, signature: bytes) -> None:
        """Check a signature (CompactJWS.signing_input, .signature); the caller has already
        required the token's `alg` to be this one."""
        if not self._algorithm.verify(signing_input, self._key, signature):
            raise JOSEError("Signature verification failed")


def _int_claim(claims: dict[str, Any], name: str, message: str) -> int:
    try:
        return int(claims[name])
    except (ValueError, TypeError, OverflowError):
        raise JOSEError(message) from None


def check_claims(
    claims: dict[str, Any], *, leeway: float, require: Iterable[str] = ("exp",)
) -> None:
    """PyJWT's registered-claim checks with `verify_aud` and `verify_iss` off (callers check
    those in step-ca's words): required claims, iat/nbf/exp within `leeway` seconds, `sub` and
    `jti` strings when present."""
    for name in require:
        if claims.get(name) is None:
            raise JOSEError(f'Token is missing the "{name}" claim')
    now = time.time()
    if "iat" in claims:
        iat = _int_claim(claims, "iat", "Issued At claim (iat) must be an integer.")
        if iat > now + leeway:
            raise JOSEError("The token is not yet valid (iat)")
    if "nbf" in claims:
        nbf = _int_claim(claims, "nbf", "Not Before claim (nbf) must be an integer.")
        if nbf > now + leeway:
            raise JOSEError("The token is not yet valid (nbf)")
    if "exp" in claims:
        exp = _int_claim(claims, "exp", "Expiration Time claim (exp) must be an integer.")
        if exp <= now - leeway:
            raise JOSEError("Signature has expired")
    if "sub" in claims and not isinstance(claims["sub"], str):
        raise JOSEError("Subject must be a string")
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise JOSEError("JWT ID must be a string")
