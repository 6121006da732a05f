"""Base classes for `cryptography` private-key objects whose private half stays in a token.

cryptography's X.509 code checks `isinstance` against its Python ABCs and then calls
`key.sign(...)`. The classes here hold what every token-backed key shares: the public half
(`public_key()`, `key_size`, `curve`), the ECDSA argument checks, refusing to export the
private key, and identity on copy. A backend (PKCS#11, YubiKey PIV) subclasses them, sets
`_public`, and supplies the private-key operation through one hook per algorithm
(`_sign_ecdsa`, RSA's `sign`, `_sign_eddsa`) plus its own error types (`_export_error`,
`_refusal`).

Also here: host-side hashing (`host_digest`) and the PKCS#1 v1.5 DigestInfo (`digest_info`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Generic, Self, TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.utils import Buffer

from pki import der

__all__ = [
    "TokenEcPrivateKey",
    "TokenEd25519PrivateKey",
    "TokenRsaPrivateKey",
    "digest_info",
    "host_digest",
    "mgf1_algorithm",
    "prehashed_algorithm",
    "pss_salt_length",
]


# cryptography keeps these three parameters in private attributes with no public accessor.
# Reading them happens here only, each checked, so a cryptography release that renames one
# fails with a clear error (and in tests) instead of signing with a wrong parameter.


def _hidden(obj: object, attr: str) -> object:
    try:
        return getattr(obj, attr)
    except AttributeError:
        raise UnsupportedAlgorithm(
            f"this cryptography release hides {type(obj).__name__}'s parameters"
        ) from None


def prehashed_algorithm(algorithm: Prehashed) -> hashes.HashAlgorithm:
    """The hash a `Prehashed` wraps."""
    found = _hidden(algorithm, "_algorithm")
    if not isinstance(found, hashes.HashAlgorithm):
        raise UnsupportedAlgorithm("Prehashed holds no hash algorithm")
    return found


def mgf1_algorithm(mgf: padding.MGF1) -> hashes.HashAlgorithm:
    """The hash an `MGF1` mask generation function uses."""
    found = _hidden(mgf, "_algorithm")
    if not isinstance(found, hashes.HashAlgorithm):
        raise UnsupportedAlgorithm("MGF1 holds no hash algorithm")
    return found


def pss_salt_length(pss: padding.PSS) -> object:
    """The salt length a `PSS` padding asks for: bytes (int), or one of PSS's markers
    (`PSS.DIGEST_LENGTH`, `PSS.MAX_LENGTH`, `PSS.AUTO`), compared by identity."""
    return _hidden(pss, "_salt_length")


def host_digest(
    data: bytes, algorithm: hashes.HashAlgorithm | Prehashed
) -> tuple[bytes, hashes.HashAlgorithm]:
    """Hash on the host, or accept a caller's prehashed digest after checking its length."""
    if isinstance(algorithm, Prehashed):
        if len(data) != algorithm.digest_size:
            raise ValueError("the prehashed digest has the wrong length for its algorithm")
        return data, prehashed_algorithm(algorithm)
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm


# DigestInfo algorithm OIDs for PKCS#1 v1.5 (RFC 8017 section 9.2, NIST hash OIDs).
HASH_OIDS: dict[str, str] = {
    "sha1": "1.3.14.3.2.26",
    "sha224": "2.16.840.1.101.3.4.2.4",
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
    "sha512-224": "2.16.840.1.101.3.4.2.5",
    "sha512-256": "2.16.840.1.101.3.4.2.6",
    "sha3-224": "2.16.840.1.101.3.4.2.7",
    "sha3-256": "2.16.840.1.101.3.4.2.8",
    "sha3-384": "2.16.840.1.101.3.4.2.9",
    "sha3-512": "2.16.840.1.101.3.4.2.10",
}


def digest_info(digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    """DER DigestInfo, the block a raw RSA PKCS#1 v1.5 signature pads and signs."""
    oid = HASH_OIDS.get(algorithm.name)
    if oid is None:
        raise UnsupportedAlgorithm(f"PKCS#1 v1.5 with {algorithm.name} is not supported")
    return der.sequence(
        der.sequence(der.object_identifier(oid), der.NULL), der.octet_string(digest)
    )


_PublicT = TypeVar("_PublicT")


class _TokenKey(ABC, Generic[_PublicT]):
    """What every token-backed key shares: the public half, no export, copies are itself."""

    _public: _PublicT

    def public_key(self) -> _PublicT:
        return self._public

    @abstractmethod
    def _export_error(self) -> Exception:
        """The exception that refuses exporting the private key."""

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise self._export_error()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class TokenEcPrivateKey(_TokenKey[ec.EllipticCurvePublicKey], ec.EllipticCurvePrivateKey):
    """An EC key in a token: ECDSA (never deterministic) through `_sign_ecdsa`.

    Subclasses set `_public` and the two refusal messages, and implement `exchange`."""

    _ecdsa_only: ClassVar[str]
    _no_deterministic: ClassVar[str]

    @abstractmethod
    def _refusal(self, message: str) -> Exception:
        """The exception for a signature algorithm the token will not do."""

    @abstractmethod
    def _sign_ecdsa(self, data: bytes, algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
        """A DER-encoded ECDSA signature of `data` hashed with `algorithm`."""

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise self._refusal(self._ecdsa_only)
        if signature_algorithm.deterministic_signing:
            raise self._refusal(self._no_deterministic)
        return self._sign_ecdsa(bytes(data), signature_algorithm.algorithm)

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise self._export_error()


class TokenRsaPrivateKey(_TokenKey[rsa.RSAPublicKey], rsa.RSAPrivateKey):
    """An RSA key in a token. Subclasses set `_public` and implement `sign` and `decrypt`."""

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise self._export_error()

    @property
    def key_size(self) -> int:
        return self._public.key_size


class TokenEd25519PrivateKey(_TokenKey[ed25519.Ed25519PublicKey], ed25519.Ed25519PrivateKey):
    """An Ed25519 key in a token: PureEdDSA over the whole message through `_sign_eddsa`."""

    @abstractmethod
    def _sign_eddsa(self, data: bytes) -> bytes:
        """The Ed25519 signature of the whole message `data`."""

    def sign(self, data: Buffer) -> bytes:
        return self._sign_eddsa(bytes(data))

    def private_bytes_raw(self) -> bytes:
        raise self._export_error()
