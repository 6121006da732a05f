"""The file key store: one PEM file per key, encrypted at rest.

Names are paths, `file:` URIs or step's `softkms:path=...`; relative ones resolve against
`base_dir`. New keys are written as PBKDF2-600k PKCS#8 (portable to OpenSSL and step);
existing step/OpenSSL key files are read as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from keystores.base import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStore,
    KeyStoreError,
    PublicKey,
    SigningKey,
    WrongPasswordError,
)
from keystores.fileio import write_atomic
from keystores.pem import encrypt_private_key_pem, load_private_key_pem, plaintext_private_key_pem
from keystores.uri import KeyURI, file_uri_path, split_scheme

__all__ = ["FileKeyStore", "encrypt_private_key_pem", "load_private_key_pem"]

_SCHEMES = ("file", "softkms")


def _as_signing_key(key: PrivateKeyTypes, source: str) -> SigningKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise KeyStoreError(f"{source}: {type(key).__name__} keys cannot sign certificates here")


class FileKeyStore(KeyStore):
    """Keys in PEM files. Loaded keys are cached per file for the life of the store.

    Without a password, writing keys is refused unless `allow_plaintext` is set: a CA key
    left unencrypted on disk should be a deliberate choice, never a missing config line.
    """

    kind = "file"

    def __init__(
        self,
        password: bytes | None = None,
        base_dir: Path | None = None,
        *,
        allow_plaintext: bool = False,
    ) -> None:
        self._password = password
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._allow_plaintext = allow_plaintext
        self._cache: dict[Path, SigningKey] = {}
        self._closed = False

    @classmethod
    def from_uri(cls, uri: str, *, password: bytes | None, base_dir: Path | None) -> Self:
        """Any `file:`/`softkms:`/plain-path URI opens the same store; the path is per key."""
        scheme, _ = split_scheme(uri)
        if scheme not in (None, *_SCHEMES):
            raise KeyStoreError(f"the file key store does not handle {scheme!r} URIs")
        return cls(password, base_dir)

    def path_for(self, name: str) -> Path:
        """The file a key name refers to."""
        if not name:
            raise KeyStoreError("empty key name")
        scheme, _ = split_scheme(name)
        if scheme is None:
            raw = name
        elif scheme == "file":
            raw = file_uri_path(name)
        elif scheme == "softkms":
            found = KeyURI.parse(name).get("path")
            if not found:
                raise KeyStoreError("softkms key URI has no path attribute")
            raw = found
        else:
            raise KeyStoreError(f"the file key store cannot address {scheme!r} keys")
        path = Path(raw)
        if self._base_dir is not None and not path.is_absolute():
            path = self._base_dir / path
        return path

    def create_key(self, name: str, spec: KeySpec, *, overwrite: bool = False) -> PublicKey:
        path = self._writable_path(name, overwrite)
        return self._store(path, spec.generate(), overwrite)

    def import_key(
        self, name: str, private_key: PrivateKeyTypes, overwrite: bool = False
    ) -> PublicKey:
        """Store an existing key object (e.g. one migrated from another store)."""
        key = _as_signing_key(private_key, "import")
        path = self._writable_path(name, overwrite)
        return self._store(path, key, overwrite)

    def public_key(self, name: str) -> PublicKey:
        return self.signer(name).public_key()

    def signer(self, name: str) -> SigningKey:
        self._check_open()
        path = self.path_for(name)
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFoundError(f"key not found: {path}") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from None
        try:
            loaded = load_private_key_pem(data, self._password)
        except WrongPasswordError as exc:
            raise WrongPasswordError(f"failed to decrypt {path}: {exc}") from None
        except KeyStoreError as exc:
            raise KeyStoreError(f"cannot load {path}: {exc}") from None
        key = _as_signing_key(loaded, str(path))
        self._cache[path] = key
        return key

    def close(self) -> None:
        self._cache.clear()
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise KeyStoreError("the key store is closed")

    def _writable_path(self, name: str, overwrite: bool) -> Path:
        """Fail before generating anything: no password, or the file is already there."""
        self._check_open()
        if not self._password and not self._allow_plaintext:
            raise KeyStoreError("keys at rest must be encrypted: no password given")
        path = self.path_for(name)
        if not overwrite and path.exists():
            raise KeyExistsError(f"key already exists: {path}")
        return path

    def _store(self, path: Path, key: SigningKey, overwrite: bool) -> PublicKey:
        if self._password:
            pem = encrypt_private_key_pem(key, self._password)
        else:
            pem = plaintext_private_key_pem(key)
        try:
            write_atomic(path, pem, 0o600, overwrite=overwrite)
        except FileExistsError:
            raise KeyExistsError(f"key already exists: {path}") from None
        except OSError as exc:
            raise KeyStoreError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._cache[path] = key
        return key.public_key()
