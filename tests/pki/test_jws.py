"""Compact JWS decoded once (pki.jws), checked against PyJWT 2.15 itself as the oracle: the same
tokens must be accepted with the same header and claims, or refused with the same text."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import hypothesis.strategies as st
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from jwt.api_jws import PyJWS

from pki.jose import LEEWAY_SECONDS, JOSEError
from pki.jws import JWSVerifier, check_claims, decode_compact, decode_segment

_KEY = ec.generate_private_key(ec.SECP256R1())
_OPTIONS: dict[str, Any] = {"verify_aud": False, "verify_iss": False, "require": ["exp"]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: object, payload: bytes | str, signature: bytes = b"sig") -> str:
    if isinstance(payload, str):
        payload = payload.encode()
    return ".".join([_b64(json.dumps(header).encode()), _b64(payload), _b64(signature)])


def _token(**claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"iss": "p", "sub": "s", "iat": now, "nbf": now, "exp": now + 300}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, _KEY, algorithm="ES256")


# The oracles: what PyJWT answers for the same input.


def _pyjwt_segment(segment: bytes) -> tuple[str, Any]:
    try:
        return "ok", PyJWS._decode_base64url_segment(segment, "header")
    except jwt.PyJWTError as exc:
        return "refused", str(exc)


def _our_segment(segment: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode_segment(segment, "header")
    except JOSEError as exc:
        return "refused", str(exc)


def _pyjwt_parse(raw: str) -> tuple[str, str]:
    """What parse_token did: the unverified header, then the unverified claims."""
    try:
        header = jwt.get_unverified_header(raw)
        claims = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        return "refused", str(exc)
    return "ok", repr((header, claims))  # repr: NaN claims compare equal


def _our_parse(raw: str) -> tuple[str, str]:
    try:
        jws = decode_compact(raw)
    except JOSEError as exc:
        return "refused", str(exc)
    return "ok", repr((jws.header, jws.claims))


def _pyjwt_verify(raw: str, key: Any = _KEY, alg: str = "ES256") -> tuple[str, str]:
    try:
        claims = jwt.decode(
            raw, key.public_key(), algorithms=[alg], leeway=LEEWAY_SECONDS, options=_OPTIONS
        )
    except jwt.PyJWTError as exc:
        return "refused", str(exc)
    return "ok", repr(claims)


def _our_verify(raw: str, key: Any = _KEY, alg: str = "ES256") -> tuple[str, str]:
    try:
        jws = decode_compact(raw)
        JWSVerifier(key.public_key(), alg).verify(jws.signing_input, jws.signature)
        check_claims(jws.claims, leeway=LEEWAY_SECONDS)
    except JOSEError as exc:
        return "refused", str(exc)
    return "ok", repr(jws.claims)


# --------------------------------------------------------------------------------------------
# segments


@pytest.mark.parametrize(
    ("segment", "decoded"),
    [
        (b"", b""),
        (b"QQ", b"A"),
        (b"QQ==", b"A"),
        (b"QUI", b"AB"),
        (b"QUI=", b"AB"),
        (b"_-8", b"\xff\xef"),
    ],
)
def test_segments_decode_with_or_without_padding(segment: bytes, decoded: bytes) -> None:
    assert decode_segment(segment, "header") == decoded
    assert _pyjwt_segment(segment) == ("ok", decoded)


@pytest.mark.parametrize(
    "segment",
    [
        b"!!!!",  # GHSA-hxm8-2xgr-2p9m: junk that a lenient decoder would drop
        b"ab+c",
        b"ab/c",
        b"QQ\n",
        b"Q Q=",
        b"\xc3\xa9QQ",
        b"Q",  # 4n+1 characters
        b"QUJDR",
        b"QR",  # non-canonical: unused low bits set
        b"QUJ",
        b"QQ=",  # padding on a length that is not a multiple of 4
        b"QQ===",
        b"Q===",
        b"====",
        b"Q=Q=",
    ],
)
def test_segments_refused_like_pyjwt(segment: bytes) -> None:
    with pytest.raises(JOSEError, match=r"^Invalid header padding$"):
        decode_segment(segment, "header")
    assert _pyjwt_segment(segment) == ("refused", "Invalid header padding")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=12) | st.text("AQab09-_=+/.!é \n", max_size=12).map(str.encode))
def test_any_segment_is_treated_like_pyjwt(segment: bytes) -> None:
    assert _our_segment(segment) == _pyjwt_segment(segment)


# --------------------------------------------------------------------------------------------
# whole tokens, unverified


@pytest.mark.parametrize(
    "raw",
    [
        _token(),
        "garbage",
        "a.b",
        "",
        "..",
        _token() + ".extra",
        _compact([1], "{}"),
        _compact({"alg": "ES256"}, "[1]"),
        _compact({"alg": "ES256"}, "{nope"),
        _compact({"alg": "ES256"}, '"text"'),
        _compact({"alg": "ES256"}, b"\xff\xfe{\x00}\x00"),  # UTF-16 JSON, as json.loads reads it
        _compact({"alg": "ES256"}, b"\xff{}"),
        _compact({"alg": "ES256"}, "[" * 100_000 + "]" * 100_000),
        _compact({"alg": "ES256", "kid": 7}, "{}"),
        _compact({"alg": "ES256", "crit": []}, "{}"),
        _compact({"alg": "ES256", "crit": "b64"}, "{}"),
        _compact({"alg": "ES256", "crit": [1]}, "{}"),
        _compact({"alg": "ES256", "crit": ["exp"]}, "{}"),
        _compact({"alg": "ES256", "crit": ["b64"]}, "{}"),
        _compact({"alg": "ES256", "b64": False}, ""),
        _compact({"alg": "ES256", "b64": False}, "{}"),
        _compact({"alg": "ES256", "b64": False, "crit": ["b64"]}, ""),
        _compact({"alg": "ES256", "b64": True, "crit": ["b64"]}, "{}"),
        _compact({"alg": "ES256"}, '{"sub":"\\ud800","n":NaN,"i":Infinity}'),
    ],
)
def test_tokens_parse_or_fail_like_pyjwt(raw: str) -> None:
    assert _our_parse(raw) == _pyjwt_parse(raw)


def test_the_signing_input_and_signature_are_kept() -> None:
    raw = _token()
    jws = decode_compact(raw)
    head, payload, signature = raw.split(".")
    assert jws.signing_input == f"{head}.{payload}".encode()
    assert jws.signature == base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    assert jws.header == {"alg": "ES256", "typ": "JWT"} and jws.claims["iss"] == "p"


def test_text_that_cannot_be_utf8_is_refused() -> None:
    with pytest.raises(JOSEError):
        decode_compact(_token() + "\ud800")


@pytest.mark.parametrize(
    ("claims", "hint"),
    [
        ('{"sub":"plain"}', False),
        ('{"sub":"\\ud800"}', True),
        ('{"sub":"\\uDFFF"}', True),
        ('{"sub":"\\ud83d\\ude00"}', True),  # a valid pair: only a hint, parse_token decides
        ('{"sub":"\\u00e9"}', False),
    ],
)
def test_surrogate_hint(claims: str, hint: bool) -> None:
    assert decode_compact(_compact({"alg": "ES256"}, claims)).may_hold_surrogates is hint


_ALPHABET = "ABCabc0189-_.=+/!é{}"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_tokens_parse_like_pyjwt(data: st.DataObject) -> None:
    raw = _token(sub="a" * data.draw(st.integers(0, 5)))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw)))
        char = data.draw(st.sampled_from(_ALPHABET))
        mode = data.draw(st.sampled_from(["insert", "replace", "delete"]))
        if mode == "insert":
            raw = raw[:pos] + char + raw[pos:]
        elif mode == "replace":
            raw = raw[:pos] + char + raw[pos + 1 :]
        else:
            raw = raw[:pos] + raw[pos + 1 :]
    assert _our_parse(raw) == _pyjwt_parse(raw)


# --------------------------------------------------------------------------------------------
# verified tokens


class _Offset(int):
    """A time claim as seconds from the moment the token is made (see `_at_now`)."""


# Offsets away from every leeway boundary, so the two checks agree whatever the clock does.
_TIMES = st.sampled_from([-100_000, -120, -30, 0, 30, 120, 100_000]).map(_Offset)
_ODD = st.none() | st.booleans() | st.text(max_size=3) | st.lists(st.integers(), max_size=2)
_TIME_VALUES = (
    _TIMES | _TIMES.map(lambda d: (d, float)) | _ODD | st.just(10**30) | st.just(float("inf"))
)


def _at_now(value: Any) -> Any:
    now = int(time.time())
    if isinstance(value, _Offset):
        return now + value
    if isinstance(value, tuple):
        return float(now + value[0])
    return value


@settings(max_examples=300, deadline=None)
@given(
    iat=_TIME_VALUES,
    nbf=_TIME_VALUES,
    exp=_TIME_VALUES,
    sub=st.text(max_size=3) | _ODD | st.integers(),
    jti=st.text(max_size=3) | _ODD | st.integers(),
)
def test_claims_are_checked_like_pyjwt(iat: Any, nbf: Any, exp: Any, sub: Any, jti: Any) -> None:
    raw = _token(iat=_at_now(iat), nbf=_at_now(nbf), exp=_at_now(exp), sub=sub, jti=jti)
    assert _our_verify(raw) == _pyjwt_verify(raw)


def test_time_claims_have_the_leeway() -> None:
    now = int(time.time())
    assert _our_verify(_token(exp=now - 30))[0] == "ok"
    assert _our_verify(_token(exp=now - 120)) == ("refused", "Signature has expired")
    assert _our_verify(_token(nbf=now + 120)) == ("refused", "The token is not yet valid (nbf)")
    assert _our_verify(_token(iat=now + 120)) == ("refused", "The token is not yet valid (iat)")
    assert _our_verify(_token(exp=None)) == ("refused", 'Token is missing the "exp" claim')


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "PS256"),
    ],
)
def test_signatures_verify_like_pyjwt(key: Any, alg: str) -> None:
    raw = jwt.encode({"sub": "s", "exp": int(time.time()) + 300}, key, algorithm=alg)
    assert _our_verify(raw, key, alg) == _pyjwt_verify(raw, key, alg)
    assert _our_verify(raw, key, alg)[0] == "ok"
    head, payload, signature = raw.split(".")
    sig = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    for forged in (bytes([sig[0] ^ 1]) + bytes(sig[1:]), bytes(sig[:-1]), b""):
        tampered = f"{head}.{payload}.{_b64(forged)}"
        assert _our_verify(tampered, key, alg) == ("refused", "Signature verification failed")
        assert _pyjwt_verify(tampered, key, alg) == _our_verify(tampered, key, alg)
    other = jwt.encode({"sub": "s", "exp": int(time.time()) + 300}, _KEY, algorithm="ES256")
    assert _our_verify(other, key, alg) == ("refused", "Signature verification failed")


@pytest.mark.parametrize(
    ("alg", "message"),
    [
        ("XX999", "Algorithm not supported"),
        ("ES384", "The key's curve 'secp256r1' does not match the expected curve 'secp384r1'"),
        ("RS256", "Expecting a PEM-formatted key."),
    ],
)
def test_a_key_pyjwt_refuses_for_the_algorithm(alg: str, message: str) -> None:
    with pytest.raises(JOSEError) as err:
        JWSVerifier(_KEY.public_key(), alg)
    assert str(err.value).startswith(message)
