"""What a key store can do, as small typed protocols (step's `kms/apiv1` interfaces).

Every store is a `KeyManager`. The rest are optional: a caller that needs one asks with
`isinstance(store, KeyLister)` (they are runtime-checkable), never by the store's scheme, so
a new backend gains a command by implementing a method, not by editing its callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography import x509

from keystores.base import KeySpec, PublicKey, SigningKey

__all__ = [
    "Attestation",
    "Attester",
    "CertificateStore",
    "KeyLister",
    "KeyManager",
]


@runtime_checkable
class KeyManager(Protocol):
    """step's `KeyManager`: create a key, read its public half, sign with it, close."""

    def create_key(self, name: str, spec: KeySpec, *, overwrite: bool = False) -> PublicKey: ...

    def public_key(self, name: str) -> PublicKey: ...

    def signer(self, name: str) -> SigningKey: ...

    def close(self) -> None: ...


@runtime_checkable
class CertificateStore(Protocol):
    """step's `CertificateManager`: a certificate kept next to its key (a YubiKey slot)."""

    def store_certificate(self, name: str, certificate: x509.Certificate) -> None: ...

    def load_certificate(self, name: str) -> x509.Certificate: ...


@runtime_checkable
class KeyLister(Protocol):
    """step's `SearchableKeyManager`: the store can enumerate its keys.

    Each row has at least `uri` (the key's URI in the form ca.json's `key` takes); other
    fields (label, id, type) are whatever the store knows.
    """

    def list_keys(self) -> list[dict[str, str]]: ...


@dataclass(frozen=True)
class Attestation:
    """What an attestation certificate says about the attested key (fields may be unknown)."""

    serial: int | None
    firmware: str | None
    pin_policy: str | None
    touch_policy: str | None
    form_factor: int | None


@runtime_checkable
class Attester(Protocol):
    """step's `Attester`: the device proves a key was generated inside it."""

    def attestation_chain(self, name: str) -> list[x509.Certificate]:
        """[attestation certificate, the device's attestation-key certificate, ...]."""
        ...

    def describe_attestation(self, certificate: x509.Certificate) -> Attestation:
        """Read the vendor's extensions of an attestation certificate."""
        ...
