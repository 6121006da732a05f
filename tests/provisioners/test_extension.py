"""The step provisioner extension: byte-exact DER both ways, strict parsing, x509 plumbing."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisioners.extension import (
    CRITICAL,
    PROVISIONER_OID,
    ProvisionerExtension,
    ProvisionerType,
    from_certificate,
)

VECTOR = bytes.fromhex("30150201010408737465702d636c6904066b6964313233")


def _seq(*parts_hex: str) -> str:
    """Hex of a SEQUENCE around the given hex parts (short-form length)."""
    body = "".join(parts_hex)
    assert len(body) // 2 < 128
    return f"30{len(body) // 2:02x}{body}"


def test_oid_and_type_numbers() -> None:
    assert PROVISIONER_OID.dotted_string == "1.3.6.1.4.1.37476.9000.64.1"
    assert CRITICAL is False
    assert [(t.name, t.value) for t in ProvisionerType] == [
        ("JWK", 1),
        ("OIDC", 2),
        ("GCP", 3),
        ("AWS", 4),
        ("AZURE", 5),
        ("ACME", 6),
        ("X5C", 7),
        ("K8SSA", 8),
        ("SSHPOP", 9),
        ("SCEP", 10),
        ("NEBULA", 11),
    ]


def test_step_test_vector() -> None:
    ext = ProvisionerExtension(ProvisionerType.JWK, "step-cli", "kid123")
    assert ext.to_der() == VECTOR
    assert ProvisionerExtension(1, "step-cli", "kid123").to_der() == VECTOR
    parsed = ProvisionerExtension.from_der(VECTOR)
    assert parsed == ext
    assert parsed.type is ProvisionerType.JWK
    assert parsed.key_value_pairs == ()


def test_key_value_pairs_use_printable_or_utf8_like_go() -> None:
    ext = ProvisionerExtension(
        ProvisionerType.AWS,
        "aws",
        "123456789012",
        ("InstanceID", "i-0abc", "label", "x*y", "naïve"),
    )
    der = ext.to_der()
    expected_pairs = (
        bytes.fromhex("130a")
        + b"InstanceID"
        + bytes.fromhex("1306")
        + b"i-0abc"
        + bytes.fromhex("1305")
        + b"label"
        + bytes.fromhex("0c03")
        + b"x*y"  # Go never marshals '*' as PrintableString
        + bytes.fromhex("0c06")
        + "naïve".encode()
    )
    body = (
        bytes.fromhex("020104")
        + bytes.fromhex("0403")
        + b"aws"
        + bytes.fromhex("040c")
        + b"123456789012"
        + bytes([0x30, len(expected_pairs)])
        + expected_pairs
    )
    assert der == bytes([0x30, len(body)]) + body
    assert ProvisionerExtension.from_der(der) == ext


def test_empty_strings_and_empty_pair_values() -> None:
    ext = ProvisionerExtension(ProvisionerType.ACME, "acme", "", ("",))
    der = ext.to_der()
    assert der.hex() == _seq("020106", "0404" + b"acme".hex(), "0400", _seq("1300"))
    assert ProvisionerExtension.from_der(der) == ext


@pytest.mark.parametrize("size", [127, 128, 255, 256, 70000])
def test_long_form_lengths(size: int) -> None:
    ext = ProvisionerExtension(ProvisionerType.OIDC, "n" * size, "client-id")
    der = ext.to_der()
    assert ProvisionerExtension.from_der(der) == ext
    name_header = der.index(b"\x04", 3)  # after the INTEGER
    if size < 128:
        assert der[name_header + 1] == size
    elif size < 256:
        assert der[name_header + 1 : name_header + 3] == bytes([0x81, size])
    elif size < 65536:
        assert der[name_header + 1 : name_header + 4] == bytes([0x82]) + size.to_bytes(2, "big")
    else:
        assert der[name_header + 1 : name_header + 5] == bytes([0x83]) + size.to_bytes(3, "big")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "020100"),
        (127, "02017f"),
        (128, "02020080"),
        (256, "02020100"),
        (-1, "0201ff"),
        (-128, "020180"),
        (-129, "0202ff7f"),
    ],
)
def test_integer_encoding(value: int, encoded: str) -> None:
    der = ProvisionerExtension(value, "", "").to_der()
    assert der[2:].startswith(bytes.fromhex(encoded))
    parsed = ProvisionerExtension.from_der(der)
    assert parsed.type == value


def test_unknown_type_number_is_kept() -> None:
    parsed = ProvisionerExtension.from_der(ProvisionerExtension(99, "x", "y").to_der())
    assert parsed.type == 99 and not isinstance(parsed.type, ProvisionerType)


def test_lenient_string_types_when_parsing() -> None:
    # PrintableString with '*' / '&' (Go accepts these when parsing) and IA5String.
    pairs = _seq("1303" + b"a*b".hex(), "1603" + b"a_b".hex())
    parsed = ProvisionerExtension.from_der(bytes.fromhex(_seq("020101", "0400", "0400", pairs)))
    assert parsed.key_value_pairs == ("a*b", "a_b")


def test_dataclass_validation() -> None:
    ext = ProvisionerExtension(1, "a", "b", ["k", "v"])  # type: ignore[arg-type]
    assert ext.key_value_pairs == ("k", "v")
    with pytest.raises(TypeError):
        ProvisionerExtension(True, "a", "b")
    with pytest.raises(TypeError):
        ProvisionerExtension(1, b"a", "b")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ProvisionerExtension(1, "a", "b", "kv")  # type: ignore[arg-type]  # a bare str is not a sequence of pairs
    with pytest.raises(TypeError):
        ProvisionerExtension(1, "a", "b", (1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ProvisionerExtension(1 << 63, "a", "b")
    with pytest.raises(AttributeError):
        ext.name = "other"  # type: ignore[misc]


V = VECTOR.hex()[4:]  # the body of the test vector: INTEGER, name, credentialID
NAME_CRED = V[6:]


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "30",
        "3000",  # empty sequence: INTEGER missing
        _seq(V) + "00",  # trailing garbage
        _seq(V) + "3000",
        "3115" + V,  # SET instead of SEQUENCE
        "0415" + V,  # OCTET STRING instead of SEQUENCE
        _seq("040101", NAME_CRED),  # type as OCTET STRING
        _seq("020101", "0c08" + b"step-cli".hex(), "0406" + b"kid123".hex()),  # UTF8 name
        _seq("020101", "0408" + b"step-cli".hex(), "1306" + b"kid123".hex()),  # credential tag
        "3016" + V,  # declared length beyond the data
        "3014" + V[:-2],  # declared length cuts the last element
        "3080" + V + "0000",  # indefinite length
        "308115" + V,  # long form for a short length
        "30820015" + V,  # leading zero in a long-form length
        "308900000000000000000015" + V,  # absurd length of length
        "3f15" + V,  # high-tag-number form
        _seq("02020001", NAME_CRED),  # non-minimal INTEGER
        _seq("0202ffff", NAME_CRED),  # non-minimal negative INTEGER
        _seq("0200", NAME_CRED),  # empty INTEGER
        _seq("0209010000000000000000", NAME_CRED),  # beyond int64
        _seq(V, "0400"),  # OCTET STRING where the pairs SEQUENCE belongs
        _seq(V, _seq("020101")),  # pairs containing an INTEGER
        _seq(V, _seq("1300"), "0400"),  # an element after the pairs
        _seq(V, "3003" + "1301"),  # truncated pair
        _seq(V, _seq("130121")),  # PrintableString with '!'
        _seq(V, _seq("0c01ff")),  # invalid UTF-8 pair
        _seq(V, _seq("1601ff")),  # IA5String beyond ASCII
        _seq("020101", "0402ffff", "0402" + b"hi".hex()),  # invalid UTF-8 name
    ],
)
def test_from_der_rejects_garbage(garbage: str) -> None:
    with pytest.raises(ValueError):
        ProvisionerExtension.from_der(bytes.fromhex(garbage))


def _certificate(*extensions: tuple[x509.ExtensionType, bool]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(key, hashes.SHA256())


def test_certificate_round_trip() -> None:
    ext = ProvisionerExtension(ProvisionerType.JWK, "step-cli", "kid123")
    x509_ext = ext.to_x509_extension()
    assert x509_ext.oid == PROVISIONER_OID and x509_ext.value == VECTOR
    cert = _certificate((x509_ext, CRITICAL))
    stored = cert.extensions.get_extension_for_oid(PROVISIONER_OID)
    assert stored.critical is False
    assert ProvisionerExtension.from_certificate(cert) == ext
    assert from_certificate(cert, strict=True) == ext


def test_certificate_without_extension() -> None:
    cert = _certificate((x509.BasicConstraints(ca=False, path_length=None), True))
    assert ProvisionerExtension.from_certificate(cert) is None
    assert from_certificate(cert, strict=True) is None


def test_certificate_with_malformed_extension() -> None:
    bad = x509.UnrecognizedExtension(PROVISIONER_OID, VECTOR + b"\x00")
    cert = _certificate((bad, False))
    assert ProvisionerExtension.from_certificate(cert) is None  # step-ca treats it as absent
    with pytest.raises(ValueError, match="trailing"):
        ProvisionerExtension.from_certificate(cert, strict=True)
