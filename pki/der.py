"""Just enough DER to write and sanity-check PKCS#8 envelopes.

cryptography parses and writes keys but cannot write PBES2 with chosen parameters, so the
envelope around its unencrypted PKCS#8 is built here. Definite lengths only (DER).
"""

from __future__ import annotations

__all__ = [
    "NULL",
    "DERError",
    "integer",
    "null",
    "object_identifier",
    "octet_string",
    "read_oid",
    "read_tlv",
    "sequence",
]

TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_SEQUENCE = 0x30


class DERError(ValueError):
    """Malformed or unexpected DER."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, value: bytes) -> bytes:
    """One tag-length-value element."""
    return bytes([tag]) + _length(len(value)) + value


def sequence(*items: bytes) -> bytes:
    """SEQUENCE of already-encoded elements."""
    return tlv(TAG_SEQUENCE, b"".join(items))


def integer(n: int) -> bytes:
    """Two's-complement INTEGER, minimal length (negative numbers too, as DER requires)."""
    length = max(1, (n + (n < 0)).bit_length() // 8 + 1)
    return tlv(TAG_INTEGER, n.to_bytes(length, "big", signed=True))


def decode_integer(value: bytes) -> int:
    """An INTEGER's contents, refused unless minimally encoded (as Go's asn1 refuses)."""
    if not value:
        raise DERError("asn1: empty integer")
    if len(value) > 1 and (
        (value[0] == 0x00 and value[1] < 0x80) or (value[0] == 0xFF and value[1] >= 0x80)
    ):
        raise DERError("asn1: integer not minimally encoded")
    return int.from_bytes(value, "big", signed=True)


def octet_string(data: bytes) -> bytes:
    return tlv(TAG_OCTET_STRING, data)


def null() -> bytes:
    return tlv(TAG_NULL, b"")


NULL = null()


def object_identifier(dotted: str) -> bytes:
    """OBJECT IDENTIFIER from dotted form, e.g. "1.2.840.113549.1.5.13"."""
    arcs = [int(part) for part in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40):
        raise DERError(f"invalid OID {dotted}")
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(TAG_OID, bytes(body))


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """Read one DER element at `offset`: (tag, value, offset after it).

    Strict DER: single-byte tags, definite and minimally encoded lengths, nothing past the
    end of `data`. Every DER reader in the project goes through this one.
    """
    if offset + 2 > len(data):
        raise DERError("DER: truncated element")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError("DER: multi-byte tags are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0:
            raise DERError("DER: indefinite length is not allowed")
        if count > 8 or pos + count > len(data):
            raise DERError("DER: truncated or oversized length")
        raw = data[pos : pos + count]
        if raw[0] == 0:
            raise DERError("DER: length is not minimally encoded")
        length = int.from_bytes(raw, "big")
        if length < 0x80:
            raise DERError("DER: length is not minimally encoded")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("DER: element runs past the end of its data")
    return tag, data[pos:end], end


def read_oid(value: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's contents, with Go's asn1 strictness."""
    if not value:
        raise DERError("asn1: empty object identifier")
    arcs: list[int] = []
    arc = 0
    for index, byte in enumerate(value):
        if arc == 0 and byte == 0x80:
            raise DERError("asn1: non-minimal OID arc")
        arc = (arc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(arc)
            arc = 0
        elif index == len(value) - 1:
            raise DERError("asn1: truncated OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - first * 40, *arcs[1:]])
