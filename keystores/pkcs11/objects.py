"""Objects in a PKCS#11 token: finding keys, reading their public halves, generating pairs.

The public key is rebuilt from token attributes (RSA modulus; EC and Ed25519 points, which
tokens encode in more than one way), so no private material is ever asked for.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11

from keystores.base import KeyNotFoundError, KeySpec, KeyStoreError, PublicKey
from keystores.pkcs11.keys import KeyRef
from keystores.pkcs11.session import Connection
from pki import der

__all__ = ["describe_type", "find", "generate", "key_uri", "private_key", "public_key"]


_CURVE_OIDS: dict[str, type[ec.EllipticCurve]] = {
    "1.2.840.10045.3.1.7": ec.SECP256R1,
    "1.3.132.0.34": ec.SECP384R1,
    "1.3.132.0.35": ec.SECP521R1,
}
_CURVE_BY_NAME = {"P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34", "P-521": "1.3.132.0.35"}
_ED25519_OID = "1.3.101.112"


def _template(key_id: bytes | None, label: str | None, cls: ObjectClass) -> dict[Attribute, Any]:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: cls}
    if key_id is not None:
        attrs[Attribute.ID] = key_id
    if label is not None:
        attrs[Attribute.LABEL] = label
    return attrs


def find(conn: Connection, key_id: bytes | None, label: str | None, cls: ObjectClass) -> list[Any]:
    return list(conn.session.get_objects(_template(key_id, label, cls)))


def private_key(conn: Connection, ref: KeyRef) -> Any:
    """The private key object (cached per session); KeyNotFoundError if the token has none."""
    cache_key = (ref.id, ref.label)
    cached = conn.keys.get(cache_key)
    if cached is not None:
        return cached
    found = find(conn, ref.id, ref.label, ObjectClass.PRIVATE_KEY)
    if not found:
        conn.token.slot.get_token()  # a vanished token finds nothing: make it raise instead
        hint = "" if conn.logged_in else " (no PIN given: private keys are hidden until login)"
        raise KeyNotFoundError(f"{ref.describe()} not found{hint}")
    if len(found) > 1:
        raise KeyStoreError(f"{len(found)} keys match {ref.describe()}; give both id and object")
    conn.keys[cache_key] = found[0]
    return found[0]


def _unwrap_octets(data: bytes) -> bytes | None:
    """The contents of a DER OCTET STRING spanning `data`, else None (EC_POINT may be either)."""
    try:
        tag, value, end = der.read_tlv(data)
    except der.DERError:
        return None
    return value if tag == der.TAG_OCTET_STRING and end == len(data) else None


def _oid_of(params: bytes) -> str:
    try:
        tag, value, _ = der.read_tlv(params)
        if tag == der.TAG_OID:
            return der.read_oid(value)
    except der.DERError:
        pass
    if params.endswith(b"edwards25519"):  # PKCS#11 3.0 also allows a PrintableString name
        return _ED25519_OID
    raise KeyStoreError("unsupported EC parameters on the token key")


def _ec_public(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    curve = _CURVE_OIDS.get(_oid_of(params))
    if curve is None:
        raise KeyStoreError(f"unsupported curve {_oid_of(params)} on the token key")
    inner = _unwrap_octets(point)
    for candidate in (inner, point):
        if candidate is None:
            continue
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(curve(), candidate)
        except ValueError:
            continue
    raise KeyStoreError("the token key's EC point is malformed")


def _ed25519_public(point: bytes) -> ed25519.Ed25519PublicKey:
    raw = point if len(point) == 32 else _unwrap_octets(point)
    if raw is None or len(raw) != 32:
        raise KeyStoreError("the token key's Ed25519 point is malformed")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _public_object(conn: Connection, private: Any, what: str) -> Any:
    """The public key object paired with `private` (same CKA_ID, else same label)."""
    key_id, label = private[Attribute.ID], private[Attribute.LABEL]
    for attrs in ((key_id or None, label or None), (key_id or None, None)):
        if attrs == (None, None):
            continue
        found = find(conn, *attrs, ObjectClass.PUBLIC_KEY)
        if len(found) == 1:
            return found[0]
    raise KeyStoreError(f"{what}: no single public key object pairs with it in the token")


def public_key(conn: Connection, private: Any, what: str) -> PublicKey:
    key_type = private[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        modulus = int.from_bytes(private[Attribute.MODULUS], "big")
        exponent = int.from_bytes(private[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    if key_type == KeyType.EC:
        public = _public_object(conn, private, what)
        return _ec_public(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
    if key_type == KeyType.EC_EDWARDS:
        public = _public_object(conn, private, what)
        if _oid_of(public[Attribute.EC_PARAMS]) != _ED25519_OID:
            raise KeyStoreError(f"{what}: only Ed25519 Edwards keys are supported")
        return _ed25519_public(public[Attribute.EC_POINT])
    raise KeyStoreError(f"{what}: key type {key_type!r} cannot sign certificates here")


def describe_type(private: Any) -> str:
    """ "EC P-256", "RSA 3072", "Ed25519"...; a key this store cannot read still gets a row."""
    try:
        return _key_type_name(private)
    except (KeyStoreError, p11.AttributeTypeInvalid, p11.AttributeSensitive):
        return "unknown"


def _key_type_name(private: Any) -> str:
    key_type = private[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        return f"RSA {int.from_bytes(private[Attribute.MODULUS], 'big').bit_length()}"
    if key_type == KeyType.EC:
        oid = _oid_of(private[Attribute.EC_PARAMS])
        names = {v: k for k, v in _CURVE_BY_NAME.items()}
        return f"EC {names.get(oid, oid)}"
    if key_type == KeyType.EC_EDWARDS:
        return "Ed25519" if _oid_of(private[Attribute.EC_PARAMS]) == _ED25519_OID else "EdDSA"
    return str(getattr(key_type, "name", key_type))


def key_uri(key_id: bytes | None, label: str | None) -> str:
    """The key URI for ca.json `key` (token and PIN come from `kms.uri`)."""
    parts = []
    if key_id:
        parts.append(f"id={key_id.hex()}")
    if label:
        parts.append(f"object={quote(label, safe='-._~')}")
    return "pkcs11:" + ";".join(parts)


def generate(session: Any, spec: KeySpec, key_id: bytes, label: str) -> tuple[Any, Any]:
    caps = MechanismFlag.SIGN | MechanismFlag.VERIFY
    private_template = {
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    public_template: dict[Attribute, Any] = {Attribute.PRIVATE: False}
    key_length: int | None = None
    if spec.kty == "EC":
        key_type = KeyType.EC
        public_template[Attribute.EC_PARAMS] = der.object_identifier(_CURVE_BY_NAME[spec.curve])
    elif spec.kty == "RSA":
        key_type = KeyType.RSA
        key_length = spec.size
    else:
        key_type = KeyType.EC_EDWARDS
        public_template[Attribute.EC_PARAMS] = der.object_identifier(_ED25519_OID)
    public, private = session.generate_keypair(
        key_type,
        key_length,
        id=key_id,
        label=label,
        store=True,
        capabilities=caps,
        public_template=public_template,
        private_template=private_template,
    )
    return public, private
