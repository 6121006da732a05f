"""Key stores: where the CA's private keys live (files now; PKCS#11 and YubiKey later)."""

from keystores.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStore,
    KeyStoreError,
    KeyStoreUnavailableError,
    PublicKey,
    SigningKey,
    WrongPasswordError,
)
from keystores.fileio import write_atomic
from keystores.registry import open_keystore

__all__ = [
    "KeyExistsError",
    "KeyNotFoundError",
    "KeySpec",
    "KeyStore",
    "KeyStoreError",
    "KeyStoreUnavailableError",
    "PublicKey",
    "SigningKey",
    "WrongPasswordError",
    "open_keystore",
    "write_atomic",
]
