"""The JOSE pieces step-ca and the step CLI rely on: base64url, JWKs and RFC 7638 thumbprints.

PyJWT covers JWS (pki.jws) and jwcrypto converts keys to and from JWKs; this module adds
step's shape on top (member order as go-jose writes it, `kid` defaulting to the thumbprint,
P-256/384/521, RSA and Ed25519 only) and refuses JWKs a strict reader would: coordinates of
the wrong length, a `d` that does not match the public members. PBES2 JWE, how step stores a
provisioner's private key, is in pki.jwe.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto.jwk import JWK  # type: ignore[import-untyped]

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
AnyKey = PublicKey | PrivateKey

# name -> (curve class, coordinate length, JWS alg)
_CURVES: dict[str, tuple[type[ec.EllipticCurve], int, str]] = {
    "P-256": (ec.SECP256R1, 32, "ES256"),
    "P-384": (ec.SECP384R1, 48, "ES384"),
    "P-521": (ec.SECP521R1, 66, "ES512"),
}
_CURVE_NAMES: dict[str, str] = {cls().name: name for name, (cls, _, _) in _CURVES.items()}

# RFC 7638 section 3.2: the members that make up the thumbprint input, per key type.
_THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*={0,2}")


class JOSEError(ValueError):
    """A JOSE object that is malformed, unsupported or fails to decrypt."""


# --------------------------------------------------------------------------------------------
# base64url


def b64url_encode(data: bytes) -> str:
    """base64url without padding, as every JOSE serialisation uses it (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(data: str | bytes) -> bytes:
    """Decode base64url with or without padding; anything else (``+``, ``/``, junk) is refused.

    Raises ValueError so that callers can treat bad encodings like any other bad input.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("invalid base64url: non-ASCII input") from None
    if not isinstance(data, str):
        raise ValueError("invalid base64url: expected a string")
    if not _B64URL_RE.fullmatch(data):
        raise ValueError("invalid base64url: unexpected characters")
    stripped = data.rstrip("=")
    if len(stripped) % 4 == 1 or (len(data) != len(stripped) and len(data) % 4 != 0):
        raise ValueError("invalid base64url: bad length or padding")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except binascii.Error as exc:  # pragma: no cover - the checks above catch these
        raise ValueError(f"invalid base64url: {exc}") from None


def _int_to_b64(value: int, length: int | None = None) -> str:
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


def _b64_to_int(jwk: Mapping[str, Any], member: str) -> int:
    raw = _b64_member(jwk, member)
    if not raw:
        raise JOSEError(f"invalid JWK: {member!r} is empty")
    return int.from_bytes(raw, "big")


def _b64_member(jwk: Mapping[str, Any], member: str) -> bytes:
    value = jwk.get(member)
    if not isinstance(value, str):
        raise JOSEError(f"invalid JWK: {member!r} is missing or not a string")
    try:
        return b64url_decode(value)
    except ValueError:
        raise JOSEError(f"invalid JWK: {member!r} is not base64url") from None


# --------------------------------------------------------------------------------------------
# JWK


def _public_of(key: AnyKey) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        return key
    raise JOSEError(f"unsupported key type {type(key).__name__}")


def _curve_name(curve: ec.EllipticCurve) -> str:
    name = _CURVE_NAMES.get(curve.name)
    if name is None:
        raise JOSEError(f"unsupported elliptic curve {curve.name}")
    return name


LEEWAY_SECONDS = 60
"""Clock skew allowed on a token's nbf, exp and iat (step-ca's one minute)."""


def verification_algorithms(key: object) -> list[str]:
    """The JWS algorithms a public key may have signed a token with."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return [{256: "ES256", 384: "ES384", 521: "ES512"}.get(key.curve.key_size, "ES256")]
    if isinstance(key, rsa.RSAPublicKey):
        return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ["EdDSA"]
    return []


def default_alg(key: AnyKey) -> str:
    """The JWS alg step signs with for this key: ES256/ES384/ES512 by curve, RS256, EdDSA."""
    public = _public_of(key)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _CURVES[_curve_name(public.curve)][2]
    if isinstance(public, rsa.RSAPublicKey):
        return "RS256"
    return "EdDSA"


def _public_members(public: PublicKey) -> dict[str, str]:
    """kty and the key material members, in the order step (go-jose) writes them."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        _curve_name(public.curve)  # P-256/384/521 only
    exported = JWK.from_pyca(public).export(as_dict=True)
    order = ("kty", "crv", "x", "y", "n", "e")
    return {m: exported[m] for m in order if m in exported}


def public_jwk(
    key: AnyKey,
    *,
    kid: str | None = None,
    alg: str | None = None,
    use: str = "sig",
) -> dict[str, str]:
    """The public JWK of `key` (a private key is reduced to its public half).

    Members come in step's order (use, kty, kid, crv, alg, x, y / n, e) so that JSON written
    from it looks like `step crypto jwk create` output. `kid` defaults to the RFC 7638
    thumbprint and `alg` to :func:`default_alg`; pass ``""`` to leave either (or `use`) out.
    """
    material = _public_members(_public_of(key))
    if kid is None:
        kid = thumbprint(material)
    if alg is None:
        alg = default_alg(key)
    out: dict[str, str] = {}
    if use:
        out["use"] = use
    out["kty"] = material["kty"]
    if kid:
        out["kid"] = kid
    if "crv" in material:
        out["crv"] = material["crv"]
    if alg:
        out["alg"] = alg
    for member in ("x", "y", "n", "e"):
        if member in material:
            out[member] = material[member]
    return out


def private_jwk(
    private_key: PrivateKey,
    *,
    kid: str | None = None,
    alg: str | None = None,
    use: str = "sig",
) -> dict[str, str]:
    """The private JWK: :func:`public_jwk` plus ``d`` (and the CRT members for RSA)."""
    private_types = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if not isinstance(private_key, private_types):
        raise JOSEError(f"unsupported private key type {type(private_key).__name__}")
    out = public_jwk(private_key, kid=kid, alg=alg, use=use)
    exported = JWK.from_pyca(private_key).export(as_dict=True)
    for member in ("d", "p", "q", "dp", "dq", "qi"):
        if member in exported:
            out[member] = exported[member]
    return out


def key_from_jwk(jwk: Mapping[str, Any]) -> AnyKey:
    """Load a JWK: the private key when ``d`` is present, else the public key.

    A private JWK whose ``d`` does not match its public members is refused, so a key file
    cannot claim one identity (kid, x/y) while signing as another.
    """
    if not isinstance(jwk, Mapping):
        raise JOSEError("invalid JWK: expected a JSON object")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            return _ec_from_jwk(jwk)
        if kty == "RSA":
            return _rsa_from_jwk(jwk)
        if kty == "OKP":
            return _okp_from_jwk(jwk)
    except JOSEError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise JOSEError(f"invalid {kty} JWK: {exc}") from None
    raise JOSEError(f"unsupported JWK key type {kty!r}")


def _load(members: Mapping[str, Any], names: tuple[str, ...]) -> AnyKey:
    """The key jwcrypto builds from these members: private when ``d`` is among them."""
    key = JWK(**{m: members[m] for m in names if m in members})
    loaded: AnyKey = key.get_op_key("sign" if "d" in members else "verify")
    return loaded


def _ec_from_jwk(members: Mapping[str, Any]) -> AnyKey:
    crv = members.get("crv")
    if not isinstance(crv, str) or crv not in _CURVES:
        raise JOSEError(f"unsupported EC curve {crv!r}")
    size = _CURVES[crv][1]
    for member in ("x", "y", "d") if "d" in members else ("x", "y"):
        if len(_b64_member(members, member)) != size:
            raise JOSEError(f"invalid EC JWK: {member!r} must be {size} bytes for {crv}")
    try:
        return _load(members, ("kty", "crv", "x", "y", "d"))
    except ValueError:
        if "d" in members:  # OpenSSL's key check: the point is not d·G
            raise JOSEError("invalid EC JWK: private key does not match x/y") from None
        raise


def _rsa_from_jwk(members: Mapping[str, Any]) -> AnyKey:
    n, e = _b64_to_int(members, "n"), _b64_to_int(members, "e")
    if "d" not in members or all(m in members for m in ("p", "q", "dp", "dq", "qi")):
        return _load(members, ("kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"))
    # go-jose accepts a private JWK with only d; jwcrypto needs the CRT members, so they are
    # recovered from (n, e, d) as RFC 7518 6.3.2 allows.
    d = _b64_to_int(members, "d")
    p, q = rsa.rsa_recover_prime_factors(n, e, d)
    crt = {
        "p": p, "q": q, "dp": rsa.rsa_crt_dmp1(d, p), "dq": rsa.rsa_crt_dmq1(d, q),
        "qi": rsa.rsa_crt_iqmp(p, q),
    }  # fmt: skip
    full = {**members, **{m: _int_to_b64(v) for m, v in crt.items()}}
    return _load(full, ("kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"))


def _okp_from_jwk(members: Mapping[str, Any]) -> AnyKey:
    if members.get("crv") != "Ed25519":
        raise JOSEError(f"unsupported OKP curve {members.get('crv')!r}")
    x = _b64_member(members, "x")
    if "d" in members:
        _b64_member(members, "d")
    key = _load(members, ("kty", "crv", "x", "d"))
    if isinstance(key, ed25519.Ed25519PrivateKey) and key.public_key().public_bytes_raw() != x:
        raise JOSEError("invalid OKP JWK: private key does not match x")
    return key


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): step's default `kid`.

    Only the required members count, sorted, no whitespace, so any extra members (use, alg,
    kid, d...) leave the thumbprint unchanged and a private JWK has its public key's thumbprint.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise JOSEError(f"cannot compute thumbprint of key type {kty!r}")
    subset: dict[str, str] = {}
    for member in members:
        value = jwk.get(member)
        if not isinstance(value, str):
            raise JOSEError(f"cannot compute thumbprint: {member!r} missing")
        subset[member] = value
    canonical = json.dumps(subset, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())
