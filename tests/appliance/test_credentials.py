"""appliance.credentials: secrets from $CREDENTIALS_DIRECTORY (0400 files, as systemd makes them),
the PIN handed to a real SoftHSM2 token through an in-memory copy of ca.json."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.authority import Authority
from appliance.check import check_config
from appliance.config import CAConfig
from appliance.credentials import (
    CredentialError,
    ca_password,
    read_credential,
    with_kms_pin,
)
from appliance.db.schema import upgrade
from appliance.pki import InitRequest, init_pki
from keystores import KeyLocation
from tests.appliance.conftest import PASSWORD, PROV_PASSWORD, edit_config
from tests.softhsm import MODULE, SoftHSM, softhsm_session


def _credentials(tmp_path: Path, mode: int = 0o400, **files: bytes) -> dict[str, str]:
    directory = tmp_path / "credentials"
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = directory / name.replace("_", "-")
        path.write_bytes(data)
        os.chmod(path, mode)
    return {"CREDENTIALS_DIRECTORY": str(directory)}


def test_no_credentials_directory_or_no_file() -> None:
    assert read_credential("ca-password", {}) is None
    assert read_credential("ca-password", {"CREDENTIALS_DIRECTORY": ""}) is None


def test_reads_a_0400_credential_without_its_newline(tmp_path: Path) -> None:
    environ = _credentials(tmp_path, ca_password=b"s3cret\n")
    assert read_credential("ca-password", environ) == b"s3cret"
    assert read_credential("kms-pin", environ) is None
    assert ca_password(None, environ) == b"s3cret"
    assert ca_password(b"from-file", environ) == b"from-file"  # --password-file wins


@pytest.mark.parametrize("mode", [0o644, 0o440, 0o404, 0o600 | 0o002])
def test_a_credential_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    environ = _credentials(tmp_path, mode, ca_password=b"s3cret")
    path = Path(environ["CREDENTIALS_DIRECTORY"]) / "ca-password"
    with pytest.raises(CredentialError) as info:
        read_credential("ca-password", environ)
    assert str(info.value) == (
        f"credential {path} is mode {mode:04o}: it must be readable by the service only "
        "(0400, as systemd makes it)"
    )


def test_empty_or_unreadable_credential(tmp_path: Path) -> None:
    environ = _credentials(tmp_path, ca_password=b"\n")
    with pytest.raises(CredentialError, match=r"is empty$"):
        read_credential("ca-password", environ)
    os.mkdir(Path(environ["CREDENTIALS_DIRECTORY"]) / "kms-pin", 0o700)
    with pytest.raises(CredentialError, match=r"kms-pin: Is a directory$"):
        read_credential("kms-pin", environ)


def test_a_secret_in_the_environment_is_not_read(ca_dir: Path) -> None:
    environ = {"STEP_CA_PASSWORD": PASSWORD.decode(), "CA_PASSWORD": PASSWORD.decode()}
    report = check_config(ca_dir / "config" / "ca.json", environ=environ)
    assert not report.ok and "no password" in report.problems[0]


# --- the PIN, into a copy of the config ------------------------------------------------------


def _config(ca_dir: Path, **fields: Any) -> CAConfig:
    edit_config(ca_dir, lambda raw: raw.update(fields))
    return CAConfig.load(ca_dir / "config" / "ca.json")


def _kms(config: CAConfig) -> dict[str, Any] | None:
    return config.kms.as_json() if config.kms else None


PIN = {"kms_pin": b"12 34/%\n"}
STORE = f"pkcs11:module-path={MODULE};token=ca"


def test_pin_goes_into_the_store_uri_of_a_copy(ca_dir: Path, tmp_path: Path) -> None:
    config = _config(ca_dir, key="pkcs11:id=7331;object=ca", kms={"type": "pkcs11", "uri": STORE})
    raw_before, kms_before = json.dumps(config.raw), _kms(config)
    on_disk = (ca_dir / "config" / "ca.json").read_text()
    pinned = with_kms_pin(config, _credentials(tmp_path, **PIN))
    assert pinned is not config
    assert _kms(pinned) == {"type": "pkcs11", "uri": f"{STORE}?pin-value=12%2034%2F%25"}
    assert KeyLocation.from_config(_kms(pinned), pinned.key).store_uri.endswith(
        "?pin-value=12%2034%2F%25"
    )
    assert (json.dumps(config.raw), _kms(config)) == (raw_before, kms_before)  # untouched
    assert (ca_dir / "config" / "ca.json").read_text() == on_disk  # and so is ca.json


@pytest.mark.parametrize(
    ("key", "kms"),
    [
        ("pkcs11:id=7331", {"type": "pkcs11", "uri": f"{STORE}?pin-source=/etc/pin"}),
        ("pkcs11:id=7331", {"type": "pkcs11", "uri": f"{STORE}?pin-value=1111"}),
        ("pkcs11:id=7331", {"type": "pkcs11", "uri": f"{STORE};pin-value=1111"}),
        ("pkcs11:id=7331?pin-value=1111", {"type": "pkcs11", "uri": STORE}),
        ("yubikey:slot-id=9c", {"type": "yubikey", "pin": "123456"}),
        ("secrets/intermediate_ca_key", None),  # a file key has no PIN
    ],
)
def test_a_pin_ca_json_gives_wins(
    ca_dir: Path, tmp_path: Path, key: str, kms: dict[str, str] | None
) -> None:
    config = _config(ca_dir, key=key, kms=kms)
    assert with_kms_pin(config, _credentials(tmp_path, **PIN)) is config


def test_pin_for_a_key_uri_without_kms_and_a_kms_type_only(ca_dir: Path, tmp_path: Path) -> None:
    environ = _credentials(tmp_path, kms_pin=b"123456")
    config = _config(ca_dir, key="yubikey:slot-id=9c", kms=None)
    assert _kms(with_kms_pin(config, environ)) == {
        "type": "yubikey",
        "uri": "yubikey:slot-id=9c?pin-value=123456",
    }
    config = _config(ca_dir, key="yubikey:slot-id=9c", kms={"type": "yubikey"})
    assert _kms(with_kms_pin(config, environ)) == {
        "type": "yubikey",
        "uri": "yubikey:?pin-value=123456",
    }
    assert with_kms_pin(config, {}) is config  # no credential: as ca.json says


# --- with a real SoftHSM2 token --------------------------------------------------------------


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


@pytest.fixture
def hsm_ca(hsm: SoftHSM, steppath: Path, tmp_path: Path) -> tuple[Path, str]:
    """A CA whose intermediate key is in a SoftHSM2 token, ca.json holding no PIN."""
    token = hsm.init_token()
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin)
    init_pki(
        InitRequest(
            steppath,
            "HSM",
            ["ca.test"],
            "127.0.0.1:9000",
            "admin",
            PASSWORD,
            PROV_PASSWORD,
            kms=f"{token.uri(pin=False)};id=7331;object=ca?pin-source={pin_file}",
        )
    )
    pin_file.unlink()

    def no_pin(raw: dict[str, Any]) -> None:
        raw["kms"]["uri"] = raw["kms"]["uri"].partition("?")[0]

    edit_config(steppath, no_pin)
    upgrade(CAConfig.load(steppath / "config" / "ca.json"))  # as `step ca init` does
    return steppath, token.pin


def test_softhsm_key_opens_with_the_pin_credential(
    hsm_ca: tuple[Path, str], tmp_path: Path
) -> None:
    ca_dir, pin = hsm_ca
    ca_json = ca_dir / "config" / "ca.json"
    environ = _credentials(tmp_path, kms_pin=pin.encode() + b"\n")
    report = check_config(ca_json, environ=environ)
    assert report.ok, report.problems
    assert report.key_store == "pkcs11"
    assert report.store is not None and report.store.endswith("?pin-value=REDACTED")
    assert report.secrets == ["PIN from credential kms-pin"]

    authority = Authority.open(with_kms_pin(CAConfig.load(ca_json), environ), PASSWORD)
    try:
        authority.issuer_signer.check()  # in a child process, as the server does
    finally:
        authority.repository.engine.dispose()

    (problem,) = check_config(ca_json, environ={}).problems
    assert problem.startswith("key pkcs11:id=7331;object=ca: ") and "no PIN given" in problem
    wrong = _credentials(tmp_path / "w", kms_pin=b"0000")
    (problem,) = check_config(ca_json, environ=wrong).problems
    assert "wrong PIN" in problem
