"""pki.der: the one DER codec; its INTEGER and OID rules are Go's asn1 rules."""

from __future__ import annotations

import pytest

from pki import der


@pytest.mark.parametrize(
    "value,encoded",
    [(0, "020100"), (127, "02017f"), (128, "02020080"), (-1, "0201ff"), (-128, "020180"),
     (-129, "0202ff7f"), (256, "02020100")],
)
def test_integer_is_minimal_both_ways(value: int, encoded: str) -> None:
    assert der.integer(value).hex() == encoded
    _, body, _ = der.read_tlv(bytes.fromhex(encoded))
    assert der.decode_integer(body) == value


@pytest.mark.parametrize(
    "body,message",
    [("", "asn1: empty integer"), ("0001", "asn1: integer not minimally encoded"),
     ("ff80", "asn1: integer not minimally encoded")],
)
def test_decode_integer_refuses_what_go_refuses(body: str, message: str) -> None:
    with pytest.raises(der.DERError, match=f"^{message}$"):
        der.decode_integer(bytes.fromhex(body))


def test_oid_round_trip() -> None:
    for dotted in ("1.2.840.10045.3.1.7", "2.5.29.37.0", "1.3.6.1.4.1.37476.9000.64.1"):
        _, body, _ = der.read_tlv(der.object_identifier(dotted))
        assert der.read_oid(body) == dotted


@pytest.mark.parametrize(
    "body,message",
    [("", "asn1: empty object identifier"), ("2a86", "asn1: truncated OID"),
     ("2a8001", "asn1: non-minimal OID arc")],
)
def test_read_oid_refuses_what_go_refuses(body: str, message: str) -> None:
    with pytest.raises(der.DERError, match=f"^{message}$"):
        der.read_oid(bytes.fromhex(body))
