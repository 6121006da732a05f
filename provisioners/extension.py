"""step's provisioner extension (OID 1.3.6.1.4.1.37476.9000.64.1).

step-ca stamps every certificate with the provisioner that authorised it and, at renewal,
reads it back to find that provisioner by name. The DER must be byte-identical to Go's
`encoding/asn1` output so certificates from either CA renew on the other.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property

from cryptography import x509

from pki import der
from pki.der import read_tlv, tlv

PROVISIONER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37476.9000.64.1")
#: step-ca marks the extension non-critical; add it to builders with this flag.
CRITICAL = False

_TAG_INTEGER = 0x02
_TAG_OCTET_STRING = 0x04
_TAG_UTF8_STRING = 0x0C
_TAG_PRINTABLE_STRING = 0x13
_TAG_IA5_STRING = 0x16
_TAG_SEQUENCE = 0x30

# Go's asn1 isPrintable (when marshalling; '*' and '&' are tolerated only when parsing).
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_PRINTABLE_LENIENT = _PRINTABLE | {"*", "&"}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class ProvisionerType(IntEnum):
    """step-ca's provisioner type numbers as written in the extension."""

    JWK = 1
    OIDC = 2
    GCP = 3
    AWS = 4
    AZURE = 5
    ACME = 6
    X5C = 7
    K8SSA = 8
    SSHPOP = 9
    SCEP = 10
    NEBULA = 11


# --------------------------------------------------------------------------------------------
# minimal DER (element reading and framing come from pki.der)


def _encode_string(value: str) -> bytes:
    """PrintableString when every character allows it, else UTF8String (Go's choice)."""
    tag = _TAG_PRINTABLE_STRING if set(value) <= _PRINTABLE else _TAG_UTF8_STRING
    return tlv(tag, value.encode("utf-8"))


def _expect(data: bytes, offset: int, tag: int, what: str) -> tuple[bytes, int]:
    got, body, offset = read_tlv(data, offset)
    if got != tag:
        raise ValueError(f"DER: expected {what} (tag 0x{tag:02x}), got tag 0x{got:02x}")
    return body, offset


def _decode_integer(body: bytes) -> int:
    value = der.decode_integer(body)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError("DER: INTEGER out of range")
    return value


def _decode_utf8(body: bytes, what: str) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"DER: {what} is not valid UTF-8") from None


def _decode_string(tag: int, body: bytes) -> str:
    if tag == _TAG_UTF8_STRING:
        return _decode_utf8(body, "UTF8String")
    if tag == _TAG_PRINTABLE_STRING:
        text = body.decode("latin-1")
        if not set(text) <= _PRINTABLE_LENIENT:
            raise ValueError("DER: PrintableString contains invalid characters")
        return text
    if tag == _TAG_IA5_STRING:
        if any(b >= 0x80 for b in body):
            raise ValueError("DER: IA5String contains non-ASCII bytes")
        return body.decode("ascii")
    raise ValueError(f"DER: expected a string, got tag 0x{tag:02x}")


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvisionerExtension:
    """Which provisioner (type, name, credential such as the JWK kid) issued a certificate."""

    type: int
    name: str
    credential_id: str
    key_value_pairs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.type, bool) or not isinstance(self.type, int):
            raise TypeError("type must be an int")
        if not _INT64_MIN <= self.type <= _INT64_MAX:
            raise ValueError("type out of range")
        if not isinstance(self.name, str) or not isinstance(self.credential_id, str):
            raise TypeError("name and credential_id must be str")
        pairs = self.key_value_pairs
        if isinstance(pairs, str) or not all(isinstance(p, str) for p in pairs):
            raise TypeError("key_value_pairs must be a sequence of str")
        object.__setattr__(self, "key_value_pairs", tuple(pairs))

    def to_der(self) -> bytes:
        """Go `asn1.Marshal` of step's extensionASN1 struct; empty pairs are omitted."""
        body = (
            der.integer(self.type)
            + tlv(_TAG_OCTET_STRING, self.name.encode("utf-8"))
            + tlv(_TAG_OCTET_STRING, self.credential_id.encode("utf-8"))
        )
        if self.key_value_pairs:
            body += tlv(_TAG_SEQUENCE, b"".join(_encode_string(s) for s in self.key_value_pairs))
        return tlv(_TAG_SEQUENCE, body)

    @classmethod
    def from_der(cls, data: bytes) -> ProvisionerExtension:
        """Parse the extension value strictly; any malformation raises ValueError."""
        data = bytes(data)
        seq, end = _expect(data, 0, _TAG_SEQUENCE, "SEQUENCE")
        if end != len(data):
            raise ValueError("DER: trailing data after the extension")
        raw_type, off = _expect(seq, 0, _TAG_INTEGER, "INTEGER type")
        name, off = _expect(seq, off, _TAG_OCTET_STRING, "OCTET STRING name")
        cred, off = _expect(seq, off, _TAG_OCTET_STRING, "OCTET STRING credentialID")
        pairs: list[str] = []
        if off < len(seq):
            kv, off = _expect(seq, off, _TAG_SEQUENCE, "SEQUENCE keyValuePairs")
            inner = 0
            while inner < len(kv):
                tag, body, inner = read_tlv(kv, inner)
                pairs.append(_decode_string(tag, body))
        if off != len(seq):
            raise ValueError("DER: unexpected data after the extension fields")
        type_ = _decode_integer(raw_type)
        with contextlib.suppress(ValueError):  # an unknown (future) type number is still valid
            type_ = ProvisionerType(type_)
        return cls(
            type_,
            _decode_utf8(name, "name"),
            _decode_utf8(cred, "credentialID"),
            tuple(pairs),
        )

    def to_x509_extension(self) -> x509.UnrecognizedExtension:
        """For `CertificateBuilder.add_extension(ext, critical=CRITICAL)`."""
        return self._x509_extension

    @cached_property
    def _x509_extension(self) -> x509.UnrecognizedExtension:
        # Encoded once: a provisioner stamps the same extension on every certificate.
        return x509.UnrecognizedExtension(PROVISIONER_OID, self.to_der())

    @classmethod
    def from_certificate(
        cls, cert: x509.Certificate, *, strict: bool = False
    ) -> ProvisionerExtension | None:
        """The extension of `cert`, or None when it has none.

        Like step-ca, an unparsable extension counts as absent (renewal then falls back to
        the permissive path); pass ``strict=True`` to get the ValueError instead.
        """
        return from_certificate(cert, strict=strict)


def from_certificate(
    cert: x509.Certificate, *, strict: bool = False
) -> ProvisionerExtension | None:
    """See :meth:`ProvisionerExtension.from_certificate`."""
    try:
        ext = cert.extensions.get_extension_for_oid(PROVISIONER_OID)
    except x509.ExtensionNotFound:
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):  # pragma: no cover - defensive
        if strict:
            raise ValueError("provisioner extension has an unexpected type")
        return None
    try:
        return ProvisionerExtension.from_der(value.value)
    except ValueError:
        if strict:
            raise
        return None
