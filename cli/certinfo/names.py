"""X.501 distinguished names as Go's crypto/x509 reads them (attribute order kept)."""

from __future__ import annotations

from dataclasses import dataclass

from cli.certinfo.der import (
    TAG_OID,
    TAG_SEQUENCE,
    TAG_SET,
    CertParseError,
    Element,
    children,
    decode_oid,
    decode_string,
    expect,
)


@dataclass(frozen=True)
class Attribute:
    oid: str
    value: str


Name = list[list[Attribute]]


def parse_name(element: Element) -> Name:
    rdns: Name = []
    for rdn in children(expect(element, TAG_SEQUENCE, "Name")):
        if not rdn.is_universal(TAG_SET):
            raise CertParseError("x509: invalid RDNSequence")
        attributes: list[Attribute] = []
        for atv in children(rdn):
            parts = children(expect(atv, TAG_SEQUENCE, "AttributeTypeAndValue"))
            if len(parts) != 2:
                raise CertParseError("x509: invalid RDNSequence: invalid attribute")
            oid = decode_oid(expect(parts[0], TAG_OID, "attribute type").content)
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
