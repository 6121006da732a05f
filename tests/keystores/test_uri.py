"""Key URI parsing in step's and RFC 7512's forms."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from keystores import KeyStoreError
from keystores.uri import KeyURI, file_uri_path, read_pin_source, split_scheme


def test_path_and_query_attributes() -> None:
    uri = KeyURI.parse(
        "pkcs11:token=ca-test;object=root%20key;id=7331"
        "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1234"
    )
    assert uri.scheme == "pkcs11"
    assert uri.get("token") == "ca-test"
    assert uri.get("object") == "root key"
    assert uri.get("id") == "7331"  # kept as text, not a number
    assert uri.get("module-path") == "/usr/lib/softhsm/libsofthsm2.so"
    assert uri.get("missing") is None
    assert uri.pin() == "1234"


def test_percent_encoding_is_rfc7512() -> None:
    uri = KeyURI.parse("pkcs11:object=a+b%2Bc%3Bd%3De;id=%01%02%ff")
    assert uri.get("object") == "a+b+c;d=e"  # `+` is literal, not a space
    assert uri.get_bytes("id") == b"\x01\x02\xff"
    with pytest.raises(KeyStoreError, match="not UTF-8"):
        uri.get("id")


def test_get_encoded_matches_step() -> None:
    uri = KeyURI.parse("pkcs11:id=7331;object=%01%02;label=zz;empty=")
    assert uri.get_encoded("id") == b"\x73\x31"
    assert uri.get_encoded("object") == b"\x01\x02"
    assert uri.get_encoded("label") == b"zz"
    assert uri.get_encoded("empty") is None
    assert uri.get_encoded("absent") is None


def test_path_wins_over_query() -> None:
    uri = KeyURI.parse("yubikey:slot-id=9c;pin-value=path?slot-id=9a&pin-value=query&serial=7")
    assert uri.get("slot-id") == "9c"
    assert uri.get("serial") == "7"
    assert uri.pin() == "path"


def test_empty_path_value_falls_back_to_query() -> None:
    uri = KeyURI.parse("pkcs11:pin-value=?pin-value=5678")
    assert uri.pin() == "5678"
    assert KeyURI.parse("pkcs11:object=").get("object") == ""


def test_scheme_is_case_insensitive_and_checked() -> None:
    assert KeyURI.parse("PKCS11:token=a", scheme="pkcs11").scheme == "pkcs11"
    with pytest.raises(KeyStoreError, match="expected 'pkcs11'"):
        KeyURI.parse("yubikey:slot-id=9c", scheme="pkcs11")
    with pytest.raises(KeyStoreError, match="no scheme"):
        KeyURI.parse("/just/a/path")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pkcs11:object=a%2", "invalid percent-encoding"),
        ("pkcs11:object=100%", "invalid percent-encoding"),
        ("pkcs11:object=a;object=b", "appears twice"),
        ("pkcs11:=x", "empty attribute name"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(KeyStoreError, match=message):
        KeyURI.parse(text)


def test_errors_and_repr_hide_the_pin() -> None:
    with pytest.raises(KeyStoreError) as info:
        KeyURI.parse("pkcs11:pin-value=s3cret;object=%zz")
    assert "s3cret" not in str(info.value)
    uri = KeyURI.parse("pkcs11:token=t?pin-value=s3cret")
    assert "s3cret" not in repr(uri)
    assert "token=t" in repr(uri)


def test_pin_source_reads_file(tmp_path: Path) -> None:
    (tmp_path / "pin").write_text("12 34\n\n")
    by_path = KeyURI.parse(f"pkcs11:token=t?pin-source={tmp_path}/pin")
    assert by_path.pin() == "12 34"
    by_uri = KeyURI.parse(f"pkcs11:token=t?pin-source=file:{tmp_path}/pin")
    assert by_uri.pin() == "12 34"
    relative = KeyURI.parse("pkcs11:token=t?pin-source=pin")
    assert relative.pin(base_dir=tmp_path) == "12 34"
    assert KeyURI.parse("pkcs11:token=t").pin() is None


def test_pin_value_beats_pin_source(tmp_path: Path) -> None:
    (tmp_path / "pin").write_text("from-file")
    uri = KeyURI.parse(f"pkcs11:token=t?pin-source={tmp_path}/pin&pin-value=inline")
    assert uri.pin() == "inline"


def test_pin_source_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match=re.escape(f"cannot read pin-source {tmp_path}/nope")):
        read_pin_source(str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("file:/etc/step/key", "/etc/step/key"),
        ("file:///etc/step/key", "/etc/step/key"),
        ("file://localhost/etc/step/key", "/etc/step/key"),
        ("file:secrets/key", "secrets/key"),
        ("FILE:/a%20b", "/a b"),
    ],
)
def test_file_uri_path(text: str, path: str) -> None:
    assert file_uri_path(text) == path


def test_split_scheme() -> None:
    assert split_scheme("softkms:path=/x") == ("softkms", "path=/x")
    assert split_scheme("/abs/path:with-colon") == (None, "/abs/path:with-colon")
    assert split_scheme("./rel:colon") == (None, "./rel:colon")
    assert split_scheme("") == (None, "")
