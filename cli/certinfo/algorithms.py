"""Signature algorithm identifiers: Go's names, hashes and RSA-PSS parameter rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from cli.certinfo.der import (
    TAG_INTEGER,
    TAG_OID,
    TAG_SEQUENCE,
    CertParseError,
    Element,
    children,
    decode_integer,
    decode_oid,
    expect,
    parse_one,
)


@dataclass(frozen=True)
class AlgorithmIdentifier:
    oid: str
    parameters: bytes | None  # full TLV of the parameters, None when absent


def parse_algorithm(element: Element) -> AlgorithmIdentifier:
    parts = children(expect(element, TAG_SEQUENCE, "AlgorithmIdentifier"))
    if not parts or len(parts) > 2:
        raise CertParseError("x509: malformed algorithm identifier")
    oid = decode_oid(expect(parts[0], TAG_OID, "algorithm").content)
    return AlgorithmIdentifier(oid, parts[1].raw if len(parts) == 2 else None)


# Signature algorithms as Go's crypto/x509 names them: OID -> (name, hash, key type).
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "MD5": hashes.MD5,
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
SIGNATURE_ALGORITHMS: dict[str, tuple[str, str, str]] = {
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
OID_RSA_PSS = "1.2.840.113549.1.1.10"
_PSS_HASHES = {
    "2.16.840.1.101.3.4.2.1": ("SHA256", 32),
    "2.16.840.1.101.3.4.2.2": ("SHA384", 48),
    "2.16.840.1.101.3.4.2.3": ("SHA512", 64),
}
_NULL_DER = b"\x05\x00"

# Names certinfo gives algorithms Go's crypto/x509 does not know.
UNKNOWN_ALGORITHM_NAMES: dict[str, str] = {
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
    if algorithm.oid != OID_RSA_PSS:
        known = SIGNATURE_ALGORITHMS.get(algorithm.oid)
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
        salt = decode_integer(expect(fields[2], TAG_INTEGER, "salt").content)
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
    return UNKNOWN_ALGORITHM_NAMES.get(algorithm.oid, algorithm.oid)
