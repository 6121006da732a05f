"""The JSON pieces certificates and CSRs share (smallstep/zcrypto's field names and order).

Go's encoder (HTML-safe escapes), base64, names, algorithms and public keys are written the
same way in ``--format json`` of a certificate and of a CSR.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from cli.certinfo.algorithms import (
    OID_RSA_PSS,
    SIGNATURE_ALGORITHMS,
    AlgorithmIdentifier,
    signature_scheme,
)
from cli.certinfo.gofmt import int_bytes
from cli.certinfo.keys import DSAKey, PublicKeyInfo
from cli.certinfo.names import Name, flat


def go_html_escape(text: str) -> str:
    """What Go's encoder does to JSON text: <, >, & and U+2028/U+2029 as \\u escapes."""
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def go_json(value: object) -> str:
    """Go's json.Encoder with SetIndent("", "  "): HTML-safe escapes and a trailing newline."""
    return go_html_escape(json.dumps(value, ensure_ascii=False, indent=2)) + "\n"


def b64(data: bytes) -> str:
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
    "SHA256-RSAPSS": OID_RSA_PSS,
    "SHA384-RSAPSS": OID_RSA_PSS,
    "SHA512-RSAPSS": OID_RSA_PSS,
}


def signature_algorithm_json(algorithm: AlgorithmIdentifier) -> dict[str, str]:
    scheme = signature_scheme(algorithm)
    if not scheme.name:
        return {"name": "0", "oid": ""}
    oid = _SIGNATURE_JSON_OIDS.get(scheme.name)
    if oid is None:
        oid = next(o for o, v in SIGNATURE_ALGORITHMS.items() if v[0] == scheme.name)
    return {"name": scheme.name, "oid": oid}


def key_algorithm_name(key: PublicKeyInfo) -> str:
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


def subject_key_info_json(key: PublicKeyInfo) -> dict[str, object]:
    out: dict[str, object] = {"key_algorithm": {"name": key_algorithm_name(key)}}
    pk = key.key
    if isinstance(pk, rsa.RSAPublicKey):
        numbers = pk.public_numbers()
        modulus = int_bytes(numbers.n)
        out["rsa_public_key"] = {
            "exponent": numbers.e,
            "modulus": b64(modulus),
            "length": len(modulus) * 8,
        }
    elif isinstance(pk, DSAKey):
        out["dsa_public_key"] = {
            "g": b64(int_bytes(pk.g)),
            "p": b64(int_bytes(pk.p)),
            "q": b64(int_bytes(pk.q)),
            "y": b64(int_bytes(pk.y)),
        }
    elif isinstance(pk, ec.EllipticCurvePublicKey):
        point = pk.public_numbers()
        curve = _curve_parameters(pk.curve)
        out["ecdsa_public_key"] = {
            "b": b64(int_bytes(curve["b"])),
            "curve": key.curve,
            "gx": b64(int_bytes(curve["gx"])),
            "gy": b64(int_bytes(curve["gy"])),
            "length": key.curve_bits,
            "n": b64(int_bytes(curve["n"])),
            "p": b64(int_bytes(curve["p"])),
            "pub": b64(key.key_bytes),
            "x": b64(int_bytes(point.x)),
            "y": b64(int_bytes(point.y)),
        }
    out["fingerprint_sha256"] = hashlib.sha256(key.raw).hexdigest()
    return out
