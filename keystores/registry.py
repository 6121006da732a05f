"""Choose the key store backend from a key URI's scheme.

Backends are named by import path and loaded on first use, so `import keystores` never
needs python-pkcs11 or yubikit; a PKCS#11 or YubiKey store joins by adding one row.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from keystores.base import KeyStore, KeyStoreError
from keystores.uri import split_scheme

__all__ = ["BACKENDS", "open_keystore"]

# scheme -> "module:Class"; a plain path or "" counts as "file".
BACKENDS: dict[str, str] = {
    "file": "keystores.file:FileKeyStore",
    "softkms": "keystores.file:FileKeyStore",
    "pkcs11": "keystores.pkcs11:Pkcs11KeyStore",
    "yubikey": "keystores.yubikey:YubiKeyStore",
}


def _backend(scheme: str) -> type[KeyStore]:
    target = BACKENDS.get(scheme)
    if target is None:
        supported = ", ".join(sorted(BACKENDS))
        raise KeyStoreError(f"unsupported key store {scheme!r} (supported: {supported})")
    module_name, _, class_name = target.partition(":")
    try:
        backend = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise KeyStoreError(f"key store {scheme!r} is not available: {exc}") from None
    if not (isinstance(backend, type) and issubclass(backend, KeyStore)):
        raise KeyStoreError(f"key store {scheme!r} maps to {target}, which is not a KeyStore")
    return backend


def open_keystore(
    uri: str, *, password: bytes | None = None, base_dir: Path | None = None
) -> KeyStore:
    """Open the store a key URI (or a store URI such as `softkms:`) lives in.

    Only the scheme is read here; the error never echoes the URI, which may hold a PIN.
    """
    scheme, _ = split_scheme(uri)
    return _backend(scheme or "file").from_uri(uri, password=password, base_dir=base_dir)
