"""Key stores: where the CA's private keys live (files, PKCS#11 tokens, YubiKeys).

Callers open a store with `open_keystore`, use the `KeyManager` methods every store has, and
probe optional capabilities with `isinstance` against the protocols in
`keystores.capabilities`. Backend details stay inside this package.
"""

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
from keystores.capabilities import Attestation, Attester, CertificateStore, KeyLister, KeyManager
from keystores.fileio import write_atomic
from keystores.location import KeyLocation, normalize_key_uri, redact_uri
from keystores.registry import is_hardware, open_keystore

__all__ = [
    "Attestation",
    "Attester",
    "CertificateStore",
    "KeyExistsError",
    "KeyLister",
    "KeyLocation",
    "KeyManager",
    "KeyNotFoundError",
    "KeySpec",
    "KeyStore",
    "KeyStoreError",
    "KeyStoreUnavailableError",
    "PublicKey",
    "SigningKey",
    "WrongPasswordError",
    "is_hardware",
    "normalize_key_uri",
    "open_keystore",
    "redact_uri",
    "write_atomic",
]
