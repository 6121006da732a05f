"""keystores.location: key URIs split into ca.json's `key` and `kms`, and back; redaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keystores import KeyLocation, is_hardware, normalize_key_uri, redact_uri


def _config(uri: str) -> tuple[str, dict[str, Any] | None]:
    return KeyLocation.split(uri).config()


# --- ca.json key and kms (formerly appliance.pki.config_key) ----------------------------


def test_config_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _config("keys/int.key") == (str(tmp_path / "keys" / "int.key"), None)
    assert _config("file:/srv/int.key") == ("/srv/int.key", None)
    assert _config("file:///srv/int%20key") == ("/srv/int key", None)


def test_config_key_pkcs11_pin_source_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    key, kms = _config(
        "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca;id=7331;"
        "object=intermediate-key?pin-value=1234&pin-source=pins/ca.pin"
    )
    assert key == "pkcs11:id=7331;object=intermediate-key"
    assert kms == {
        "type": "pkcs11",
        "uri": "pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca"
        f"?pin-source={tmp_path}/pins/ca.pin",
    }


def test_config_key_pkcs11_pin_value_kept_without_source() -> None:
    key, kms = _config("pkcs11:token=ca;object=k;pin-value=1234")
    assert key == "pkcs11:object=k"
    assert kms == {"type": "pkcs11", "uri": "pkcs11:token=ca;pin-value=1234"}


def test_config_key_without_store_part() -> None:
    assert _config("pkcs11:id=7331;object=k") == ("pkcs11:id=7331;object=k", None)
    assert _config("yubikey:slot-id=9c?pin-source=/p") == (
        "yubikey:slot-id=9c",
        {"type": "yubikey", "uri": "yubikey:?pin-source=/p"},
    )
    assert _config("awskms:key-id=abc") == ("awskms:key-id=abc", None)


@pytest.mark.parametrize(
    ("kms", "key", "expected"),
    [
        (None, "/ca/secrets/intermediate_ca_key", "/ca/secrets/intermediate_ca_key"),
        ({"type": "softkms"}, "secrets/k", "secrets/k"),
        ({"uri": "pkcs11:token=b?pin-source=/p"}, "pkcs11:id=7331", "pkcs11:token=b?pin-source=/p"),
        (
            {"type": "yubikey", "pin": "123456", "managementKey": "ab"},
            "yubikey:slot-id=9c",
            "yubikey:management-key=ab?pin-value=123456",
        ),
    ],
)
def test_store_uri_from_config(kms: dict[str, str] | None, key: str, expected: str) -> None:
    assert KeyLocation.from_config(kms, key).store_uri == expected


def test_split_and_back_round_trip() -> None:
    uri = "pkcs11:token=ca;id=7331;object=k?pin-source=/run/pin"
    key, kms = _config(uri)
    assert kms is not None
    location = KeyLocation.from_config(kms, key)
    assert location == KeyLocation.split(uri)
    assert location.hardware


@pytest.mark.parametrize(
    ("uri", "hardware"),
    [
        ("/ca/k", False),
        ("file:/ca/k", False),
        ("softkms:path=/k", False),
        ("pkcs11:id=7331", True),
        ("yubikey:slot-id=9c", True),
        ("awskms:key-id=x", True),  # unknown: the cautious answer
    ],
)
def test_is_hardware(uri: str, hardware: bool) -> None:
    assert is_hardware(uri) is hardware


@pytest.mark.parametrize(
    ("uri", "slow"),
    [
        ("/ca/k", False),
        ("softkms:path=/k", False),
        ("pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=ca;id=01", False),
        ("pkcs11:module-path=/usr/lib/x86_64-linux-gnu/libykcs11.so.2;id=02", True),
        ("yubikey:slot-id=9c", True),
        ("awskms:key-id=x", True),  # unknown: the cautious answer
    ],
)
def test_slow_signers_are_yubikeys_and_unknown_stores(uri: str, slow: bool) -> None:
    assert KeyLocation.split(uri).slow_signer is slow


def test_normalize_key_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_key_uri("k.key") == str(tmp_path / "k.key")
    assert normalize_key_uri("pkcs11:object=k?pin-source=pin") == (
        f"pkcs11:object=k?pin-source={tmp_path}/pin"
    )
    assert normalize_key_uri("pkcs11:object=k?pin-value=1") == "pkcs11:object=k?pin-value=1"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            "pkcs11:token=a;pin-value=1;management-key=2",
            "pkcs11:token=a;pin-value=REDACTED;management-key=2",
        ),
        ("yubikey:management-key=0102", "yubikey:management-key=REDACTED"),
        (
            "awskms:pin-value=1;management-key=2",
            "awskms:pin-value=REDACTED;management-key=REDACTED",
        ),
        ("/keys/pin-value=1", "/keys/pin-value=1"),
    ],
)
def test_redact_uri_per_backend(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
