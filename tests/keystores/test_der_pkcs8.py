"""The DER helpers behind the PKCS#8 writer, checked against known encodings."""

from __future__ import annotations

import pytest

from keystores import pkcs8
from pki import der


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "020100"),
        (127, "02017f"),
        (128, "02020080"),
        (600_000, "02030927c0"),
    ],
)
def test_integer(value: int, encoded: str) -> None:
    assert der.integer(value).hex() == encoded


@pytest.mark.parametrize(
    ("oid", "encoded"),
    [
        (pkcs8.OID_PBES2, "06092a864886f70d01050d"),
        (pkcs8.OID_HMAC_SHA256, "06082a864886f70d0209"),
        (pkcs8.OID_AES256_CBC, "060960864801650304012a"),
    ],
)
def test_oid_round_trip(oid: str, encoded: str) -> None:
    assert der.object_identifier(oid).hex() == encoded
    tag, value, end = der.read_tlv(bytes.fromhex(encoded))
    assert (tag, end) == (der.TAG_OID, len(encoded) // 2)
    assert der.read_oid(value) == oid


def test_long_lengths() -> None:
    body = b"x" * 300
    encoded = der.octet_string(body)
    assert encoded[:4].hex() == "0482012c"
    assert der.read_tlv(encoded) == (der.TAG_OCTET_STRING, body, len(encoded))


@pytest.mark.parametrize("data", ["", "30", "3005020100", "3084ffffffff00"])
def test_read_tlv_rejects_truncation(data: str) -> None:
    with pytest.raises(der.DERError):
        der.read_tlv(bytes.fromhex(data))


def test_encryption_algorithm() -> None:
    wrapped = pkcs8.encrypt_pkcs8(b"\x30\x03\x02\x01\x00", b"pw", iterations=1)
    assert pkcs8.encryption_algorithm(wrapped) == pkcs8.OID_PBES2
    with pytest.raises(der.DERError):
        pkcs8.encryption_algorithm(wrapped[:-1])
    with pytest.raises(der.DERError):
        pkcs8.encryption_algorithm(der.sequence(der.integer(0)))


def test_encrypt_pkcs8_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="empty password"):
        pkcs8.encrypt_pkcs8(b"x", b"")
    with pytest.raises(ValueError, match="positive"):
        pkcs8.encrypt_pkcs8(b"x", b"pw", iterations=0)
