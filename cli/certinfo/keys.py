"""SubjectPublicKeyInfo parsing and signature checks with the `cryptography` package."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from cli.certinfo.algorithms import (
    HASHES,
    UNKNOWN_ALGORITHM_NAMES,
    AlgorithmIdentifier,
    parse_algorithm,
    signature_scheme,
)
from cli.certinfo.der import (
    TAG_BIT_STRING,
    TAG_INTEGER,
    TAG_OID,
    TAG_SEQUENCE,
    CertParseError,
    Element,
    children,
    decode_bit_string,
    decode_integer,
    decode_oid,
    expect,
    parse_one,
)

_OID_KEY_RSA = "1.2.840.113549.1.1.1"
_OID_KEY_EC = "1.2.840.10045.2.1"
_OID_KEY_DSA = "1.2.840.10040.4.1"
_OID_KEY_ED25519 = "1.3.101.112"
_CURVES = {
    "1.3.132.0.33": ("P-224", 224),
    "1.2.840.10045.3.1.7": ("P-256", 256),
    "1.3.132.0.34": ("P-384", 384),
    "1.3.132.0.35": ("P-521", 521),
}


@dataclass(frozen=True)
class DSAKey:
    """A DSA public key's numbers, read from the SPKI DER by our own parser.

    cryptography deprecates DSA and warns on any use of its `dsa` module or on loading a DSA
    key, so a DSA key is loaded by cryptography only to check a DSA signature.
    """

    p: int
    q: int
    g: int
    y: int
    spki: bytes


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | DSAKey


@dataclass(frozen=True)
class PublicKeyInfo:
    """A SubjectPublicKeyInfo; `algorithm` is Go's name ('' when Go does not know it)."""

    raw: bytes
    algorithm_oid: str
    algorithm: str
    key: PublicKey | None
    curve: str
    curve_bits: int
    key_bytes: bytes

    @property
    def display_algorithm(self) -> str:
        if self.algorithm:
            return self.algorithm
        return UNKNOWN_ALGORITHM_NAMES.get(self.algorithm_oid, self.algorithm_oid)

    def short_label(self) -> str:
        """certinfo's `getPublicKeyAlgorithm`: "ECDSA P-256", "RSA 2048", "Ed25519 256"."""
        key = self.key
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"ECDSA {self.curve}"
        if isinstance(key, rsa.RSAPublicKey):
            return f"RSA {(key.key_size + 7) // 8 * 8}"
        if isinstance(key, DSAKey):
            return f"DSA {key.q.bit_length()}"
        if isinstance(key, ed25519.Ed25519PublicKey):
            return f"Ed25519 {len(self.key_bytes) * 8}"
        return self.display_algorithm


def parse_public_key(element: Element) -> PublicKeyInfo:
    """Go's crypto/x509 rules: known algorithms must parse, unknown ones are kept raw."""
    parts = children(expect(element, TAG_SEQUENCE, "SubjectPublicKeyInfo"))
    if len(parts) != 2:
        raise CertParseError("x509: malformed subject public key info")
    algorithm = parse_algorithm(parts[0])
    key_bytes, bits = decode_bit_string(expect(parts[1], TAG_BIT_STRING, "public key").content)
    if bits % 8:
        raise CertParseError("x509: invalid public key bit string")
    oid = algorithm.oid
    if oid not in (_OID_KEY_RSA, _OID_KEY_EC, _OID_KEY_DSA, _OID_KEY_ED25519):
        return PublicKeyInfo(element.raw, oid, "", None, "", 0, key_bytes)
    curve, curve_bits = "", 0
    if oid == _OID_KEY_EC:
        try:
            curve_oid = decode_oid(
                expect(parse_one(algorithm.parameters or b""), TAG_OID, "").content
            )
        except CertParseError:
            raise CertParseError("x509: invalid ECDSA parameters") from None
        if curve_oid not in _CURVES:
            raise CertParseError("x509: unsupported elliptic curve")
        curve, curve_bits = _CURVES[curve_oid]
    if oid == _OID_KEY_ED25519 and len(key_bytes) != 32:
        raise CertParseError("x509: wrong Ed25519 public key size")
    key: PublicKey
    if oid == _OID_KEY_DSA:
        key = _parse_dsa(element.raw, algorithm.parameters, key_bytes)
    else:
        try:
            loaded = serialization.load_der_public_key(element.raw)
        except (ValueError, UnsupportedAlgorithm):
            raise CertParseError("x509: failed to parse public key") from None
        if not isinstance(
            loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
        ):
            raise CertParseError("x509: unsupported public key")
        key = loaded
    name = {
        _OID_KEY_RSA: "RSA",
        _OID_KEY_EC: "ECDSA",
        _OID_KEY_DSA: "DSA",
        _OID_KEY_ED25519: "Ed25519",
    }[oid]
    return PublicKeyInfo(element.raw, oid, name, key, curve, curve_bits, key_bytes)


def _parse_dsa(spki: bytes, parameters: bytes | None, key_bytes: bytes) -> DSAKey:
    """Go's DSA rules: y an INTEGER, parameters SEQUENCE {p, q, g}, all positive."""
    try:
        y = decode_integer(expect(parse_one(key_bytes), TAG_INTEGER, "").content)
    except CertParseError:
        raise CertParseError("x509: invalid DSA public key") from None
    try:
        numbers = children(expect(parse_one(parameters or b""), TAG_SEQUENCE, ""))
        if len(numbers) != 3:
            raise CertParseError("x509: invalid DSA parameters")
        p, q, g = (decode_integer(expect(n, TAG_INTEGER, "").content) for n in numbers)
    except CertParseError:
        raise CertParseError("x509: invalid DSA parameters") from None
    if min(p, q, g, y) <= 0:
        raise CertParseError("x509: zero or negative DSA parameter")
    return DSAKey(p, q, g, y, spki)


def _verify_dsa(key: DSAKey, signature: bytes, signed: bytes, hash_name: str) -> None:
    """Check a DSA signature with cryptography (raises InvalidSignature)."""
    # cryptography warns that DSA is deprecated on any use of it; here the certificate, not
    # us, chose DSA, and the warning would be a stray line in the user's terminal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        from cryptography.hazmat.primitives.asymmetric import dsa

        loaded = serialization.load_der_public_key(key.spki)
        if not isinstance(loaded, dsa.DSAPublicKey):
            raise InvalidSignature
        loaded.verify(signature, signed, HASHES[hash_name]())


def verify_signature(
    key: PublicKey | None,
    algorithm: AlgorithmIdentifier,
    signed: bytes,
    signature: bytes,
    *,
    go_std: bool,
) -> bool:
    """Whether `signature` over `signed` verifies; `go_std` applies today's Go refusals
    (SHA-1/MD5 signatures, RSA keys under 1024 bits, DSA), as step's crypto/x509 does."""
    scheme = signature_scheme(algorithm)
    if not scheme.name or key is None or scheme.hash == "MD2":
        return False
    if go_std and (scheme.hash in ("SHA1", "MD5") or scheme.key_type == "DSA"):
        return False
    try:
        if scheme.key_type == "RSA" and isinstance(key, rsa.RSAPublicKey):
            if go_std and key.key_size < 1024:
                return False
            digest = HASHES[scheme.hash]()
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(HASHES[scheme.hash]()), digest.digest_size)
                if scheme.pss
                else padding.PKCS1v15()
            )
            key.verify(signature, signed, pad, digest)
        elif scheme.key_type == "ECDSA" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(HASHES[scheme.hash]()))
        elif scheme.key_type == "Ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        elif scheme.key_type == "DSA" and isinstance(key, DSAKey):
            _verify_dsa(key, signature, signed, scheme.hash)
        else:
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True
