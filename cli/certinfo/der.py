"""A small strict DER reader: TLVs, universal tags and the primitive decoders Go accepts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pki import der


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


TAG_SEQUENCE, TAG_SET = 0x10, 0x11
TAG_BOOLEAN, TAG_INTEGER, TAG_BIT_STRING, TAG_OCTET_STRING, TAG_NULL, TAG_OID = 1, 2, 3, 4, 5, 6
TAG_UTF8, TAG_NUMERIC, TAG_PRINTABLE, TAG_T61, TAG_IA5, TAG_UTCTIME, TAG_GENTIME, TAG_BMP = (
    12,
    18,
    19,
    20,
    22,
    23,
    24,
    30,
)


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


def expect(element: Element, tag: int, what: str) -> Element:
    if not element.is_universal(tag):
        raise CertParseError(f"asn1: expected {what}")
    return element


def decode_oid(content: bytes) -> str:
    try:
        return der.read_oid(content)
    except der.DERError as exc:
        raise CertParseError(str(exc)) from None


def decode_integer(content: bytes) -> int:
    try:
        return der.decode_integer(content)
    except der.DERError as exc:
        raise CertParseError(str(exc)) from None


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
    if tag == TAG_UTF8:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise CertParseError("asn1: invalid UTF-8 string") from None
    if tag == TAG_PRINTABLE:
        text = body.decode("latin-1")
        if not re.fullmatch(r"[A-Za-z0-9 '()+,\-./:=?*&]*", text):
            raise CertParseError("asn1: invalid PrintableString")
        return text
    if tag in (TAG_IA5, TAG_NUMERIC):
        if any(b >= 0x80 for b in body):
            raise CertParseError("asn1: invalid IA5String")
        return body.decode("ascii")
    if tag == TAG_T61:
        return body.decode("latin-1")
    if tag == TAG_BMP:
        if len(body) % 2:
            raise CertParseError("asn1: invalid BMPString")
        return body.decode("utf-16-be", errors="replace")
    raise CertParseError(f"asn1: unsupported string type {tag}")


def decode_time(element: Element) -> datetime:
    text = element.content.decode("ascii", errors="replace")
    if element.is_universal(TAG_UTCTIME):
        match = re.fullmatch(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(Z|[+-]\d{4})", text)
        if not match:
            raise CertParseError("x509: malformed UTCTime")
        year = int(match.group(1))
        year += 1900 if year >= 50 else 2000
    elif element.is_universal(TAG_GENTIME):
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
