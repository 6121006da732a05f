"""Choose the key store backend from a key URI's scheme, and what callers may know of it.

Backends are named by import path and loaded on first use, so `import keystores` never
needs python-pkcs11 or yubikit; a PKCS#11 or YubiKey store joins by adding one row. The row
also says what a caller outside `keystores` needs without opening the store (whether its keys
are hardware-held, which URI attributes name the key and which are secret), so no caller
branches on a scheme name.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from keystores.base import KeyStore, KeyStoreError
from keystores.uri import split_scheme

__all__ = ["BACKENDS", "Backend", "backend_for", "is_hardware", "open_keystore"]

_PIN = frozenset({"pin-value"})


@dataclass(frozen=True)
class Backend:
    """One key store backend.

    `target`: "module:Class" of its KeyStore. `hardware`: keys are generated and held in a
    device (never decrypted with the CA password, opened only after fork). `key_attributes`:
    the URI attributes that name a key, as opposed to the store (ca.json `key` vs `kms.uri`);
    empty means a key URI stays whole. `secret_attributes`: redacted from records.
    """

    target: str
    hardware: bool = False
    key_attributes: frozenset[str] = frozenset()
    secret_attributes: frozenset[str] = _PIN


# scheme -> backend; a plain path or "" counts as "file".
BACKENDS: dict[str, Backend] = {
    "file": Backend("keystores.file:FileKeyStore"),
    "softkms": Backend("keystores.file:FileKeyStore"),
    "pkcs11": Backend(
        "keystores.pkcs11:Pkcs11KeyStore",
        hardware=True,
        key_attributes=frozenset({"id", "object"}),
    ),
    "yubikey": Backend(
        "keystores.yubikey:YubiKeyStore",
        hardware=True,
        key_attributes=frozenset({"slot-id"}),
        secret_attributes=_PIN | {"management-key"},
    ),
}


def backend_for(uri: str) -> Backend | None:
    """The backend a key URI's scheme names (a plain path: the file store); None if unknown."""
    scheme, _ = split_scheme(uri)
    return BACKENDS.get(scheme or "file")


def is_hardware(uri: str) -> bool:
    """Whether the key lives in a device. An unknown scheme counts as hardware: the cautious
    answer (no CA password sent, opened in a child process) until the store says otherwise."""
    backend = backend_for(uri)
    return backend is None or backend.hardware


def _backend(scheme: str) -> type[KeyStore]:
    backend = BACKENDS.get(scheme)
    if backend is None:
        supported = ", ".join(sorted(BACKENDS))
        raise KeyStoreError(f"unsupported key store {scheme!r} (supported: {supported})")
    module_name, _, class_name = backend.target.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise KeyStoreError(f"key store {scheme!r} is not available: {exc}") from None
    if not (isinstance(found, type) and issubclass(found, KeyStore)):
        raise KeyStoreError(
            f"key store {scheme!r} maps to {backend.target}, which is not a KeyStore"
        )
    return found


def open_keystore(
    uri: str, *, password: bytes | None = None, base_dir: Path | None = None
) -> KeyStore:
    """Open the store a key URI (or a store URI such as `softkms:`) lives in.

    Only the scheme is read here; the error never echoes the URI, which may hold a PIN.
    """
    scheme, _ = split_scheme(uri)
    return _backend(scheme or "file").from_uri(uri, password=password, base_dir=base_dir)
