"""open_keystore picks the backend from the URI scheme."""

from __future__ import annotations

from pathlib import Path

import pytest

from keystores import KeySpec, KeyStore, KeyStoreError, open_keystore
from keystores.file import FileKeyStore
from keystores.registry import BACKENDS, Backend

from .conftest import PASSWORD


@pytest.mark.parametrize("uri", ["", "file:", "softkms:", "/some/key/path", "file:/x", "key"])
def test_file_schemes(uri: str, tmp_path: Path) -> None:
    store = open_keystore(uri, password=PASSWORD, base_dir=tmp_path)
    assert isinstance(store, FileKeyStore)
    store.create_key("k", KeySpec())
    assert (tmp_path / "k").exists()


def test_unknown_scheme_names_scheme_not_pin() -> None:
    with pytest.raises(KeyStoreError, match="unsupported key store 'awskms'") as info:
        open_keystore("awskms:key-id=x?pin-value=s3cret")
    assert "s3cret" not in str(info.value)


def test_backend_that_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "yubikey", Backend("keystores.no_such_module:YubiKeyStore"))
    with pytest.raises(KeyStoreError, match="'yubikey' is not available"):
        open_keystore("yubikey:slot-id=9c")


def test_backend_must_be_a_keystore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "odd", Backend("pathlib:Path"))
    with pytest.raises(KeyStoreError, match="not a KeyStore"):
        open_keystore("odd:x")


def test_context_manager_closes(tmp_path: Path) -> None:
    with open_keystore("", password=PASSWORD, base_dir=tmp_path) as store:
        assert isinstance(store, KeyStore)
        store.create_key("k", KeySpec())
    with pytest.raises(KeyStoreError, match="closed"):
        store.signer("k")


def test_capabilities_are_probed_by_protocol(tmp_path: Path) -> None:
    """Callers ask `isinstance(store, KeyLister)`, never the scheme: the file store is a
    KeyManager only; the PKCS#11 store lists keys; the YubiKey store also lists keys, attests
    and stores certificates."""
    from keystores import Attester, CertificateStore, KeyLister, KeyManager
    from keystores.pkcs11 import Pkcs11KeyStore
    from keystores.yubikey import YubiKeyStore

    files = open_keystore("", password=PASSWORD, base_dir=tmp_path)
    assert isinstance(files, KeyManager)
    assert not isinstance(files, KeyLister | Attester | CertificateStore)
    hsm = open_keystore("pkcs11:token=ca")
    assert isinstance(hsm, Pkcs11KeyStore)
    assert isinstance(hsm, KeyManager) and isinstance(hsm, KeyLister)
    assert not isinstance(hsm, Attester | CertificateStore)
    yubikey = open_keystore("yubikey:slot-id=9c")
    assert isinstance(yubikey, YubiKeyStore)
    assert isinstance(yubikey, KeyManager | Attester) and isinstance(yubikey, CertificateStore)
    assert isinstance(yubikey, KeyLister)  # step kms list yubikey:
