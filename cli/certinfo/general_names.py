"""GeneralNames (SAN/IAN entries) and Go's textual forms of IP addresses and ranges."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from cli.certinfo.der import (
    TAG_OID,
    TAG_SEQUENCE,
    CertParseError,
    Element,
    children,
    decode_oid,
    decode_string,
    expect,
    parse_one,
)
from cli.certinfo.names import Name, parse_name


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
    for item in children(expect(parse_one(value), TAG_SEQUENCE, "GeneralNames")):
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
        type_id = decode_oid(expect(parts[0], TAG_OID, "otherName type").content)
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


def ip_net_string(ip: bytes, mask: bytes) -> str:
    """Go's net.IPNet.String(): "addr/prefix" or "addr/hexmask" for non-canonical masks."""
    masked = bytes(a & b for a, b in zip(ip, mask, strict=True))
    bits = int.from_bytes(mask, "big")
    width = len(mask) * 8
    ones = bin(bits).count("1")
    canonical = bits == ((1 << width) - 1) ^ ((1 << (width - ones)) - 1)
    address = ip_string(masked) if len(masked) == 16 else str(ipaddress.IPv4Address(masked))
    return f"{address}/{ones}" if canonical else f"{address}/{mask.hex()}"
