"""Formatting of X.509 certificates and CSRs the way `step certificate inspect` prints them.

Three renderings, each following the Go code step links (read, not copied):

* text and ``--short``: smallstep/certinfo (``CertificateText``, ``CertificateShortText``,
  ``CertificateRequestText``, ``CertificateRequestShortText``), which reads certificates parsed
  by Go's ``crypto/x509``.
* ``--format json``: the JSON of smallstep/zcrypto's ``x509.Certificate`` (zlint's schema:
  ``version``, ``serial_number``, ``signature_algorithm``, ``issuer``, ``issuer_dn``,
  ``validity{start,end,length}``, ``subject``, ``subject_dn``, ``subject_key_info``,
  ``extensions``, ``unknown_extensions``, ``signature``, the fingerprints,
  ``validation_level``, ``names``, ``redacted``); for a CSR, Go's default encoding of
  zcrypto's ``CertificateRequest`` struct.
* ``--format pem``.

Certificates are decoded with a small strict DER reader of our own so that every raw detail
certinfo prints (attribute order, raw extension bytes, unknown algorithms) is available; the
`cryptography` package is only used for public keys and signature checks. The step
provisioner extension is decoded by :mod:`provisioners.extension`.

Known gaps against real step (deliberate, documented):

* JSON ``names``: zcrypto builds it through a Go map, so step prints it in random order; we
  keep first-seen order. Whether a name is included follows govalidator's ``IsURL`` as
  closely as a Python regular expression allows.
* JSON ``validation_level``: only the CA/Browser Forum policy OIDs and zcrypto's subject
  heuristics are known; zcrypto's per-vendor EV/OV/DV policy tables are not reproduced.
* CSR JSON prints an ECDSA key's ``Curve`` as ``{}`` (what Go >= 1.20 marshals).
* Go's exact wording of low-level parse errors is not reproduced; any certificate Go would
  refuse is refused, with step's one-line message at the command level.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa

from provisioners.extension import ProvisionerExtension

# ============================================================================================
# DER


class CertParseError(ValueError):
    """The bytes are not a certificate (or CSR) that Go's crypto/x509 would accept."""


@dataclass(frozen=True)
class Element:
    """One DER TLV: class (0 universal, 1 application, 2 context, 3 private), tag, bytes."""

    cls: int
    constructed: bool
    tag: int
    content: bytes
    raw: bytes

    def is_universal(self, tag: int) -> bool:
        return self.cls == 0 and self.tag == tag

    def is_context(self, tag: int) -> bool:
        return self.cls == 2 and self.tag == tag


_SEQUENCE, _SET = 0x10, 0x11
_BOOLEAN, _INTEGER, _BIT_STRING, _OCTET_STRING, _NULL, _OID = 1, 2, 3, 4, 5, 6
_UTF8, _NUMERIC, _PRINTABLE, _T61, _IA5, _UTCTIME, _GENTIME, _BMP = 12, 18, 19, 20, 22, 23, 24, 30


def read_element(data: bytes, offset: int = 0) -> tuple[Element, int]:
    """Read the TLV at `offset`; definite, minimally encoded lengths only (DER)."""
    start = offset
    if offset >= len(data):
        raise CertParseError("asn1: truncated element")
    first = data[offset]
    offset += 1
    cls, constructed, tag = first >> 6, bool(first & 0x20), first & 0x1F
    if tag == 0x1F:
        tag = 0
        while True:
            if offset >= len(data):
                raise CertParseError("asn1: truncated tag")
            octet = data[offset]
            offset += 1
            tag = (tag << 7) | (octet & 0x7F)
            if tag > 0x7FFFFFFF:
                raise CertParseError("asn1: tag too large")
            if not octet & 0x80:
                break
    if offset >= len(data):
        raise CertParseError("asn1: truncated length")
    length = data[offset]
    offset += 1
    if length & 0x80:
        count = length & 0x7F
        if count == 0:
            raise CertParseError("asn1: indefinite length found (not DER)")
        if count > 4 or offset + count > len(data):
            raise CertParseError("asn1: truncated length")
        raw_len = data[offset : offset + count]
        offset += count
        if raw_len[0] == 0:
            raise CertParseError("asn1: non-minimal length")
        length = int.from_bytes(raw_len, "big")
        if length < 0x80:
            raise CertParseError("asn1: non-minimal length")
    end = offset + length
    if end > len(data):
        raise CertParseError("asn1: truncated element")
    return Element(cls, constructed, tag, data[offset:end], data[start:end]), end


def parse_one(data: bytes) -> Element:
    """Exactly one element and nothing after it."""
    element, end = read_element(data)
    if end != len(data):
        raise CertParseError("asn1: trailing data")
    return element


def children(element: Element) -> list[Element]:
    """The elements inside a constructed element."""
    if not element.constructed:
        raise CertParseError("asn1: expected a constructed element")
    out: list[Element] = []
    offset = 0
    while offset < len(element.content):
        child, offset = read_element(element.content, offset)
        out.append(child)
    return out


def _expect(element: Element, tag: int, what: str) -> Element:
    if not element.is_universal(tag):
        raise CertParseError(f"asn1: expected {what}")
    return element


def decode_oid(content: bytes) -> str:
    if not content:
        raise CertParseError("asn1: empty object identifier")
    arcs: list[int] = []
    value = 0
    for index, octet in enumerate(content):
        if value == 0 and octet == 0x80:
            raise CertParseError("asn1: non-minimal OID arc")
        value = (value << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
        elif index == len(content) - 1:
            raise CertParseError("asn1: truncated OID")
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def decode_integer(content: bytes) -> int:
    if not content:
        raise CertParseError("asn1: empty integer")
    if len(content) > 1 and (
        (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
    ):
        raise CertParseError("asn1: integer not minimally encoded")
    return int.from_bytes(content, "big", signed=True)


def decode_boolean(content: bytes) -> bool:
    if len(content) != 1 or content[0] not in (0, 0xFF):
        raise CertParseError("asn1: invalid boolean")
    return content[0] == 0xFF


def decode_bit_string(content: bytes) -> tuple[bytes, int]:
    """(bytes, bit length)."""
    if not content or content[0] > 7 or (len(content) == 1 and content[0] != 0):
        raise CertParseError("asn1: invalid bit string")
    unused = content[0]
    body = content[1:]
    if unused and body[-1] & ((1 << unused) - 1):
        raise CertParseError("asn1: invalid bit string padding")
    return body, len(body) * 8 - unused


def decode_string(element: Element) -> str:
    """The string types Go's crypto/x509 accepts in names and extensions."""
    tag, body = element.tag, element.content
    if element.cls != 0:
        raise CertParseError("asn1: expected a string")
    if tag == _UTF8:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise CertParseError("asn1: invalid UTF-8 string") from None
    if tag == _PRINTABLE:
        text = body.decode("latin-1")
        if not re.fullmatch(r"[A-Za-z0-9 '()+,\-./:=?*&]*", text):
            raise CertParseError("asn1: invalid PrintableString")
        return text
    if tag in (_IA5, _NUMERIC):
        if any(b >= 0x80 for b in body):
            raise CertParseError("asn1: invalid IA5String")
        return body.decode("ascii")
    if tag == _T61:
        return body.decode("latin-1")
    if tag == _BMP:
        if len(body) % 2:
            raise CertParseError("asn1: invalid BMPString")
        return body.decode("utf-16-be", errors="replace")
    raise CertParseError(f"asn1: unsupported string type {tag}")


def decode_time(element: Element) -> datetime:
    text = element.content.decode("ascii", errors="replace")
    if element.is_universal(_UTCTIME):
        match = re.fullmatch(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(Z|[+-]\d{4})", text)
        if not match:
            raise CertParseError("x509: malformed UTCTime")
        year = int(match.group(1))
        year += 1900 if year >= 50 else 2000
    elif element.is_universal(_GENTIME):
        match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(Z|[+-]\d{4})", text)
        if not match:
            raise CertParseError("x509: malformed GeneralizedTime")
        year = int(match.group(1))
    else:
        raise CertParseError("x509: malformed validity")
    try:
        when = datetime(
            year,
            int(match.group(2)),
            int(match.group(3)),
            int(match.group(4)),
            int(match.group(5)),
            int(match.group(6) or 0),
            tzinfo=UTC,
        )
    except ValueError:
        raise CertParseError("x509: malformed time") from None
    zone = match.group(7)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        when -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
    return when


# ============================================================================================
# Names, algorithms, extensions


@dataclass(frozen=True)
class Attribute:
    oid: str
    value: str


Name = list[list[Attribute]]


def parse_name(element: Element) -> Name:
    rdns: Name = []
    for rdn in children(_expect(element, _SEQUENCE, "Name")):
        if not rdn.is_universal(_SET):
            raise CertParseError("x509: invalid RDNSequence")
        attributes: list[Attribute] = []
        for atv in children(rdn):
            parts = children(_expect(atv, _SEQUENCE, "AttributeTypeAndValue"))
            if len(parts) != 2:
                raise CertParseError("x509: invalid RDNSequence: invalid attribute")
            oid = decode_oid(_expect(parts[0], _OID, "attribute type").content)
            try:
                value = decode_string(parts[1])
            except CertParseError as exc:
                raise CertParseError(f"x509: invalid RDNSequence: {exc}") from None
            attributes.append(Attribute(oid, value))
        rdns.append(attributes)
    return rdns


def flat(name: Name) -> list[Attribute]:
    return [attribute for rdn in name for attribute in rdn]


def common_name(name: Name) -> str:
    """Go's pkix.Name.CommonName: the last CN in the name."""
    value = ""
    for attribute in flat(name):
        if attribute.oid == "2.5.4.3":
            value = attribute.value
    return value


@dataclass(frozen=True)
class AlgorithmIdentifier:
    oid: str
    parameters: bytes | None  # full TLV of the parameters, None when absent


def parse_algorithm(element: Element) -> AlgorithmIdentifier:
    parts = children(_expect(element, _SEQUENCE, "AlgorithmIdentifier"))
    if not parts or len(parts) > 2:
        raise CertParseError("x509: malformed algorithm identifier")
    oid = decode_oid(_expect(parts[0], _OID, "algorithm").content)
    return AlgorithmIdentifier(oid, parts[1].raw if len(parts) == 2 else None)


@dataclass(frozen=True)
class Extension:
    oid: str
    critical: bool
    value: bytes


def parse_extension(element: Element) -> Extension:
    parts = children(_expect(element, _SEQUENCE, "Extension"))
    if len(parts) not in (2, 3):
        raise CertParseError("x509: malformed extension")
    oid = decode_oid(_expect(parts[0], _OID, "extension OID").content)
    critical = False
    if len(parts) == 3:
        critical = decode_boolean(_expect(parts[1], _BOOLEAN, "critical flag").content)
    value = _expect(parts[-1], _OCTET_STRING, "extension value").content
    return Extension(oid, critical, value)


# Signature algorithms as Go's crypto/x509 names them: OID -> (name, hash, key type).
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "MD5": hashes.MD5,
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
_SIGNATURE_ALGORITHMS: dict[str, tuple[str, str, str]] = {
    "1.2.840.113549.1.1.2": ("MD2-RSA", "MD2", "RSA"),
    "1.2.840.113549.1.1.4": ("MD5-RSA", "MD5", "RSA"),
    "1.2.840.113549.1.1.5": ("SHA1-RSA", "SHA1", "RSA"),
    "1.3.14.3.2.29": ("SHA1-RSA", "SHA1", "RSA"),
    "1.2.840.113549.1.1.11": ("SHA256-RSA", "SHA256", "RSA"),
    "1.2.840.113549.1.1.12": ("SHA384-RSA", "SHA384", "RSA"),
    "1.2.840.113549.1.1.13": ("SHA512-RSA", "SHA512", "RSA"),
    "1.2.840.10040.4.3": ("DSA-SHA1", "SHA1", "DSA"),
    "2.16.840.1.101.3.4.3.2": ("DSA-SHA256", "SHA256", "DSA"),
    "1.2.840.10045.4.1": ("ECDSA-SHA1", "SHA1", "ECDSA"),
    "1.2.840.10045.4.3.2": ("ECDSA-SHA256", "SHA256", "ECDSA"),
    "1.2.840.10045.4.3.3": ("ECDSA-SHA384", "SHA384", "ECDSA"),
    "1.2.840.10045.4.3.4": ("ECDSA-SHA512", "SHA512", "ECDSA"),
    "1.3.101.112": ("Ed25519", "", "Ed25519"),
}
_OID_RSA_PSS = "1.2.840.113549.1.1.10"
_PSS_HASHES = {
    "2.16.840.1.101.3.4.2.1": ("SHA256", 32),
    "2.16.840.1.101.3.4.2.2": ("SHA384", 48),
    "2.16.840.1.101.3.4.2.3": ("SHA512", 64),
}
_NULL_DER = b"\x05\x00"

# Names certinfo gives algorithms Go's crypto/x509 does not know.
_UNKNOWN_ALGORITHM_NAMES: dict[str, str] = {
    f"2.16.840.1.101.3.4.3.{arc}": name
    for arc, name in {
        17: "ML-DSA-44",
        18: "ML-DSA-65",
        19: "ML-DSA-87",
        32: "HashML-DSA-44",
        33: "HashML-DSA-65",
        34: "HashML-DSA-87",
        20: "SLH-DSA-SHA2-128s",
        21: "SLH-DSA-SHA2-128f",
        22: "SLH-DSA-SHA2-192s",
        23: "SLH-DSA-SHA2-192f",
        24: "SLH-DSA-SHA2-256s",
        25: "SLH-DSA-SHA2-256f",
        26: "SLH-DSA-SHAKE-128s",
        27: "SLH-DSA-SHAKE-128f",
        28: "SLH-DSA-SHAKE-192s",
        29: "SLH-DSA-SHAKE-192f",
        30: "SLH-DSA-SHAKE-256s",
        31: "SLH-DSA-SHAKE-256f",
        35: "HashSLH-DSA-SHA2-128s",
        36: "HashSLH-DSA-SHA2-128f",
        37: "HashSLH-DSA-SHA2-192s",
        38: "HashSLH-DSA-SHA2-192f",
        39: "HashSLH-DSA-SHA2-256s",
        40: "HashSLH-DSA-SHA2-256f",
        41: "HashSLH-DSA-SHAKE-128s",
        42: "HashSLH-DSA-SHAKE-128f",
        43: "HashSLH-DSA-SHAKE-192s",
        44: "HashSLH-DSA-SHAKE-192f",
        45: "HashSLH-DSA-SHAKE-256s",
        46: "HashSLH-DSA-SHAKE-256f",
    }.items()
}


@dataclass(frozen=True)
class SignatureScheme:
    """A signature algorithm Go recognises (name '' when it does not)."""

    name: str
    hash: str
    key_type: str
    pss: bool = False


def signature_scheme(algorithm: AlgorithmIdentifier) -> SignatureScheme:
    """Go's getSignatureAlgorithmFromAI, including its RSA-PSS parameter rules."""
    if algorithm.oid != _OID_RSA_PSS:
        known = _SIGNATURE_ALGORITHMS.get(algorithm.oid)
        if known is None:
            return SignatureScheme("", "", "")
        if known[2] == "Ed25519" and algorithm.parameters is not None:
            return SignatureScheme("", "", "")
        return SignatureScheme(*known)
    try:
        params = children(parse_one(algorithm.parameters or b""))
        fields: dict[int, Element] = {}
        for item in params:
            if item.cls != 2 or item.tag in fields:
                raise CertParseError("bad PSS parameters")
            fields[item.tag] = parse_one(item.content)
        hash_alg = parse_algorithm(fields[0])
        mgf = parse_algorithm(fields[1])
        mgf_hash = parse_algorithm(parse_one(mgf.parameters or b""))
        salt = decode_integer(_expect(fields[2], _INTEGER, "salt").content)
        trailer = decode_integer(fields[3].content) if 3 in fields else 1
    except (CertParseError, KeyError):
        return SignatureScheme("", "", "")
    known_hash = _PSS_HASHES.get(hash_alg.oid)
    if (
        known_hash is None
        or hash_alg.parameters != _NULL_DER
        or mgf.oid != "1.2.840.113549.1.1.8"
        or mgf_hash.oid != hash_alg.oid
        or mgf_hash.parameters != _NULL_DER
        or trailer != 1
        or salt != known_hash[1]
    ):
        return SignatureScheme("", "", "")
    return SignatureScheme(f"{known_hash[0]}-RSAPSS", known_hash[0], "RSA", pss=True)


def algorithm_display_name(algorithm: AlgorithmIdentifier) -> str:
    """certinfo's name for a signature algorithm: Go's name, else a known PQ name, else OID."""
    scheme = signature_scheme(algorithm)
    if scheme.name:
        return scheme.name
    return _UNKNOWN_ALGORITHM_NAMES.get(algorithm.oid, algorithm.oid)


# Public keys -------------------------------------------------------------------------------

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

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | dsa.DSAPublicKey
)


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
        return _UNKNOWN_ALGORITHM_NAMES.get(self.algorithm_oid, self.algorithm_oid)

    def short_label(self) -> str:
        """certinfo's `getPublicKeyAlgorithm`: "ECDSA P-256", "RSA 2048", "Ed25519 256"."""
        key = self.key
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"ECDSA {self.curve}"
        if isinstance(key, rsa.RSAPublicKey):
            return f"RSA {(key.key_size + 7) // 8 * 8}"
        if isinstance(key, dsa.DSAPublicKey):
            return f"DSA {key.parameters().parameter_numbers().q.bit_length()}"
        if isinstance(key, ed25519.Ed25519PublicKey):
            return f"Ed25519 {len(self.key_bytes) * 8}"
        return self.display_algorithm


def parse_public_key(element: Element) -> PublicKeyInfo:
    """Go's crypto/x509 rules: known algorithms must parse, unknown ones are kept raw."""
    parts = children(_expect(element, _SEQUENCE, "SubjectPublicKeyInfo"))
    if len(parts) != 2:
        raise CertParseError("x509: malformed subject public key info")
    algorithm = parse_algorithm(parts[0])
    key_bytes, bits = decode_bit_string(_expect(parts[1], _BIT_STRING, "public key").content)
    if bits % 8:
        raise CertParseError("x509: invalid public key bit string")
    oid = algorithm.oid
    if oid not in (_OID_KEY_RSA, _OID_KEY_EC, _OID_KEY_DSA, _OID_KEY_ED25519):
        return PublicKeyInfo(element.raw, oid, "", None, "", 0, key_bytes)
    curve, curve_bits = "", 0
    if oid == _OID_KEY_EC:
        try:
            curve_oid = decode_oid(
                _expect(parse_one(algorithm.parameters or b""), _OID, "").content
            )
        except CertParseError:
            raise CertParseError("x509: invalid ECDSA parameters") from None
        if curve_oid not in _CURVES:
            raise CertParseError("x509: unsupported elliptic curve")
        curve, curve_bits = _CURVES[curve_oid]
    if oid == _OID_KEY_ED25519 and len(key_bytes) != 32:
        raise CertParseError("x509: wrong Ed25519 public key size")
    try:
        key = serialization.load_der_public_key(element.raw)
    except (ValueError, UnsupportedAlgorithm):
        raise CertParseError("x509: failed to parse public key") from None
    if not isinstance(
        key,
        rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | dsa.DSAPublicKey,
    ):
        raise CertParseError("x509: unsupported public key")
    name = {
        _OID_KEY_RSA: "RSA",
        _OID_KEY_EC: "ECDSA",
        _OID_KEY_DSA: "DSA",
        _OID_KEY_ED25519: "Ed25519",
    }[oid]
    return PublicKeyInfo(element.raw, oid, name, key, curve, curve_bits, key_bytes)


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
            digest = _HASHES[scheme.hash]()
            pad: padding.AsymmetricPadding = (
                padding.PSS(padding.MGF1(_HASHES[scheme.hash]()), digest.digest_size)
                if scheme.pss
                else padding.PKCS1v15()
            )
            key.verify(signature, signed, pad, digest)
        elif scheme.key_type == "ECDSA" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(_HASHES[scheme.hash]()))
        elif scheme.key_type == "Ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        elif scheme.key_type == "DSA" and isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, signed, _HASHES[scheme.hash]())
        else:
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


# General names -----------------------------------------------------------------------------


@dataclass
class OtherName:
    type_id: str
    value: bytes  # the explicitly tagged value's inner TLV


@dataclass
class EDIPartyName:
    name_assigner: str
    party_name: str


@dataclass
class GeneralNames:
    """Every GeneralName of a SAN/IAN extension, grouped as zcrypto groups them."""

    other_names: list[OtherName] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    directory_names: list[Name] = field(default_factory=list)
    edi_party_names: list[EDIPartyName] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    ips: list[bytes] = field(default_factory=list)
    registered_ids: list[str] = field(default_factory=list)
    # (tag, element) in certificate order, for certinfo's otherName/TPM printing
    raw: list[Element] = field(default_factory=list)


def _ia5(content: bytes, what: str) -> str:
    if any(b >= 0x80 for b in content):
        raise CertParseError(f"x509: SAN {what} is malformed")
    return content.decode("ascii")


def parse_general_names(value: bytes, *, strict: bool = False) -> GeneralNames:
    """GeneralNames. Go's crypto/x509 checks only the DNS, email, URI and IP entries (the
    others are ignored when malformed); `strict` also requires the rest to parse, as
    zcrypto (step's JSON output) does."""
    names = GeneralNames()
    for item in children(_expect(parse_one(value), _SEQUENCE, "GeneralNames")):
        if item.cls != 2:
            if strict:
                raise CertParseError("x509: invalid general name")
            continue
        names.raw.append(item)
        tag = item.tag
        if tag == 1:
            names.emails.append(_ia5(item.content, "rfc822Name"))
        elif tag == 2:
            names.dns.append(_ia5(item.content, "dNSName"))
        elif tag == 6:
            names.uris.append(_ia5(item.content, "uniformResourceIdentifier"))
        elif tag == 7:
            if len(item.content) not in (4, 16):
                raise CertParseError(f"x509: cannot parse IP address of length {len(item.content)}")
            names.ips.append(item.content)
        else:
            try:
                _parse_other_general_name(item, names)
            except (CertParseError, IndexError):
                if strict:
                    raise CertParseError("x509: invalid general name") from None
    return names


def _parse_other_general_name(item: Element, names: GeneralNames) -> None:
    tag = item.tag
    if tag == 0:
        parts = children(item)
        if len(parts) != 2 or not parts[1].is_context(0) or not parts[1].constructed:
            raise CertParseError("x509: invalid otherName")
        type_id = decode_oid(_expect(parts[0], _OID, "otherName type").content)
        names.other_names.append(OtherName(type_id, parts[1].content))
    elif tag == 4:
        names.directory_names.append(parse_name(parse_one(item.content)))
    elif tag == 5:
        assigner, party = "", ""
        for part in children(item):
            text = decode_string(parse_one(part.content)) if part.constructed else ""
            if part.is_context(0):
                assigner = text
            elif part.is_context(1):
                party = text
        names.edi_party_names.append(EDIPartyName(assigner, party))
    elif tag == 8:
        names.registered_ids.append(decode_oid(item.content))


def ip_string(raw: bytes) -> str:
    """Go's net.IP.String(): IPv4-mapped IPv6 addresses print as IPv4."""
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    address = ipaddress.IPv6Address(raw)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


# Decoded extensions (Go crypto/x509 semantics) ---------------------------------------------

_EXT_KEY_USAGE_GO = {
    "2.5.29.37.0": "Any Usage",
    "1.3.6.1.5.5.7.3.1": "Server Authentication",
    "1.3.6.1.5.5.7.3.2": "Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "E-mail Protection",
    "1.3.6.1.5.5.7.3.5": "IPSec End System",
    "1.3.6.1.5.5.7.3.6": "IPSec Tunnel",
    "1.3.6.1.5.5.7.3.7": "IPSec User",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
    # Go knows these four but certinfo's certificate printer has no label for them.
    "1.3.6.1.4.1.311.10.3.3": "UNKNOWN",
    "2.16.840.1.113730.4.1": "UNKNOWN",
    "1.3.6.1.4.1.311.2.1.22": "UNKNOWN",
    "1.3.6.1.4.1.311.61.1.1": "UNKNOWN",
}
_OID_EK_CERTIFICATE = "2.23.133.8.1"
_KEY_USAGE_NAMES = (
    "Digital Signature",
    "Content Commitment",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Certificate Sign",
    "CRL Sign",
    "Encipher Only",
    "Decipher Only",
)


def parse_key_usage(value: bytes) -> int:
    """Go's KeyUsage bit mask (bit i set when the i-th named usage is asserted)."""
    body, bits = decode_bit_string(_expect(parse_one(value), _BIT_STRING, "key usage").content)
    usage = 0
    for index in range(9):
        if index < bits and body[index // 8] & (0x80 >> (index % 8)):
            usage |= 1 << index
    return usage


def parse_basic_constraints(value: bytes) -> tuple[bool, int]:
    """(is CA, max path length or -1 when absent)."""
    parts = children(_expect(parse_one(value), _SEQUENCE, "basic constraints"))
    is_ca, max_path = False, -1
    index = 0
    if index < len(parts) and parts[index].is_universal(_BOOLEAN):
        is_ca = decode_boolean(parts[index].content)
        index += 1
    if index < len(parts) and parts[index].is_universal(_INTEGER):
        max_path = decode_integer(parts[index].content)
        index += 1
    return is_ca, max_path


def parse_octet_string(value: bytes) -> bytes:
    return _expect(parse_one(value), _OCTET_STRING, "octet string").content


def parse_authority_key_id(value: bytes) -> bytes:
    key_id = b""
    for part in children(_expect(parse_one(value), _SEQUENCE, "authority key id")):
        if part.is_context(0):
            key_id = part.content
    return key_id


def parse_oid_sequence(value: bytes) -> list[str]:
    return [
        decode_oid(_expect(item, _OID, "OID").content)
        for item in children(_expect(parse_one(value), _SEQUENCE, "OID sequence"))
    ]


@dataclass
class PolicyInformation:
    oid: str
    cps: list[str] = field(default_factory=list)
    explicit_texts: list[str] = field(default_factory=list)
    notice_refs: list[tuple[str, list[int]]] = field(default_factory=list)


def parse_policies(value: bytes) -> list[PolicyInformation]:
    out: list[PolicyInformation] = []
    for info in children(_expect(parse_one(value), _SEQUENCE, "certificate policies")):
        parts = children(_expect(info, _SEQUENCE, "policy information"))
        if not parts:
            raise CertParseError("x509: invalid certificate policies")
        policy = PolicyInformation(decode_oid(_expect(parts[0], _OID, "policy").content))
        if len(parts) > 1:
            for qualifier in children(_expect(parts[1], _SEQUENCE, "qualifiers")):
                items = children(_expect(qualifier, _SEQUENCE, "qualifier"))
                if not items:
                    raise CertParseError("x509: invalid policy qualifier")
                qualifier_id = decode_oid(_expect(items[0], _OID, "qualifier id").content)
                if len(items) < 2:
                    continue
                if qualifier_id == "1.3.6.1.5.5.7.2.1":
                    policy.cps.append(items[1].content.decode("latin-1"))
                elif qualifier_id == "1.3.6.1.5.5.7.2.2" and items[1].constructed:
                    for notice in children(items[1]):
                        if notice.is_universal(_SEQUENCE):
                            ref = children(notice)
                            organization = ref[0].content.decode("utf-8", "replace") if ref else ""
                            numbers = (
                                [decode_integer(n.content) for n in children(ref[1])]
                                if len(ref) > 1
                                else []
                            )
                            policy.notice_refs.append((organization, numbers))
                        elif notice.content:
                            policy.explicit_texts.append(notice.content.decode("utf-8", "replace"))
        out.append(policy)
    return out


@dataclass
class AuthorityInfoAccess:
    ocsp: list[str] = field(default_factory=list)
    issuers: list[str] = field(default_factory=list)


def parse_authority_info_access(value: bytes) -> AuthorityInfoAccess:
    aia = AuthorityInfoAccess()
    for description in children(_expect(parse_one(value), _SEQUENCE, "AIA")):
        parts = children(_expect(description, _SEQUENCE, "access description"))
        if len(parts) != 2:
            raise CertParseError("x509: invalid authority info access")
        method = decode_oid(_expect(parts[0], _OID, "access method").content)
        if not parts[1].is_context(6):
            continue
        location = parts[1].content.decode("latin-1")
        if method == "1.3.6.1.5.5.7.48.1":
            aia.ocsp.append(location)
        elif method == "1.3.6.1.5.5.7.48.2":
            aia.issuers.append(location)
    return aia


def parse_crl_distribution_points(value: bytes) -> list[str]:
    uris: list[str] = []
    for point in children(_expect(parse_one(value), _SEQUENCE, "CRL distribution points")):
        for part in children(_expect(point, _SEQUENCE, "distribution point")):
            if not part.is_context(0):
                continue
            for dp_name in children(part):
                if not dp_name.is_context(0):
                    continue
                for general in children(dp_name):
                    if general.is_context(6):
                        uris.append(general.content.decode("latin-1"))
    return uris


@dataclass
class NameConstraints:
    """Go crypto/x509's view (DNS, email, URI domains, IP ranges) plus zcrypto's extras."""

    permitted: GeneralNames = field(default_factory=GeneralNames)
    excluded: GeneralNames = field(default_factory=GeneralNames)
    # IP ranges as (ip bytes, mask bytes)
    permitted_ips: list[tuple[bytes, bytes]] = field(default_factory=list)
    excluded_ips: list[tuple[bytes, bytes]] = field(default_factory=list)


def parse_name_constraints(value: bytes) -> NameConstraints:
    constraints = NameConstraints()
    for part in children(_expect(parse_one(value), _SEQUENCE, "name constraints")):
        if part.is_context(0):
            target, ips = constraints.permitted, constraints.permitted_ips
        elif part.is_context(1):
            target, ips = constraints.excluded, constraints.excluded_ips
        else:
            raise CertParseError("x509: invalid name constraints")
        for subtree in children(part):
            items = children(_expect(subtree, _SEQUENCE, "general subtree"))
            if not items or items[0].cls != 2:
                raise CertParseError("x509: invalid name constraints")
            base = items[0]
            if base.tag == 7:
                if len(base.content) not in (8, 32):
                    raise CertParseError(
                        "x509: certificate name constraint contained IP address range of length "
                        f"{len(base.content)}"
                    )
                half = len(base.content) // 2
                ips.append((base.content[:half], base.content[half:]))
                continue
            if base.tag == 1:
                target.emails.append(base.content.decode("latin-1"))
            elif base.tag == 2:
                target.dns.append(base.content.decode("latin-1"))
            elif base.tag == 6:
                target.uris.append(base.content.decode("latin-1"))
            elif base.tag == 4:
                target.directory_names.append(parse_name(parse_one(base.content)))
            elif base.tag == 8:
                target.registered_ids.append(decode_oid(base.content))
    return constraints


def ip_net_string(ip: bytes, mask: bytes) -> str:
    """Go's net.IPNet.String(): "addr/prefix" or "addr/hexmask" for non-canonical masks."""
    masked = bytes(a & b for a, b in zip(ip, mask, strict=True))
    bits = int.from_bytes(mask, "big")
    width = len(mask) * 8
    ones = bin(bits).count("1")
    canonical = bits == ((1 << width) - 1) ^ ((1 << (width - ones)) - 1)
    address = ip_string(masked) if len(masked) == 16 else str(ipaddress.IPv4Address(masked))
    return f"{address}/{ones}" if canonical else f"{address}/{mask.hex()}"


# ============================================================================================
# Certificates and CSRs


@dataclass
class Certificate:
    """A parsed X.509 certificate, with the raw pieces certinfo and zcrypto print."""

    raw: bytes
    tbs_raw: bytes
    tbs_parts: list[Element]
    version: int
    serial: int
    tbs_signature_algorithm: AlgorithmIdentifier
    issuer_raw: bytes
    issuer: Name
    not_before: datetime
    not_after: datetime
    subject_raw: bytes
    subject: Name
    public_key: PublicKeyInfo
    issuer_unique_id: bytes
    subject_unique_id: bytes
    extensions: list[Extension]
    signature_algorithm: AlgorithmIdentifier
    signature: bytes
    # decoded extensions (None/empty when absent)
    key_usage: int = 0
    basic_constraints: tuple[bool, int] | None = None
    sans: GeneralNames = field(default_factory=GeneralNames)
    subject_key_id: bytes = b""
    authority_key_id: bytes = b""
    ext_key_usage: list[str] = field(default_factory=list)
    policies: list[PolicyInformation] = field(default_factory=list)
    aia: AuthorityInfoAccess = field(default_factory=AuthorityInfoAccess)
    crl_distribution_points: list[str] = field(default_factory=list)
    name_constraints: NameConstraints | None = None
    provisioner: ProvisionerExtension | None = None
    provisioner_error: bool = False

    @property
    def is_ca(self) -> bool:
        return self.basic_constraints is not None and self.basic_constraints[0]

    def extension(self, oid: str) -> Extension | None:
        for extension in self.extensions:
            if extension.oid == oid:
                return extension
        return None


OID_STEP_PROVISIONER = "1.3.6.1.4.1.37476.9000.64.1"


def parse_certificate(der: bytes) -> Certificate:
    """Parse DER the way Go's x509.ParseCertificate would accept it."""
    try:
        return _parse_certificate(der)
    except (IndexError, KeyError):
        raise CertParseError("x509: malformed certificate") from None


def _parse_certificate(der: bytes) -> Certificate:
    top = children(_expect(parse_one(der), _SEQUENCE, "certificate"))
    if len(top) != 3:
        raise CertParseError("x509: malformed certificate")
    tbs_element, outer_algorithm, signature_element = top
    parts = children(_expect(tbs_element, _SEQUENCE, "tbsCertificate"))
    index = 0
    version = 1
    if parts[0].is_context(0) and parts[0].constructed:
        version = decode_integer(_expect(parse_one(parts[0].content), _INTEGER, "").content) + 1
        index = 1
    if version not in (1, 2, 3):
        raise CertParseError("x509: invalid version")
    serial = decode_integer(_expect(parts[index], _INTEGER, "serial number").content)
    if serial < 0:
        raise CertParseError("x509: negative serial number")
    tbs_algorithm = parse_algorithm(parts[index + 1])
    issuer_element = parts[index + 2]
    issuer = parse_name(issuer_element)
    validity = children(_expect(parts[index + 3], _SEQUENCE, "validity"))
    if len(validity) != 2:
        raise CertParseError("x509: malformed validity")
    not_before, not_after = decode_time(validity[0]), decode_time(validity[1])
    subject_element = parts[index + 4]
    subject = parse_name(subject_element)
    public_key = parse_public_key(parts[index + 5])
    issuer_uid = subject_uid = b""
    extensions: list[Extension] = []
    for extra in parts[index + 6 :]:
        if extra.is_context(1):
            issuer_uid = decode_bit_string(extra.content)[0]
        elif extra.is_context(2):
            subject_uid = decode_bit_string(extra.content)[0]
        elif extra.is_context(3) and extra.constructed:
            if version != 3:
                raise CertParseError("x509: extensions in a non-v3 certificate")
            holder = parse_one(extra.content)
            extensions = [parse_extension(item) for item in children(holder)]
        else:
            raise CertParseError("x509: malformed tbsCertificate")
    algorithm = parse_algorithm(outer_algorithm)
    if algorithm != tbs_algorithm:
        raise CertParseError("x509: inner and outer signature algorithm identifiers don't match")
    signature, _ = decode_bit_string(_expect(signature_element, _BIT_STRING, "signature").content)
    if len({extension.oid for extension in extensions}) != len(extensions):
        raise CertParseError("x509: certificate contains duplicate extensions")

    cert = Certificate(
        raw=der,
        tbs_raw=tbs_element.raw,
        tbs_parts=parts,
        version=version,
        serial=serial,
        tbs_signature_algorithm=tbs_algorithm,
        issuer_raw=issuer_element.raw,
        issuer=issuer,
        not_before=not_before,
        not_after=not_after,
        subject_raw=subject_element.raw,
        subject=subject,
        public_key=public_key,
        issuer_unique_id=issuer_uid,
        subject_unique_id=subject_uid,
        extensions=extensions,
        signature_algorithm=algorithm,
        signature=signature,
    )
    _decode_extensions(cert)
    return cert


def _decode_extensions(cert: Certificate) -> None:
    for extension in cert.extensions:
        oid, value = extension.oid, extension.value
        if oid == "2.5.29.15":
            cert.key_usage = parse_key_usage(value)
        elif oid == "2.5.29.19":
            cert.basic_constraints = parse_basic_constraints(value)
        elif oid == "2.5.29.17":
            cert.sans = parse_general_names(value)
        elif oid == "2.5.29.14":
            cert.subject_key_id = parse_octet_string(value)
        elif oid == "2.5.29.35":
            cert.authority_key_id = parse_authority_key_id(value)
        elif oid == "2.5.29.37":
            cert.ext_key_usage = parse_oid_sequence(value)
        elif oid == "2.5.29.32":
            cert.policies = parse_policies(value)
        elif oid == "1.3.6.1.5.5.7.1.1":
            cert.aia = parse_authority_info_access(value)
        elif oid == "2.5.29.31":
            cert.crl_distribution_points = parse_crl_distribution_points(value)
        elif oid == "2.5.29.30":
            cert.name_constraints = parse_name_constraints(value)
        elif oid == OID_STEP_PROVISIONER:
            try:
                cert.provisioner = ProvisionerExtension.from_der(value)
            except ValueError:
                cert.provisioner_error = True


@dataclass
class CertificateRequest:
    """A parsed PKCS#10 request."""

    raw: bytes
    tbs_raw: bytes
    version: int
    subject_raw: bytes
    subject: Name
    public_key: PublicKeyInfo
    attributes: list[tuple[str, list[Element]]]
    extensions: list[Extension]
    signature_algorithm: AlgorithmIdentifier
    signature: bytes
    sans: GeneralNames = field(default_factory=GeneralNames)


def parse_certificate_request(der: bytes) -> CertificateRequest:
    """Parse DER the way Go's x509.ParseCertificateRequest would accept it."""
    try:
        return _parse_certificate_request(der)
    except (IndexError, KeyError):
        raise CertParseError("x509: malformed certificate request") from None


def _parse_certificate_request(der: bytes) -> CertificateRequest:
    top = children(_expect(parse_one(der), _SEQUENCE, "certificate request"))
    if len(top) != 3:
        raise CertParseError("x509: malformed certificate request")
    info = children(_expect(top[0], _SEQUENCE, "certificationRequestInfo"))
    if len(info) != 4 or not info[3].is_context(0):
        raise CertParseError("x509: malformed certificate request")
    version = decode_integer(_expect(info[0], _INTEGER, "version").content)
    subject = parse_name(info[1])
    public_key = parse_public_key(info[2])
    attributes: list[tuple[str, list[Element]]] = []
    extensions: list[Extension] = []
    for attribute in children(info[3]):
        try:
            parts = children(_expect(attribute, _SEQUENCE, "attribute"))
            oid = decode_oid(_expect(parts[0], _OID, "attribute type").content)
            values = children(_expect(parts[1], _SET, "attribute values"))
        except (CertParseError, IndexError):
            continue  # Go ignores attributes that do not parse
        attributes.append((oid, values))
        if oid == "1.2.840.113549.1.9.14" and values:
            extensions.extend(
                parse_extension(item)
                for item in children(_expect(values[0], _SEQUENCE, "extensions"))
            )
    algorithm = parse_algorithm(top[1])
    signature, _ = decode_bit_string(_expect(top[2], _BIT_STRING, "signature").content)
    request = CertificateRequest(
        raw=der,
        tbs_raw=top[0].raw,
        version=version,
        subject_raw=info[1].raw,
        subject=subject,
        public_key=public_key,
        attributes=attributes,
        extensions=extensions,
        signature_algorithm=algorithm,
        signature=signature,
    )
    for extension in extensions:
        if extension.oid == "2.5.29.17":
            request.sans = parse_general_names(extension.value)
    return request


# ============================================================================================
# Reading files the way step's pemutil does


@dataclass(frozen=True)
class PEMBlock:
    type: str
    headers: dict[str, str]
    data: bytes


_PEM_BEGIN = re.compile(rb"(?:^|\n)-----BEGIN ([^\r\n]*?)-----[ \t\r]*\n")


def pem_blocks(data: bytes) -> Iterator[PEMBlock]:
    """Go's encoding/pem.Decode applied repeatedly (malformed blocks are skipped)."""
    position = 0
    while True:
        match = _PEM_BEGIN.search(data, position)
        if match is None:
            return
        kind = match.group(1)
        end_marker = b"\n-----END " + kind + b"-----"
        end = data.find(end_marker, match.end() - 1)
        if end < 0:
            position = match.end()
            continue
        body = data[match.end() : end + 1]
        position = end + len(end_marker)
        headers: dict[str, str] = {}
        lines = body.split(b"\n")
        if lines and b":" in lines[0]:
            while lines and b":" in lines[0]:
                key, _, val = lines.pop(0).partition(b":")
                headers[key.strip().decode("latin-1")] = val.strip().decode("latin-1")
            if lines and lines[0].strip() == b"":
                lines.pop(0)
        text = b"".join(lines)
        text = re.sub(rb"[ \t\r\n]", b"", text)
        try:
            decoded = base64.b64decode(text, validate=True)
        except ValueError:
            continue
        yield PEMBlock(kind.decode("latin-1"), headers, decoded)


def pem_encode(kind: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        f"-----BEGIN {kind}-----\n"
        + "".join(line + "\n" for line in lines)
        + (f"-----END {kind}-----\n")
    )


def parse_certificate_bundle(data: bytes) -> list[Certificate]:
    """pemutil.ParseCertificateBundle: every CERTIFICATE block (no headers), or one DER cert."""
    if b"-----BEGIN " in data:
        bundle: list[Certificate] = []
        for block in pem_blocks(data):
            if block.type != "CERTIFICATE" or block.headers:
                continue
            bundle.append(parse_certificate(block.data))
        if not bundle:
            raise CertParseError("does not contain a valid PEM encoded certificate")
        return bundle
    return [parse_certificate(data)]


def parse_certificate_request_data(data: bytes) -> CertificateRequest:
    """pemutil.ParseCertificateRequest: the first *CERTIFICATE REQUEST block, else DER."""
    if b"-----BEGIN " in data:
        for block in pem_blocks(data):
            if block.type.endswith("CERTIFICATE REQUEST"):
                return parse_certificate_request(block.data)
    return parse_certificate_request(data)


# ============================================================================================
# Text (smallstep/certinfo)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def go_validity_time(when: datetime) -> str:
    """Go layout "Jan 2 15:04:05 2006 MST" in UTC."""
    return (
        f"{_MONTHS[when.month - 1]} {when.day} {when.hour:02d}:{when.minute:02d}:"
        f"{when.second:02d} {when.year:04d} UTC"
    )


def go_rfc3339(when: datetime) -> str:
    return f"{when.year:04d}-{when.strftime('%m-%dT%H:%M:%S')}Z"


def _int_bytes(value: int) -> bytes:
    """big.Int.Bytes(): magnitude, big-endian, no leading zeros."""
    value = abs(value)
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _hex_block(data: bytes, per_line: int, indent: int, out: list[str]) -> None:
    """certinfo's colon-separated hex dump; starts each row on a new line."""
    pieces = [f"{b:02x}" for b in data]
    text = ""
    for i, piece in enumerate(pieces):
        if i % per_line == 0:
            text += "\n" + " " * indent
        text += piece
        if i != len(pieces) - 1:
            text += ":"
    out.append(text)


def go_runes(data: bytes) -> str:
    """Go's bytes.Runes: valid UTF-8 decoded, every invalid byte a separate U+FFFD."""
    out: list[str] = []
    index = 0
    while index < len(data):
        lead = data[index]
        size = 1 if lead < 0x80 else 2 if 0xC2 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4
        if lead < 0x80:
            out.append(chr(lead))
            index += 1
            continue
        if 0x80 <= lead < 0xC2 or lead > 0xF4:
            out.append("\ufffd")
            index += 1
            continue
        try:
            out.append(data[index : index + size].decode("utf-8"))
            index += size
        except UnicodeDecodeError:
            out.append("\ufffd")
            index += 1
    return "".join(out)


def _go_printable(text: str) -> str:
    """certinfo's sanitising of raw extension bytes: non-printable runes become '.'."""
    return "".join(ch if (ch == " " or ch.isprintable()) and ch != "\ufffd" else "." for ch in text)


def _format_name(name: Name) -> str:
    values: list[str] = []
    for attribute in flat(name):
        oid, value = attribute.oid, attribute.value
        if oid.startswith("2.5.4.") and oid.count(".") == 3:
            label = {
                "3": "CN",
                "5": "SERIALNUMBER",
                "6": "C",
                "7": "L",
                "8": "ST",
                "9": "STREET",
                "10": "O",
                "11": "OU",
                "17": "POSTALCODE",
            }.get(oid.rsplit(".", 1)[1])
            values.append(f"{label}={value}" if label else f"UnknownOID={oid}")
        elif oid == "1.2.840.113549.1.9.1":
            values.append(f"emailAddress={value}")
        elif oid == "0.9.2342.19200300.100.1.25":
            values.append(f"DC={value}")
        elif oid == "0.9.2342.19200300.100.1.1":
            values.append(f"UID={value}")
        else:
            values.append(f"{oid}={value}")
    return ",".join(values)


def _print_name(name: Name, out: list[str]) -> None:
    """printName: values joined by ',' and a newline; nothing at all for an empty name."""
    text = _format_name(name)
    if text:
        out.append(text + "\n")


def _key_printer(label: str, value: int, out: list[str]) -> None:
    out.append(" " * 16 + f"{label}:")
    _hex_block(_int_bytes(value), 15, 20, out)
    out.append("\n")


def _print_subject_information(
    subject: Name, key: PublicKeyInfo, is_csr: bool, out: list[str]
) -> None:
    out.append(" " * 8 + "Subject:")
    if flat(subject):
        out.append(" ")
        _print_name(subject, out)
    else:
        out.append("\n")
    out.append(" " * 8 + "Subject Public Key Info:\n" + " " * 12 + "Public Key Algorithm: ")
    pk = key.key
    if isinstance(pk, rsa.RSAPublicKey):
        numbers = pk.public_numbers()
        out.append("RSA\n")
        out.append(" " * 16 + f"Public-Key: ({numbers.n.bit_length()} bit)\n")
        out.append(" " * 16 + "Modulus:")
        _hex_block(_int_bytes(numbers.n), 15, 20, out)
        out.append("\n" + " " * 16 + f"Exponent: {numbers.e} ({numbers.e:#x})\n")
    elif isinstance(pk, dsa.DSAPublicKey):
        numbers_dsa = pk.public_numbers()
        params = numbers_dsa.parameter_numbers
        out.append("DSA\n")
        for label, value in (
            ("pub", numbers_dsa.y),
            ("P", params.p),
            ("Q", params.q),
            ("G", params.g),
        ):
            _key_printer(label, value, out)
    elif isinstance(pk, ec.EllipticCurvePublicKey):
        point = pk.public_numbers()
        out.append("ECDSA\n")
        out.append(" " * 16 + f"Public-Key: ({key.curve_bits} bit)\n")
        _key_printer("X", point.x, out)
        _key_printer("Y", point.y, out)
        out.append(" " * 16 + f"Curve: {key.curve}\n")
    elif isinstance(pk, ed25519.Ed25519PublicKey):
        out.append("Ed25519\n")
        out.append(" " * 16 + f"Public-Key: ({len(key.key_bytes)} bit)")
        _hex_block(key.key_bytes, 15, 20, out)
        out.append("\n")
    else:
        out.append(key.display_algorithm + "\n")
        if not is_csr:
            out.append(" " * 16 + "Public-Key:\n")
        out.append(" " * 16 + "Raw Bytes:")
        _hex_block(key.key_bytes, 15, 20, out)
        out.append("\n")


def _critical(name: str, critical: bool, out: list[str], indent: int = 12) -> None:
    out.append(" " * indent + name + (": critical\n" if critical else ":\n"))


def _colon_hex_upper(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def _print_sans(extension: Extension, names: GeneralNames, out: list[str]) -> None:
    _critical("X509v3 Subject Alternative Name", extension.critical, out)
    pad = " " * 16
    if names.dns:
        out.append(pad + ", ".join(f"DNS:{n}" for n in names.dns) + "\n")
    if names.emails:
        out.append(pad + ", ".join(f"email:{n}" for n in names.emails) + "\n")
    if names.ips:
        out.append(pad + ", ".join(f"IP Address:{ip_string(n)}" for n in names.ips) + "\n")
    if names.uris:
        out.append(pad + ", ".join(f"URI:{n}" for n in names.uris) + "\n")
    for item in names.raw:
        if item.tag == 0:
            _print_other_name(item, out)
        elif item.tag == 4 and item.constructed:
            _print_tpm_attributes(item, out)


def _print_other_name(item: Element, out: list[str]) -> None:
    try:
        parts = children(item)
        type_id = decode_oid(_expect(parts[0], _OID, "").content)
        if len(parts) != 2 or not parts[1].is_context(0):
            return
    except (CertParseError, IndexError):
        return
    inner = parts[1].content
    pad = " " * 16

    def raw_line() -> None:
        out.append(pad + f"OtherName: Type: {type_id}, Value: 0x{inner.hex()}\n")

    try:
        if type_id == "1.3.6.1.5.5.7.8.3":  # permanent identifier
            fields_ = children(_expect(parse_one(inner), _SEQUENCE, ""))
            text, assigner = "", ""
            for part in fields_:
                if part.is_universal(_UTF8):
                    text = decode_string(part)
                elif part.is_universal(_OID):
                    assigner = decode_oid(part.content)
            line = pad + f"Permanent Identifier: {text}" if text else ""
            if assigner:
                line += f", Assigner: {assigner}"
            out.append(line + "\n")
        elif type_id == "1.3.6.1.5.5.7.8.4":  # hardware module name
            fields_ = children(_expect(parse_one(inner), _SEQUENCE, ""))
            hw_type = decode_oid(_expect(fields_[0], _OID, "").content)
            serial = _expect(fields_[1], _OCTET_STRING, "").content.decode("utf-8", "replace")
            out.append(pad + f"Hardware Module Name: Type: {hw_type}, Serial Number: {serial}\n")
        elif type_id == "1.3.6.1.4.1.311.20.2.3":  # UPN
            out.append(pad + f"UPN: {decode_string(_expect(parse_one(inner), _UTF8, ''))}\n")
        elif type_id == "1.3.6.1.4.1.57264.1.7":  # sigstore
            out.append(pad + f"Sigstore Identity: {decode_string(parse_one(inner))}\n")
        else:
            raw_line()
    except (CertParseError, IndexError):
        raw_line()


_TPM_ATTRIBUTES = {
    "2.23.133.2.1": "TPM Manufacturer",
    "2.23.133.2.2": "TPM Model",
    "2.23.133.2.3": "TPM Version",
}


def _print_tpm_attributes(item: Element, out: list[str]) -> None:
    try:
        for rdn in children(parse_one(item.content)):
            for atv in children(rdn):
                parts = children(atv)
                label = _TPM_ATTRIBUTES.get(decode_oid(parts[0].content))
                if label:
                    out.append(" " * 16 + f"{label}: {decode_string(parts[1])}\n")
    except (CertParseError, IndexError):
        return


def _print_sct_list(extension: Extension, out: list[str]) -> None:
    _critical("RFC6962 Certificate Transparency SCT", extension.critical, out)
    error = CertParseError(f'certinfo: Error parsing OID "{extension.oid}"')
    try:
        scts = parse_sct_list(parse_octet_string(extension.value))
    except (CertParseError, IndexError):
        raise error from None
    for index, sct in enumerate(scts):
        out.append(" " * 16 + f"SCT [{index}]:\n")
        version = "V1" if sct.version == 0 else f"UnknownVersion({sct.version})"
        out.append(" " * 20 + f"Version: {version} ({sct.version:#x})\n")
        out.append(" " * 20 + f"LogID: {base64.b64encode(sct.log_id).decode()}\n")
        try:
            when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=sct.timestamp)
        except OverflowError:
            raise CertParseError("certinfo: SCT timestamp out of range") from None
        stamp = (
            f"{_MONTHS[when.month - 1]} {when.day} {when.hour:02d}:{when.minute:02d}:"
            f"{when.second:02d}.{when.microsecond // 1000:03d} {when.year:04d} UTC"
        )
        out.append(" " * 20 + f"Timestamp: {stamp}\n")
        hash_names = ("None", "MD5", "SHA1", "SHA224", "SHA256", "SHA384", "SHA512")
        sig_names = ("Anonymous", "RSA", "DSA", "ECDSA")
        hash_name = (
            hash_names[sct.hash_algorithm]
            if sct.hash_algorithm < len(hash_names)
            else f"UNKNOWN({sct.hash_algorithm})"
        )
        sig_name = (
            sig_names[sct.signature_algorithm]
            if sct.signature_algorithm < len(sig_names)
            else f"UNKNOWN({sct.signature_algorithm})"
        )
        out.append(" " * 20 + f"Signature Algorithm: {hash_name}-{sig_name}")
        _hex_block(sct.signature, 18, 22, out)
        out.append("\n")


@dataclass(frozen=True)
class SCT:
    version: int
    log_id: bytes
    timestamp: int
    extensions: bytes
    hash_algorithm: int
    signature_algorithm: int
    signature: bytes

    def digitally_signed(self) -> bytes:
        return (
            bytes([self.hash_algorithm, self.signature_algorithm])
            + len(self.signature).to_bytes(2, "big")
            + self.signature
        )


def parse_sct_list(data: bytes) -> list[SCT]:
    """RFC 6962 SignedCertificateTimestampList (TLS encoding)."""

    def take(buf: bytes, pos: int, size: int) -> tuple[bytes, int]:
        if pos + size > len(buf):
            raise CertParseError("malformed SCT list")
        return buf[pos : pos + size], pos + size

    def vector(buf: bytes, pos: int) -> tuple[bytes, int]:
        raw_len, pos = take(buf, pos, 2)
        return take(buf, pos, int.from_bytes(raw_len, "big"))

    body, end = vector(data, 0)
    if end != len(data) or not body:
        raise CertParseError("malformed SCT list")
    out: list[SCT] = []
    pos = 0
    while pos < len(body):
        item, pos = vector(body, pos)
        if not item or item[0] != 0:
            raise CertParseError("unknown SCT version")
        log_id, p = take(item, 1, 32)
        stamp, p = take(item, p, 8)
        exts, p = vector(item, p)
        algs, p = take(item, p, 2)
        sig, p = vector(item, p)
        if p != len(item):
            raise CertParseError("trailing data in SCT")
        out.append(SCT(0, log_id, int.from_bytes(stamp, "big"), exts, algs[0], algs[1], sig))
    return out


def _step_provisioner_text(extension: Extension, out: list[str]) -> None:
    _critical("X509v3 Step Provisioner", extension.critical, out)
    try:
        value = ProvisionerExtension.from_der(extension.value)
    except ValueError:
        raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
    names = (
        "NOOP",
        "JWK",
        "OIDC",
        "GCP",
        "AWS",
        "Azure",
        "ACME",
        "X5C",
        "K8sSA",
        "SSHPOP",
        "SCEP",
        "Nebula",
    )
    type_number = int(value.type)
    type_name = names[type_number] if 0 <= type_number < len(names) else f"{type_number} (unknown)"
    pad = " " * 16
    out.append(pad + f"Type: {type_name}\n")
    out.append(pad + f"Name: {value.name}\n")
    if value.credential_id:
        out.append(pad + f"CredentialID: {value.credential_id}\n")
    pairs = value.key_value_pairs
    for i in range(0, len(pairs), 2):
        out.append(pad + f"{pairs[i]}: {pairs[i + 1] if i + 1 < len(pairs) else '-'}\n")


def _print_cert_extension(cert: Certificate, extension: Extension, out: list[str]) -> None:
    oid = extension.oid
    pad = " " * 16
    if oid.startswith("2.5.29.") and oid.count(".") == 3:
        arc = int(oid.rsplit(".", 1)[1])
        if arc == 9:
            _critical("X509v3 Subject Directory Attributes", extension.critical, out)
            _print_subject_directory_attributes(extension, out)
        elif arc == 14:
            _critical("X509v3 Subject Key Identifier", extension.critical, out)
            out.append(pad + _colon_hex_upper(cert.subject_key_id) + "\n")
        elif arc == 15:
            _critical("X509v3 Key Usage", extension.critical, out)
            usages = [n for i, n in enumerate(_KEY_USAGE_NAMES) if cert.key_usage & (1 << i)]
            out.append(pad + (", ".join(usages) if usages else "None") + "\n")
        elif arc == 17:
            _print_sans(extension, cert.sans, out)
        elif arc == 19:
            _critical("X509v3 Basic Constraints", extension.critical, out)
            is_ca, max_path = cert.basic_constraints or (False, -1)
            line = pad + ("CA:TRUE" if is_ca else "CA:FALSE")
            if max_path == 0:
                line += ", pathlen:0"
            elif max_path > 0:
                line += f", pathlen:{max_path}"
            out.append(line + "\n")
        elif arc == 30:
            _critical("X509v3 Name Constraints", extension.critical, out)
            _print_cert_name_constraints(cert.name_constraints or NameConstraints(), out)
        elif arc == 31:
            _critical("X509v3 CRL Distribution Points", extension.critical, out)
            if cert.crl_distribution_points:
                out.append(pad + "Full Name:\n" + " " * 18)
                out.append(", ".join(f"URI:{u}" for u in cert.crl_distribution_points) + "\n")
        elif arc == 32:
            _critical("X509v3 Certificate Policies", extension.critical, out)
            for policy in cert.policies:
                out.append(pad + f"Policy: {policy.oid}\n")
        elif arc == 35:
            _critical("X509v3 Authority Key Identifier", extension.critical, out)
            key_id = cert.authority_key_id
            out.append((pad + _colon_hex_upper(key_id) if key_id else "") + "\n")
        elif arc == 37:
            _critical("X509v3 Extended Key Usage", extension.critical, out)
            known = [_EXT_KEY_USAGE_GO[o] for o in cert.ext_key_usage if o in _EXT_KEY_USAGE_GO]
            unknown = [
                "EK Certificate" if o == _OID_EK_CERTIFICATE else o
                for o in cert.ext_key_usage
                if o not in _EXT_KEY_USAGE_GO
            ]
            if known or unknown:
                out.append(pad + ", ".join(known + unknown) + "\n")
        else:
            out.append(f"Unknown extension 2.5.29.{arc}\n")
        return

    simple_labels = {
        "1.3.6.1.4.1.57264.1.1": "Sigstore OIDC Issuer",
        "1.3.6.1.4.1.57264.1.2": "Sigstore GitHub Workflow Trigger",
        "1.3.6.1.4.1.57264.1.3": "Sigstore GitHub Workflow SHA Hash",
        "1.3.6.1.4.1.57264.1.4": "Sigstore GitHub Workflow Name",
        "1.3.6.1.4.1.57264.1.5": "Sigstore GitHub Workflow Repository",
        "1.3.6.1.4.1.57264.1.6": "Sigstore GitHub Workflow Ref",
    }
    if oid == "1.3.6.1.5.5.7.1.1":
        _critical("Authority Information Access", extension.critical, out)
        if cert.aia.ocsp:
            out.append(pad + "OCSP - " + ",".join(f"URI:{u}" for u in cert.aia.ocsp) + "\n")
        if cert.aia.issuers:
            out.append(
                pad + "CA Issuers - " + ",".join(f"URI:{u}" for u in cert.aia.issuers) + "\n"
            )
    elif oid == "2.16.840.1.113730.1.13":
        try:
            comment = decode_string(parse_one(extension.value))
        except CertParseError:
            raise CertParseError(f'certinfo: Error parsing OID "{oid}"') from None
        _critical("Netscape Comment", extension.critical, out)
        out.append(pad + comment + "\n")
    elif oid == OID_STEP_PROVISIONER:
        _step_provisioner_text(extension, out)
    elif oid == "1.3.6.1.4.1.37476.9000.64.2":
        _print_step_ra(extension, out)
    elif oid == "1.3.6.1.4.1.37476.9000.64.3":
        _print_step_managed_endpoint(extension, out)
    elif oid == "1.3.6.1.4.1.37476.9000.64.4":
        _critical("X509v3 Step Managed Device", extension.critical, out)
        try:
            parts = children(_expect(parse_one(extension.value), _SEQUENCE, ""))
            device = decode_string(parts[0])
        except (CertParseError, IndexError):
            raise CertParseError(f'certinfo: Error parsing OID "{oid}"') from None
        out.append(pad + f"DeviceID: {device}\n")
    elif oid == "1.3.6.1.4.1.11129.2.4.2":
        _print_sct_list(extension, out)
    elif oid.startswith("1.3.6.1.4.1.41482.3."):
        _print_yubico(extension, out)
    elif oid in simple_labels:
        _critical(simple_labels[oid], extension.critical, out)
        out.append(pad + extension.value.decode("utf-8", "replace") + "\n")
    else:
        _critical(oid, extension.critical, out)
        out.append(pad + _go_printable(go_runes(extension.value)) + "\n")


def _print_subject_directory_attributes(extension: Extension, out: list[str]) -> None:
    pad = " " * 16
    try:
        attributes = children(_expect(parse_one(extension.value), _SEQUENCE, ""))
        parts = children(_expect(attributes[0], _SEQUENCE, ""))
        attr_type = decode_oid(_expect(parts[0], _OID, "").content)
        attr_value = parts[1]
    except (CertParseError, IndexError):
        out.append(pad + _go_printable(go_runes(extension.value)) + "\n")
        return
    if attr_type == "2.23.133.2.16":
        try:
            spec = children(parse_one(attr_value.content))
            family = decode_string(spec[0])
            level = decode_integer(spec[1].content)
            revision = decode_integer(spec[2].content)
            out.append(
                pad + f"TPM Specification: Family: {family}, Level: {level}, Revision: {revision}\n"
            )
            return
        except (CertParseError, IndexError):
            pass
    out.append(pad + f"{attr_type}: 0x{attr_value.content.hex()}\n")


def _print_cert_name_constraints(constraints: NameConstraints, out: list[str]) -> None:
    for label, names, ips in (
        ("Permitted", constraints.permitted, constraints.permitted_ips),
        ("Excluded", constraints.excluded, constraints.excluded_ips),
    ):
        if not (names.dns or names.emails or names.uris or ips):
            continue
        out.append(" " * 16 + f"{label}:\n")
        pad = " " * 18
        if names.dns:
            out.append(pad + "DNS: " + ", ".join(names.dns) + "\n")
        if names.emails:
            out.append(pad + "Email: " + ", ".join(names.emails) + "\n")
        if names.uris:
            out.append(pad + "URI: " + ", ".join(names.uris) + "\n")
        if ips:
            out.append(pad + "IP Range: " + ", ".join(ip_net_string(i, m) for i, m in ips) + "\n")


def _print_step_ra(extension: Extension, out: list[str]) -> None:
    _critical("X509v3 Step Registration Authority", extension.critical, out)
    try:
        parts = children(_expect(parse_one(extension.value), _SEQUENCE, ""))
        kind = decode_string(parts[0])
        certificate_id = ""
        pairs: list[str] = []
        for part in parts[1:]:
            if part.is_universal(_SEQUENCE):
                pairs = [decode_string(p) for p in children(part)]
            else:
                certificate_id = decode_string(part)
    except (CertParseError, IndexError):
        raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
    pad = " " * 16
    out.append(pad + f"Type: {kind}\n")
    if certificate_id:
        out.append(pad + f"CertificateID: {certificate_id}\n")
    for i in range(0, len(pairs), 2):
        out.append(pad + f"{pairs[i]}: {pairs[i + 1] if i + 1 < len(pairs) else '-'}\n")


def _print_step_managed_endpoint(extension: Extension, out: list[str]) -> None:
    _critical("X509v3 Step Managed Endpoint", extension.critical, out)
    try:
        parts = children(_expect(parse_one(extension.value), _SEQUENCE, ""))
        kind = decode_integer(_expect(parts[0], _INTEGER, "").content)
        endpoint = decode_string(parts[1])
    except (CertParseError, IndexError):
        raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
    kinds = ("Unknown", "Device", "Workload", "People", "Agent", "Account")
    label = kinds[kind] if 0 <= kind < len(kinds) else f"{kind} (unknown)"
    out.append(" " * 16 + f"Kind: {label}\n" + " " * 16 + f"EndpointID: {endpoint}\n")


def _print_yubico(extension: Extension, out: list[str]) -> None:
    arc = extension.oid.rsplit(".", 1)[1]
    value = extension.value
    pad = " " * 16
    if arc == "3":
        _critical("X509v3 YubiKey Firmware Version", extension.critical, out)
        out.append(pad + (".".join(str(b) for b in value) if value else "unknown") + "\n")
    elif arc == "7":
        try:
            serial = decode_integer(_expect(parse_one(value), _INTEGER, "").content)
        except CertParseError:
            raise CertParseError(f'certinfo: Error parsing OID "{extension.oid}"') from None
        _critical("X509v3 YubiKey Serial Number", extension.critical, out)
        out.append(pad + f"{serial}\n")
    elif arc == "8":
        _critical("X509v3 YubiKey Policy", extension.critical, out)
        if not value:
            out.append(pad + "unknown\n")
        pin = {1: "never", 2: "once per session", 3: "always"}
        touch = {1: "never", 2: "always", 3: "once per session"}
        for index, octet in enumerate(value[:2]):
            table, label = (pin, "PIN policy") if index == 0 else (touch, "Touch policy")
            out.append(pad + f"{label}: {table.get(octet, f'unknown (0x{octet:02x})')}\n")
    elif arc == "9":
        _critical("X509v3 YubiKey Formfactor", extension.critical, out)
        out.append(pad + _yubico_formfactor(value) + "\n")
    elif arc == "10":
        _critical("X509v3 YubiKey Certification", extension.critical, out)
        out.append(pad + "FIPS Certified\n")
    elif arc == "11":
        _critical("X509v3 YubiKey Certification", extension.critical, out)
        out.append(pad + "CSPN Certified\n")
    else:
        _critical(extension.oid, extension.critical, out)
        out.append(pad + _go_printable(go_runes(value)) + "\n")


def _yubico_formfactor(value: bytes) -> str:
    if not value:
        return "unknown"
    # certinfo compares against decimal 81..85 (not 0x81..0x85); kept as it is.
    labels = {
        1: "USB-A Keychain",
        2: "USB-A Nano",
        3: "USB-C Keychain",
        4: "USB-C Nano",
        5: "Lightning or USB-C",
    }
    first = value[0]
    base = first - 80 if first in (81, 82, 83, 84, 85) else first
    if base not in labels:
        return f"unknown (0x{first:02x})"
    return labels[base] + (" (FIPS)" if first > 80 else "")


def certificate_text(cert: Certificate) -> str:
    """certinfo.CertificateText."""
    out: list[str] = ["Certificate:\n", " " * 4 + "Data:\n"]
    out.append(" " * 8 + f"Version: {cert.version} ({max(cert.version - 1, 0):#x})\n")
    serial_bytes = _int_bytes(cert.serial)
    serial_hex = "0x" + serial_bytes.hex() if serial_bytes else ""
    out.append(" " * 8 + f"Serial Number: {cert.serial} ({serial_hex})\n")
    algorithm = algorithm_display_name(cert.signature_algorithm)
    out.append(" " * 8 + f"Signature Algorithm: {algorithm}\n")
    out.append(" " * 8 + "Issuer: ")
    _print_name(cert.issuer, out)
    out.append(" " * 8 + "Validity\n")
    out.append(" " * 12 + f"Not Before: {go_validity_time(cert.not_before)}\n")
    out.append(" " * 12 + f"Not After : {go_validity_time(cert.not_after)}\n")
    _print_subject_information(cert.subject, cert.public_key, False, out)
    for label, uid in (
        ("Issuer Unique ID", cert.issuer_unique_id),
        ("Subject Unique ID", cert.subject_unique_id),
    ):
        if uid:
            out.append(" " * 8 + f"{label}: " + ":".join(f"{b:02x}" for b in uid) + "\n")
    if cert.version == 3 and cert.extensions:
        out.append(" " * 8 + "X509v3 extensions:\n")
        for extension in cert.extensions:
            _print_cert_extension(cert, extension, out)
    out.append(" " * 4 + f"Signature Algorithm: {algorithm}")
    _hex_block(cert.signature, 18, 9, out)
    out.append("\n")
    return "".join(out)


_CSR_EKU_NAMES = {
    "2.5.29.37.0": "Any Usage",
    "1.3.6.1.5.5.7.3.1": "Server Authentication",
    "1.3.6.1.5.5.7.3.2": "Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "E-mail Protection",
    "1.3.6.1.5.5.7.3.5": "IPSec End System",
    "1.3.6.1.5.5.7.3.6": "IPSec Tunnel",
    "1.3.6.1.5.5.7.3.7": "IPSec User",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
    "1.3.6.1.4.1.311.10.3.3": "Microsoft Server Gated Crypto",
    "2.16.840.1.113730.4.1": "Netscape Server Gated Crypto",
    "1.3.6.1.4.1.311.2.1.22": "Microsoft Commercial Code Signing",
    "1.3.6.1.4.1.311.61.1.1": "Microsoft Kernel Code Signing",
    "2.23.133.8.1": "EK Certificate",
}


def _print_csr_extension(request: CertificateRequest, extension: Extension, out: list[str]) -> bool:
    """Print a requested extension certinfo knows; False when it belongs under Attributes."""
    oid = extension.oid
    pad = " " * 16
    if oid == "2.5.29.14":
        _critical("X509v3 Subject Key Identifier", extension.critical, out)
        out.append(pad + _colon_hex_upper(parse_octet_string(extension.value)) + "\n")
    elif oid == "2.5.29.17":
        _print_sans(extension, request.sans, out)
    elif oid == "2.5.29.15":
        try:
            usage = parse_key_usage(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Key Usage: failed to decode\n")
            return True
        _critical("X509v3 Key Usage", extension.critical, out)
        usages = [n for i, n in enumerate(_KEY_USAGE_NAMES) if usage & (1 << i)]
        out.append(pad + (", ".join(usages) if usages else "None") + "\n")
    elif oid == "2.5.29.19":
        try:
            is_ca, max_path = parse_basic_constraints(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Basic Constraints: failed to decode\n")
            return True
        _critical("X509v3 Basic Constraints", extension.critical, out)
        line = pad + ("CA:TRUE" if is_ca else "CA:FALSE")
        if max_path == 0:
            line += ", pathlen:0"
        elif max_path > 0:
            line += f", pathlen:{max_path}"
        out.append(line + "\n")
    elif oid == "2.5.29.30":
        try:
            constraints = parse_name_constraints(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Name Constraints: failed to decode\n")
            return True
        excluded = constraints.excluded
        has_excluded = bool(
            excluded.dns
            or excluded.emails
            or excluded.uris
            or excluded.directory_names
            or excluded.registered_ids
            or constraints.excluded_ips
        )
        if has_excluded and extension.critical:
            out.append(
                " " * 12 + "X509v3 Name Constraints: failed to decode: "
                "unexpected excluded name constraints\n"
            )
            return True
        _critical("X509v3 Name Constraints", extension.critical, out)
        permitted = [n for n in constraints.permitted.dns if n]
        if permitted:
            out.append(pad + "Permitted:\n" + " " * 18 + ", ".join(permitted) + "\n")
    elif oid == "2.5.29.37":
        try:
            usages = parse_oid_sequence(extension.value)
        except CertParseError:
            out.append(" " * 12 + "X509v3 Extended Key Usage: failed to decode\n")
            return True
        labels = [_CSR_EKU_NAMES.get(u, f"UNKNOWN({u})") for u in usages]
        _critical("X509v3 Extended Key Usage", extension.critical, out)
        if labels:
            out.append(pad + ", ".join(labels) + "\n")
    else:
        return False
    return True


def certificate_request_text(request: CertificateRequest) -> str:
    """certinfo.CertificateRequestText."""
    out: list[str] = ["Certificate Request:\n", " " * 4 + "Data:\n"]
    out.append(" " * 8 + f"Version: {request.version} ({max(request.version - 1, 0):#x})\n")
    _print_subject_information(request.subject, request.public_key, True, out)
    if request.version == 0 and request.extensions:
        out.append(" " * 8 + "Requested Extensions:\n")
        unknown: list[Extension] = []
        for extension in request.extensions:
            if not _print_csr_extension(request, extension, out):
                unknown.append(extension)
        if unknown:
            out.append(" " * 8 + "Attributes:\n")
            for extension in unknown:
                _critical(extension.oid, extension.critical, out)
                text = go_runes(extension.value)
                sanitized = _go_printable(text)
                out.append(" " * 16 + sanitized + "\n")
                if sanitized != text:
                    out.append(" " * 16 + ":".join(f"{b:02x}" for b in extension.value) + "\n")
    algorithm = algorithm_display_name(request.signature_algorithm)
    out.append(" " * 4 + f"Signature Algorithm: {algorithm}")
    _hex_block(request.signature, 18, 9, out)
    out.append("\n")
    return "".join(out)


# Short ---------------------------------------------------------------------------------------


def abbreviated(value: str) -> str:
    """certinfo's abbreviation: first4...last4 when longer than 8 characters."""
    return value if len(value) <= 8 else f"{value[:4]}...{value[-4:]}"


def _short_sans(cn: str, names: GeneralNames) -> list[str]:
    values = (
        list(names.dns)
        + [ip_string(ip) for ip in names.ips]
        + list(names.emails)
        + list(names.uris)
    )
    return [value for value in values if value != cn]


def _short_subject_lines(cn: str, sans: list[str]) -> list[str]:
    entries = ([cn] if cn else []) + sans
    if not entries:
        return ["  Subject: \n"]
    return [f"  Subject:     {entries[0]}\n"] + [f"               {s}\n" for s in entries[1:]]


def certificate_type(cert: Certificate) -> str:
    """TLS, Root CA (CA whose signature verifies with its own key) or Intermediate CA."""
    if not cert.is_ca:
        return "TLS"
    key_usage_ok = cert.key_usage == 0 or bool(cert.key_usage & (1 << 5))
    if key_usage_ok and verify_signature(
        cert.public_key.key,
        cert.signature_algorithm,
        cert.tbs_raw,
        cert.signature,
        go_std=True,
    ):
        return "Root CA"
    return "Intermediate CA"


def certificate_short_text(cert: Certificate) -> str:
    """certinfo.CertificateShortText."""
    cn = common_name(cert.subject)
    out = [
        f"X.509v3 {certificate_type(cert)} Certificate ({cert.public_key.short_label()}) "
        f"[Serial: {abbreviated(str(cert.serial))}]\n"
    ]
    out.extend(_short_subject_lines(cn, _short_sans(cn, cert.sans)))
    out.append(f"  Issuer:      {common_name(cert.issuer)}\n")
    if cert.provisioner is not None:
        provisioner = cert.provisioner
        credential = abbreviated(provisioner.credential_id)
        if credential:
            out.append(f"  Provisioner: {provisioner.name} [ID: {credential}]\n")
        else:
            out.append(f"  Provisioner: {provisioner.name}\n")
    out.append(f"  Valid from:  {go_rfc3339(cert.not_before)}\n")
    out.append(f"          to:  {go_rfc3339(cert.not_after)}\n")
    return "".join(out)


def certificate_request_short_text(request: CertificateRequest) -> str:
    """certinfo.CertificateRequestShortText."""
    cn = common_name(request.subject)
    out = [f"X.509v3 Certificate Signing Request ({request.public_key.short_label()})\n"]
    out.extend(_short_subject_lines(cn, _short_sans(cn, request.sans)))
    return "".join(out)


# ============================================================================================
# JSON (smallstep/zcrypto's x509.Certificate)


def go_json(value: object) -> str:
    """Go's json.Encoder with SetIndent("", "  "): HTML-safe escapes and a trailing newline."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text + "\n"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


_DN_SHORT_NAMES: dict[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.13": "description",
    "2.5.4.14": "searchGuide",
    "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress",
    "2.5.4.17": "postalCode",
    "2.5.4.18": "postOfficeBox",
    "2.5.4.19": "physicalDeliveryOfficeName",
    "2.5.4.20": "telephoneNumber",
    "2.5.4.41": "name",
    "2.5.4.42": "GN",
    "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier",
    "2.5.4.45": "x500UniqueIdentifier",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
    "2.5.4.72": "role",
    "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionLocality",
    "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionStateOrProvince",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionCountry",
}

# zcrypto's auxName fields, in their JSON order.
_NAME_JSON_FIELDS: tuple[tuple[str, str], ...] = (
    ("common_name", "2.5.4.3"),
    ("serial_number", "2.5.4.5"),
    ("country", "2.5.4.6"),
    ("locality", "2.5.4.7"),
    ("province", "2.5.4.8"),
    ("street_address", "2.5.4.9"),
    ("organization", "2.5.4.10"),
    ("organizational_unit", "2.5.4.11"),
    ("postal_code", "2.5.4.17"),
    ("domain_component", "0.9.2342.19200300.100.1.25"),
    ("email_address", "1.2.840.113549.1.9.1"),
    ("given_name", "2.5.4.42"),
    ("surname", "2.5.4.4"),
    ("jurisdiction_country", "1.3.6.1.4.1.311.60.2.1.3"),
    ("jurisdiction_locality", "1.3.6.1.4.1.311.60.2.1.1"),
    ("jurisdiction_province", "1.3.6.1.4.1.311.60.2.1.2"),
)


def name_json(name: Name) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    attributes = flat(name)
    for key, oid in _NAME_JSON_FIELDS:
        values = [a.value for a in attributes if a.oid == oid]
        if values:
            out[key] = values
    return out


def name_dn(name: Name) -> str:
    """zcrypto's pkix.Name.String(): "CN=a, O=b" in certificate order."""
    return ", ".join(f"{_DN_SHORT_NAMES.get(a.oid, a.oid)}={a.value}" for a in flat(name))


_SIGNATURE_JSON_OIDS = {
    # zcrypto marshals the *last* OID listed for an algorithm: for SHA1-RSA that is the ISO one.
    "SHA1-RSA": "1.3.14.3.2.29",
    "SHA256-RSAPSS": _OID_RSA_PSS,
    "SHA384-RSAPSS": _OID_RSA_PSS,
    "SHA512-RSAPSS": _OID_RSA_PSS,
}


def _signature_algorithm_json(algorithm: AlgorithmIdentifier) -> dict[str, str]:
    scheme = signature_scheme(algorithm)
    if not scheme.name:
        return {"name": "0", "oid": ""}
    oid = _SIGNATURE_JSON_OIDS.get(scheme.name)
    if oid is None:
        oid = next(o for o, v in _SIGNATURE_ALGORITHMS.items() if v[0] == scheme.name)
    return {"name": scheme.name, "oid": oid}


def _key_algorithm_name(key: PublicKeyInfo) -> str:
    if key.algorithm:
        return key.algorithm
    return "X25519" if key.algorithm_oid == "1.3.101.110" else "unknown_algorithm"


def _curve_parameters(curve: ec.EllipticCurve) -> dict[str, int]:
    """Domain parameters (p, n, b, gx, gy) of a NIST prime curve, derived at run time."""
    p = {
        "secp224r1": 2**224 - 2**96 + 1,
        "secp256r1": 2**256 - 2**224 + 2**192 + 2**96 - 1,
        "secp384r1": 2**384 - 2**128 - 2**96 + 2**32 - 1,
        "secp521r1": 2**521 - 1,
    }[curve.name]
    generator = ec.derive_private_key(1, curve).public_key().public_numbers()
    gx, gy = generator.x, generator.y
    b = (gy * gy - gx**3 + 3 * gx) % p
    return {"p": p, "n": _CURVE_ORDERS[curve.name], "b": b, "gx": gx, "gy": gy}


_CURVE_ORDERS = {
    "secp224r1": int("ffffffffffffffffffffffffffff16a2e0b8f03e13dd29455c5c2a3d", 16),
    "secp256r1": int("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551", 16),
    "secp384r1": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
        16,
    ),
    "secp521r1": int(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        16,
    ),
}


def _subject_key_info_json(key: PublicKeyInfo) -> dict[str, object]:
    out: dict[str, object] = {"key_algorithm": {"name": _key_algorithm_name(key)}}
    pk = key.key
    if isinstance(pk, rsa.RSAPublicKey):
        numbers = pk.public_numbers()
        modulus = _int_bytes(numbers.n)
        out["rsa_public_key"] = {
            "exponent": numbers.e,
            "modulus": _b64(modulus),
            "length": len(modulus) * 8,
        }
    elif isinstance(pk, dsa.DSAPublicKey):
        dsa_numbers = pk.public_numbers()
        params = dsa_numbers.parameter_numbers
        out["dsa_public_key"] = {
            "g": _b64(_int_bytes(params.g)),
            "p": _b64(_int_bytes(params.p)),
            "q": _b64(_int_bytes(params.q)),
            "y": _b64(_int_bytes(dsa_numbers.y)),
        }
    elif isinstance(pk, ec.EllipticCurvePublicKey):
        point = pk.public_numbers()
        curve = _curve_parameters(pk.curve)
        out["ecdsa_public_key"] = {
            "b": _b64(_int_bytes(curve["b"])),
            "curve": key.curve,
            "gx": _b64(_int_bytes(curve["gx"])),
            "gy": _b64(_int_bytes(curve["gy"])),
            "length": key.curve_bits,
            "n": _b64(_int_bytes(curve["n"])),
            "p": _b64(_int_bytes(curve["p"])),
            "pub": _b64(key.key_bytes),
            "x": _b64(_int_bytes(point.x)),
            "y": _b64(_int_bytes(point.y)),
        }
    out["fingerprint_sha256"] = hashlib.sha256(key.raw).hexdigest()
    return out


def _general_names_json(names: GeneralNames) -> dict[str, object]:
    out: dict[str, object] = {}
    if names.directory_names:
        out["directory_names"] = [name_json(n) for n in names.directory_names]
    if names.dns:
        out["dns_names"] = list(names.dns)
    if names.edi_party_names:
        out["edi_party_names"] = [
            ({"name_assigner": e.name_assigner} if e.name_assigner else {})
            | {"party_name": e.party_name}
            for e in names.edi_party_names
        ]
    if names.emails:
        out["email_addresses"] = list(names.emails)
    if names.ips:
        out["ip_addresses"] = [ip_string(ip) for ip in names.ips]
    if names.other_names:
        out["other_names"] = [
            {"id": o.type_id} | ({"value": _b64(o.value)} if o.value else {})
            for o in names.other_names
        ]
    if names.registered_ids:
        out["registered_ids"] = list(names.registered_ids)
    if names.uris:
        out["uniform_resource_identifiers"] = list(names.uris)
    return out


def _ip_subtree_json(ip: bytes, mask: bytes) -> dict[str, str]:
    out = {"cidr": ip_net_string(ip, mask)}
    masked = bytes(a & b for a, b in zip(ip, mask, strict=True))
    top = bytes(a | (~b & 0xFF) for a, b in zip(ip, mask, strict=True))
    ones = bin(int.from_bytes(mask, "big")).count("1")
    width = len(mask) * 8
    if int.from_bytes(mask, "big") != ((1 << width) - 1) ^ ((1 << (width - ones)) - 1):
        return out
    out["begin"] = ip_string(masked)
    out["end"] = ip_string(top)
    out["mask"] = ip_string(mask)
    return out


def _name_constraints_json(critical: bool, nc: NameConstraints) -> dict[str, object]:
    out: dict[str, object] = {"critical": critical}
    for prefix, names, ips in (
        ("permitted", nc.permitted, nc.permitted_ips),
        ("excluded", nc.excluded, nc.excluded_ips),
    ):
        if names.dns:
            out[f"{prefix}_names"] = list(names.dns)
        if names.emails:
            out[f"{prefix}_email_addresses"] = list(names.emails)
        if ips:
            out[f"{prefix}_ip_addresses"] = [_ip_subtree_json(i, m) for i, m in ips]
        if names.directory_names:
            out[f"{prefix}_directory_names"] = [name_json(n) for n in names.directory_names]
        if names.registered_ids:
            out[f"{prefix}_registred_id"] = list(names.registered_ids)
    return out


# zcrypto's auxExtendedKeyUsage fields (JSON order) with their OIDs.
_EKU_JSON_FIELDS: tuple[tuple[str, str], ...] = (
    ("eap_over_ppp", "1.3.6.1.5.5.7.3.13"),
    ("ocsp_signing", "1.3.6.1.5.5.7.3.9"),
    ("apple_software_update_signing", "1.2.840.113635.100.4.1.2"),
    ("apple_crypto_test_env", "1.2.840.113635.100.4.5.3"),
    ("microsoft_embedded_nt_crypto", "1.3.6.1.4.1.311.10.3.8"),
    ("microsoft_drm_individualization", "1.3.6.1.4.1.311.10.5.2"),
    ("microsoft_key_recovery_21", "1.3.6.1.4.1.311.21.6"),
    ("apple_crypto_production_env", "1.2.840.113635.100.4.5.1"),
    ("apple_crypto_tier1_qos", "1.2.840.113635.100.4.6.2"),
    ("client_auth", "1.3.6.1.5.5.7.3.2"),
    ("code_signing", "1.3.6.1.5.5.7.3.3"),
    ("apple_crypto_development_env", "1.2.840.113635.100.4.5.4"),
    ("apple_crypto_tier0_qos", "1.2.840.113635.100.4.6.1"),
    ("apple_crypto_tier2_qos", "1.2.840.113635.100.4.6.3"),
    ("microsoft_mobile_device_software", "1.3.6.1.4.1.311.10.3.14"),
    ("microsoft_nt5_crypto", "1.3.6.1.4.1.311.10.3.6"),
    ("apple_code_signing_third_party", "1.2.840.113635.100.4.1.3"),
    ("microsoft_timestamp_signing", "1.3.6.1.4.1.311.10.3.2"),
    ("microsoft_root_list_signer", "1.3.6.1.4.1.311.10.3.9"),
    ("microsoft_system_health", "1.3.6.1.4.1.311.47.1.1"),
    ("time_stamping", "1.3.6.1.5.5.7.3.8"),
    ("apple_code_signing_development", "1.2.840.113635.100.4.1.1"),
    ("apple_crypto_qos", "1.2.840.113635.100.4.6"),
    ("microsoft_document_signing", "1.3.6.1.4.1.311.10.3.12"),
    ("microsoft_encrypted_file_system", "1.3.6.1.4.1.311.10.3.4"),
    ("microsoft_whql_crypto", "1.3.6.1.4.1.311.10.3.5"),
    ("netscape_server_gated_crypto", "2.16.840.1.113730.4.1"),
    ("apple_crypto_tier3_qos", "1.2.840.113635.100.4.6.4"),
    ("microsoft_smart_display", "1.3.6.1.4.1.311.10.3.15"),
    ("microsoft_efs_recovery", "1.3.6.1.4.1.311.10.3.4.1"),
    ("microsoft_kernel_mode_code_signing", "1.3.6.1.4.1.311.61.1.1"),
    ("server_auth", "1.3.6.1.5.5.7.3.1"),
    ("ipsec_end_system", "1.3.6.1.5.5.7.3.5"),
    ("ipsec_user", "1.3.6.1.5.5.7.3.7"),
    ("microsoft_qualified_subordinate", "1.3.6.1.4.1.311.10.3.10"),
    ("apple_resource_signing", "1.2.840.113635.100.4.1.4"),
    ("microsoft_oem_whql_crypto", "1.3.6.1.4.1.311.10.3.7"),
    ("microsoft_smartcard_logon", "1.3.6.1.4.1.311.20.2.2"),
    ("email_protection", "1.3.6.1.5.5.7.3.4"),
    ("microsoft_server_gated_crypto", "1.3.6.1.4.1.311.10.3.3"),
    ("microsoft_ca_exchange", "1.3.6.1.4.1.311.21.5"),
    ("dvcs", "1.3.6.1.5.5.7.3.10"),
    ("apple_ichat_signing", "1.2.840.113635.100.4.2"),
    ("apple_ichat_encryption", "1.2.840.113635.100.4.3"),
    ("apple_code_signing", "1.2.840.113635.100.4.1"),
    ("apple_crypto_env", "1.2.840.113635.100.4.5"),
    ("microsoft_system_health_loophole", "1.3.6.1.4.1.311.47.1.3"),
    ("any", "2.5.29.37.0"),
    ("apple_crypto_maintenance_env", "1.2.840.113635.100.4.5.2"),
    ("ipsec_tunnel", "1.3.6.1.5.5.7.3.6"),
    ("microsoft_lifetime_signing", "1.3.6.1.4.1.311.10.3.13"),
    ("microsoft_csp_signature", "1.3.6.1.4.1.311.10.3.16"),
    ("microsoft_sgc_serialized", "1.3.6.1.4.1.311.10.3.3.1"),
    ("sbgp_cert_aa_service_auth", "1.3.6.1.5.5.7.3.11"),
    ("eap_over_lan", "1.3.6.1.5.5.7.3.14"),
    ("microsoft_license_server", "1.3.6.1.4.1.311.10.5.4"),
    ("microsoft_enrollment_agent", "1.3.6.1.4.1.311.20.2.1"),
    ("apple_system_identity", "1.2.840.113635.100.4.4"),
    ("microsoft_key_recovery_3", "1.3.6.1.4.1.311.10.3.11"),
    ("microsoft_cert_trust_list_signing", "1.3.6.1.4.1.311.10.3.1"),
    ("microsoft_drm", "1.3.6.1.4.1.311.10.5.1"),
    ("microsoft_licenses", "1.3.6.1.4.1.311.10.5.3"),
)
_EKU_JSON_OIDS = {oid for _, oid in _EKU_JSON_FIELDS}


def _extended_key_usage_json(usages: Sequence[str]) -> dict[str, object]:
    present = set(usages)
    out: dict[str, object] = {name: True for name, oid in _EKU_JSON_FIELDS if oid in present}
    unknown = [u for u in usages if u not in _EKU_JSON_OIDS]
    if unknown:
        out["unknown"] = unknown
    return out


def _key_usage_json(usage: int) -> dict[str, object]:
    keys = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "certificate_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    out: dict[str, object] = {key: True for i, key in enumerate(keys) if usage & (1 << i)}
    out["value"] = usage
    return out


def _policies_json(policies: Sequence[PolicyInformation]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for policy in policies:
        entry: dict[str, object] = {"id": policy.oid}
        if policy.cps:
            entry["cps"] = list(policy.cps)
        notices: list[dict[str, object]] = []
        for index, text in enumerate(policy.explicit_texts):
            notice: dict[str, object] = {"explicit_text": text} if text else {}
            if policy.notice_refs and index < len(policy.notice_refs):
                organization, numbers = policy.notice_refs[index]
                ref: dict[str, object] = {"organization": organization} if organization else {}
                if numbers:
                    ref["notice_numbers"] = numbers
                notice["notice_reference"] = [ref]
            notices.append(notice)
        if notices:
            entry["user_notice"] = notices
        out.append(entry)
    return out


def _step_provisioner_json(value: ProvisionerExtension) -> dict[str, str]:
    type_number = int(value.type)
    names = {1: "JWK", 2: "OIDC", 3: "GCP", 4: "AWS", 5: "Azure", 6: "ACME", 7: "X5C", 8: "K8sSA"}
    out: dict[str, str] = {
        "type": names.get(type_number, f"Unknown ({type_number:#x})"),
        "name": value.name,
    }
    if value.credential_id:
        out["credentialID"] = value.credential_id
    pairs = value.key_value_pairs
    for i in range(0, len(pairs), 2):
        key = pairs[i]
        if key and "A" <= key[0] <= "Z":
            key = key[0].lower() + key[1:]
        out[key] = pairs[i + 1] if i + 1 < len(pairs) else "-"
    return dict(sorted(out.items()))


def _extensions_json(cert: Certificate) -> tuple[dict[str, object], list[dict[str, object]]]:
    """zcrypto's jsonifyExtensions: known extensions by field, the rest as unknown."""
    known: dict[str, object] = {}
    unknown: list[dict[str, object]] = []
    for extension in cert.extensions:
        oid = extension.oid
        if oid == "2.5.29.15":
            if cert.key_usage:
                known["key_usage"] = _key_usage_json(cert.key_usage)
        elif oid == "2.5.29.19":
            is_ca, max_path = cert.basic_constraints or (False, -1)
            constraints: dict[str, object] = {"is_ca": is_ca}
            if max_path >= 0:
                constraints["max_path_len"] = max_path
            known["basic_constraints"] = constraints
        elif oid == "2.5.29.17":
            sans = parse_general_names(extension.value, strict=True)
            known["subject_alt_name"] = _general_names_json(sans)
        elif oid == "2.5.29.18":
            ian = parse_general_names(extension.value, strict=True)
            known["issuer_alt_name"] = _general_names_json(ian)
        elif oid == "2.5.29.30":
            known["name_constraints"] = _name_constraints_json(
                extension.critical, cert.name_constraints or NameConstraints()
            )
        elif oid == "2.5.29.31":
            if cert.crl_distribution_points:
                known["crl_distribution_points"] = list(cert.crl_distribution_points)
        elif oid == "2.5.29.35":
            if cert.authority_key_id:
                known["authority_key_id"] = cert.authority_key_id.hex()
        elif oid == "2.5.29.14":
            if cert.subject_key_id:
                known["subject_key_id"] = cert.subject_key_id.hex()
        elif oid == "2.5.29.37":
            known["extended_key_usage"] = _extended_key_usage_json(cert.ext_key_usage)
        elif oid == "2.5.29.32":
            known["certificate_policies"] = _policies_json(cert.policies)
        elif oid == "1.3.6.1.5.5.7.1.1":
            aia: dict[str, object] = {}
            if cert.aia.ocsp:
                aia["ocsp_urls"] = list(cert.aia.ocsp)
            if cert.aia.issuers:
                aia["issuer_urls"] = list(cert.aia.issuers)
            known["authority_info_access"] = aia
        elif oid == "1.3.6.1.4.1.11129.2.4.2":
            scts = parse_sct_list(parse_octet_string(extension.value))
            if scts:
                known["signed_certificate_timestamps"] = [_sct_json(s) for s in scts]
        elif oid == "1.3.6.1.4.1.11129.2.4.3":
            known["ct_poison"] = True
        elif oid == OID_STEP_PROVISIONER:
            if cert.provisioner is None:
                raise CertParseError("asn1: malformed step provisioner extension")
            known["step_provisioner"] = _step_provisioner_json(cert.provisioner)
        else:
            entry: dict[str, object] = {"id": oid, "critical": extension.critical}
            if extension.value:
                entry["value"] = _b64(extension.value)
            unknown.append(entry)
    order = (
        "key_usage",
        "basic_constraints",
        "subject_alt_name",
        "issuer_alt_name",
        "name_constraints",
        "crl_distribution_points",
        "authority_key_id",
        "subject_key_id",
        "extended_key_usage",
        "certificate_policies",
        "authority_info_access",
        "ct_poison",
        "signed_certificate_timestamps",
        "step_provisioner",
    )
    return {key: known[key] for key in order if key in known}, unknown


def _sct_json(sct: SCT) -> dict[str, object]:
    out: dict[str, object] = {"version": sct.version, "log_id": _b64(sct.log_id)}
    seconds = sct.timestamp // 1000
    if seconds > 253402300799:
        seconds = 0
    if seconds:
        out["timestamp"] = seconds
    if sct.extensions:
        out["extensions"] = _b64(sct.extensions)
    out["signature"] = _b64(sct.digitally_signed())
    return out


def _tbs_without_ct(cert: Certificate) -> bytes:
    """The TBSCertificate re-encoded without the CT poison and SCT list extensions."""
    drop = {"1.3.6.1.4.1.11129.2.4.2", "1.3.6.1.4.1.11129.2.4.3"}
    if not any(e.oid in drop for e in cert.extensions):
        return cert.tbs_raw
    pieces: list[bytes] = []
    for part in cert.tbs_parts:
        if part.is_context(3) and part.constructed:
            kept = [
                item.raw
                for item in children(parse_one(part.content))
                if parse_extension(item).oid not in drop
            ]
            if kept:
                pieces.append(_tlv(0xA3, _tlv(0x30, b"".join(kept))))
        else:
            pieces.append(part.raw)
    return _tlv(0x30, b"".join(pieces))


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + body


_CABF_EV = {"2.23.140.1.1", "2.23.140.1.3", "2.23.140.1.31"}
_CABF_OV = {"2.23.140.1.2.2", "2.23.140.1.2.3"}
_CABF_DV = {"2.23.140.1.2.1"}


def _validation_level(cert: Certificate, self_signed: bool) -> str:
    if cert.extension("2.5.29.32") is None or self_signed:
        return "unknown"
    level = 0
    for policy in cert.policies:
        if policy.oid in _CABF_EV:
            return "EV"
        if policy.oid in _CABF_OV:
            level = max(level, 2)
        elif policy.oid in _CABF_DV:
            level = max(level, 1)
    if level == 0:
        subject = flat(cert.subject)
        organization = [a.value for a in subject if a.oid == "2.5.4.10"]
        units = [a.value for a in subject if a.oid == "2.5.4.11"]
        cn = common_name(cert.subject)
        if (organization and organization[0] == cn) or (
            units and "Domain Control Validated" in units[0]
        ):
            if not any(a.oid in ("2.5.4.7", "2.5.4.8", "2.5.4.17") for a in subject):
                level = 1
        elif (
            organization
            and organization[0] == "Persona Not Validated"
            and "StartCom" in common_name(cert.issuer)
        ):
            level = 1
    return {0: "unknown", 1: "DV", 2: "OV", 3: "EV"}[level]


# govalidator.IsURL (version step builds with), ported to Python's re.
_URL_IP = (
    r"([1-9][0-9]?|1[0-9][0-9]|2[01][0-9]|22[0-3]|24[0-9]|25[0-5])"
    r"(\.([0-9]{1,2}|1[0-9][0-9]|2[0-4][0-9]|25[0-5])){2}"
    r"(?:\.([0-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))"
)
_HEX4 = r"[0-9a-fA-F]{1,4}"
_V4 = r"((25[0-5]|(2[0-4]|1?[0-9])?[0-9])\.){3}(25[0-5]|(2[0-4]|1?[0-9])?[0-9])"
_IPV6 = (
    rf"(({_HEX4}:){{7}}{_HEX4}|({_HEX4}:){{1,7}}:|({_HEX4}:){{1,6}}:{_HEX4}"
    rf"|({_HEX4}:){{1,5}}(:{_HEX4}){{1,2}}|({_HEX4}:){{1,4}}(:{_HEX4}){{1,3}}"
    rf"|({_HEX4}:){{1,3}}(:{_HEX4}){{1,4}}|({_HEX4}:){{1,2}}(:{_HEX4}){{1,5}}"
    rf"|{_HEX4}:((:{_HEX4}){{1,6}})|:((:{_HEX4}){{1,7}}|:)"
    rf"|fe80:(:[0-9a-fA-F]{{0,4}}){{0,4}}%[0-9a-zA-Z]+"
    rf"|::(ffff(:0{{1,4}})?:)?{_V4}|({_HEX4}:){{1,4}}:{_V4})"
)
_U = "a-zA-Z\u00a1-\uffff0-9"
_URL_RE = re.compile(
    r"^((ftp|tcp|udp|wss?|https?)://)?"
    r"([^\t\n\f\r ]+(:[^\t\n\f\r ]*)?@)?"
    rf"(({_URL_IP}|(\[{_IPV6}\])"
    r"|(([a-zA-Z0-9]([a-zA-Z0-9_-]+)?[a-zA-Z0-9]([-.][a-zA-Z0-9]+)*)"
    r"|((www\.)|([a-zA-Z0-9]+([-_.]?[a-zA-Z0-9])*[a-zA-Z0-9]\.[a-zA-Z0-9]+))?)?"
    rf"([{_U}]+(?:--?[{_U}]+)*)(?:\.([a-zA-Z\u00a1-\uffff]+))?))"
    r"\.?(:([0-9]{1,5}))?((/|\?|#)[^\t\n\f\r ]*)?\Z",
    re.ASCII,
)


def _go_is_url(text: str) -> bool:
    if not text or len(text) >= 2083 or len(text.encode()) <= 3 or text.startswith("."):
        return False
    candidate = "http://" + text if ":" in text and "://" not in text else text
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in candidate):
        return False
    _scheme, sep, rest = candidate.partition("://")
    if sep:
        host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
        path = rest[len(host) :] if rest.startswith(host) else ""
    else:
        host, path = "", candidate
    if host.startswith("."):
        return False
    if not host and path and "." not in path:
        return False
    return _URL_RE.match(text) is not None


def _json_names(cert: Certificate) -> list[str]:
    names: list[str] = []
    cn = common_name(cert.subject)

    def valid_name(name: str) -> bool:
        if name.startswith(("?.", "*.")):
            return valid_name(name[2:])
        return _go_is_url(name)

    if valid_name(cn):
        names.append(cn)
    for dns in cert.sans.dns:
        if valid_name(dns) or "." not in dns:
            names.append(dns)
    names.extend(uri for uri in cert.sans.uris if _go_is_url(uri))
    names.extend(ip_string(ip) for ip in cert.sans.ips if _go_is_url(ip_string(ip)))
    return list(dict.fromkeys(names))


def _validity_seconds(start: datetime, end: datetime) -> int:
    """int(time.Sub().Seconds()) with Go's Duration saturation at +-2^63 ns."""
    delta = end - start
    nanoseconds = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    nanoseconds = max(-(2**63), min(2**63 - 1, nanoseconds))
    return int(nanoseconds / 10**9) if abs(nanoseconds) < 2**52 else nanoseconds // 10**9


def _clamped(when: datetime) -> str:
    return go_rfc3339(min(when, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)))


def certificate_json(cert: Certificate) -> dict[str, object]:
    """The object zcrypto's Certificate.MarshalJSON produces, keys in Go's order."""
    extensions, unknown = _extensions_json(cert)
    self_signed = cert.subject_raw == cert.issuer_raw and verify_signature(
        cert.public_key.key,
        cert.tbs_signature_algorithm,
        cert.tbs_raw,
        cert.signature,
        go_std=False,
    )
    signature_algorithm = _signature_algorithm_json(cert.tbs_signature_algorithm)
    out: dict[str, object] = {
        "version": cert.version,
        "serial_number": str(cert.serial),
        "signature_algorithm": signature_algorithm,
        "issuer": name_json(cert.issuer),
    }
    issuer_dn = name_dn(cert.issuer)
    if issuer_dn:
        out["issuer_dn"] = issuer_dn
    out["validity"] = {
        "start": _clamped(cert.not_before),
        "end": _clamped(cert.not_after),
        "length": _validity_seconds(cert.not_before, cert.not_after),
    }
    out["subject"] = name_json(cert.subject)
    subject_dn = name_dn(cert.subject)
    if subject_dn:
        out["subject_dn"] = subject_dn
    out["subject_key_info"] = _subject_key_info_json(cert.public_key)
    out["extensions"] = extensions
    if unknown:
        out["unknown_extensions"] = unknown
    out["signature"] = {
        "signature_algorithm": signature_algorithm,
        "value": _b64(cert.signature),
        "valid": False,
        "self_signed": self_signed,
    }
    out["fingerprint_md5"] = hashlib.md5(cert.raw, usedforsecurity=False).hexdigest()
    out["fingerprint_sha1"] = hashlib.sha1(cert.raw, usedforsecurity=False).hexdigest()
    out["fingerprint_sha256"] = hashlib.sha256(cert.raw).hexdigest()
    out["tbs_noct_fingerprint"] = hashlib.sha256(_tbs_without_ct(cert)).hexdigest()
    out["spki_subject_fingerprint"] = hashlib.sha256(
        cert.public_key.raw + cert.subject_raw
    ).hexdigest()
    out["tbs_fingerprint"] = hashlib.sha256(cert.tbs_raw).hexdigest()
    out["validation_level"] = _validation_level(cert, self_signed)
    names = _json_names(cert)
    if names:
        out["names"] = names
    out["redacted"] = any(name.startswith("?") for name in names)
    return out


def _go_default_public_key(key: PublicKeyInfo) -> object:
    """Go's default JSON of the zcrypto public key value in a CertificateRequest."""
    pk = key.key
    if isinstance(pk, rsa.RSAPublicKey):
        numbers = pk.public_numbers()
        return {"N": numbers.n, "E": numbers.e}
    if isinstance(pk, ec.EllipticCurvePublicKey):
        point = pk.public_numbers()
        return {
            "Pub": {"Curve": {}, "X": point.x, "Y": point.y},
            "Raw": {"Bytes": _b64(key.key_bytes), "BitLength": len(key.key_bytes) * 8},
        }
    if isinstance(pk, ed25519.Ed25519PublicKey):
        return _b64(key.key_bytes)
    if isinstance(pk, dsa.DSAPublicKey):
        numbers_dsa = pk.public_numbers()
        params = numbers_dsa.parameter_numbers
        return {"Parameters": {"P": params.p, "Q": params.q, "G": params.g}, "Y": numbers_dsa.y}
    return None


def _csr_attributes_json(request: CertificateRequest) -> list[dict[str, object]] | None:
    """zcrypto's parseRawAttributes: attributes shaped as SET OF SEQUENCE OF ATV only."""
    out: list[dict[str, object]] = []
    for oid, values in request.attributes:
        try:
            groups: list[list[dict[str, str]]] = []
            for value in values:
                group: list[dict[str, str]] = []
                for atv in children(_expect(value, _SEQUENCE, "")):
                    parts = children(_expect(atv, _SEQUENCE, ""))
                    entry = {"type": decode_oid(_expect(parts[0], _OID, "").content)}
                    if (
                        len(parts) > 1
                        and parts[1].cls == 0
                        and parts[1].tag
                        in (
                            _UTF8,
                            _PRINTABLE,
                            _IA5,
                            _T61,
                            _NUMERIC,
                            _BMP,
                        )
                    ):
                        text = decode_string(parts[1])
                        if text:
                            entry["value"] = text
                    group.append(entry)
                groups.append(group)
        except (CertParseError, IndexError):
            continue
        out.append({"Type": [int(arc) for arc in oid.split(".")], "Value": groups})
    return out or None


def certificate_request_json(request: CertificateRequest) -> dict[str, object]:
    """Go's default encoding of zcrypto's CertificateRequest struct."""
    sans = request.sans
    extensions = [
        {"id": e.oid, "critical": e.critical} | ({"value": _b64(e.value)} if e.value else {})
        for e in request.extensions
    ]
    return {
        "Raw": _b64(request.raw),
        "RawTBSCertificateRequest": _b64(request.tbs_raw),
        "RawSubjectPublicKeyInfo": _b64(request.public_key.raw),
        "RawSubject": _b64(request.subject_raw),
        "Version": request.version,
        "Signature": _b64(request.signature),
        "SignatureAlgorithm": _signature_algorithm_json(request.signature_algorithm),
        "PublicKeyAlgorithm": {"name": _key_algorithm_name(request.public_key)},
        "PublicKey": _go_default_public_key(request.public_key),
        "Subject": name_json(request.subject),
        "Attributes": _csr_attributes_json(request),
        "Extensions": extensions or None,
        "ExtraExtensions": None,
        "DNSNames": list(sans.dns) or None,
        "EmailAddresses": list(sans.emails) or None,
        "IPAddresses": [ip_string(ip) for ip in sans.ips] or None,
    }


def certificates_json(certs: Sequence[Certificate]) -> str:
    """step's JSON output: one object for one certificate, else an array."""
    if len(certs) == 1:
        return go_json(certificate_json(certs[0]))
    return go_json([certificate_json(cert) for cert in certs])
