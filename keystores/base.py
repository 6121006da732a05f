"""The KeyStore interface every backend (file, PKCS#11, YubiKey) implements.

Modelled on step's KMS `KeyManager`: keys are addressed by a name (a path or URI), and a
signer is a `cryptography` private-key object, so the same certificate, CSR and CRL builders
work whether the key sits in a file, an HSM or a YubiKey.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

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
]

# The key types every store supports. Narrower than cryptography's PrivateKeyTypes on purpose:
# these are exactly the types CertificateBuilder.sign accepts and HSM adapters subclass.
SigningKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class KeyStoreError(Exception):
    """A key store failure the operator can act on; the message is one line, fit to print."""


class KeyStoreUnavailableError(KeyStoreError):
    """The store is there but cannot answer now (HSM restarted, token removed): retry later.

    The API maps it to 503; the backend reconnects on the next request.
    """


class WrongPasswordError(KeyStoreError):
    """The password (or PIN) is wrong or missing."""


class KeyExistsError(KeyStoreError):
    """Creating a key would replace an existing one and overwrite was not asked for."""


class KeyNotFoundError(KeyStoreError):
    """No key under that name."""


_EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class KeySpec:
    """What key to create, in step's vocabulary (`--kty`, `--crv`, `--size`).

    Validated on construction so a bad ca.json or flag fails before any ceremony starts.
    `curve` is ignored for RSA; OKP needs `curve="Ed25519"`.
    """

    kty: str = "EC"
    curve: str = "P-256"
    size: int = 2048

    def __post_init__(self) -> None:
        if self.kty == "EC":
            if self.curve not in _EC_CURVES:
                supported = ", ".join(_EC_CURVES)
                raise KeyStoreError(f"unsupported EC curve {self.curve!r} (use {supported})")
        elif self.kty == "RSA":
            if isinstance(self.size, bool) or not isinstance(self.size, int):
                raise KeyStoreError(f"RSA key size must be an integer, not {self.size!r}")
            if self.size < _MIN_RSA_BITS:
                raise KeyStoreError(
                    f"RSA key size {self.size} is too small (at least {_MIN_RSA_BITS} bits)"
                )
        elif self.kty == "OKP":
            if self.curve != "Ed25519":
                raise KeyStoreError(f"unsupported OKP curve {self.curve!r} (use Ed25519)")
        else:
            raise KeyStoreError(f"unsupported key type {self.kty!r} (use EC, RSA or OKP)")

    def generate(self) -> SigningKey:
        """Generate the key in memory, for stores whose keys may exist outside hardware."""
        if self.kty == "EC":
            return ec.generate_private_key(_EC_CURVES[self.curve]())
        if self.kty == "RSA":
            return rsa.generate_private_key(public_exponent=65537, key_size=self.size)
        return ed25519.Ed25519PrivateKey.generate()


class KeyStore(ABC):
    """A place that holds private keys and hands out signers for them.

    Return types are the narrow `SigningKey`/`PublicKey` unions (subtypes of cryptography's
    PrivateKeyTypes/PublicKeyTypes) so callers can pass them to x509 builders without casts.
    Optional capabilities are the protocols of `keystores.capabilities`.
    """

    #: A short name for messages ("the file key store cannot list keys").
    kind: ClassVar[str] = "key"

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: str, *, password: bytes | None, base_dir: Path | None) -> Self:
        """Open the store a key URI points at; used by `open_keystore`."""

    @abstractmethod
    def create_key(self, name: str, spec: KeySpec, *, overwrite: bool = False) -> PublicKey:
        """Create a new key under `name`; KeyExistsError if one is there and not `overwrite`."""

    @abstractmethod
    def public_key(self, name: str) -> PublicKey:
        """The public half of the key `name`."""

    @abstractmethod
    def signer(self, name: str) -> SigningKey:
        """A private-key object for `name`, usable in `CertificateBuilder.sign`."""

    @abstractmethod
    def close(self) -> None:
        """Release sessions and forget cached keys. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
