"""Signers for keys in YubiKey PIV slots, as `cryptography` private-key objects.

Each signer forwards the private-key operation to its store (`SlotOperations`), which holds
the card session, serialises access, and verifies the PIN as the slot's policy asks. The
private key never leaves the card: `private_numbers` and `private_bytes` refuse.

RSA PKCS#1 v1.5 signatures are encoded here (EMSA-PKCS1-v1_5) and sent as one raw RSA
operation; yubikit's own padding path generates a throw-away RSA key per signature, which it
still does for PSS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed
from yubikit.piv import KEY_TYPE, PIN_POLICY, SLOT, TOUCH_POLICY

from keystores.adapters import (
    TokenEcPrivateKey,
    TokenEd25519PrivateKey,
    TokenRsaPrivateKey,
    digest_info,
    host_digest,
    prehashed_algorithm,
)
from keystores.base import KeyStoreError, PublicKey, SigningKey

__all__ = [
    "SlotInfo",
    "SlotOperations",
    "YubiKeyECSigner",
    "YubiKeyEd25519Signer",
    "YubiKeyRSASigner",
    "make_signer",
    "pkcs1v15_encode",
]

# The hashes encoded here; others go through yubikit's own padding path.
_DIGEST_INFO_HASHES = frozenset(
    {"sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"}
)


@dataclass(frozen=True)
class SlotInfo:
    """What the store knows about the key in a slot. `pin_policy` is None when the card
    cannot say (firmware before 5.3): the PIN is then verified before every operation."""

    slot: SLOT
    key_type: KEY_TYPE
    pin_policy: PIN_POLICY | None
    touch_policy: TOUCH_POLICY | None
    public_key: PublicKey


class SlotOperations(Protocol):
    """The store side of a signer: each call verifies the PIN as needed, under the lock."""

    def slot_sign(
        self,
        info: SlotInfo,
        message: bytes,
        hash_algorithm: hashes.HashAlgorithm | Prehashed | None,
        padding: AsymmetricPadding | None,
    ) -> bytes: ...

    def slot_rsa_raw(self, info: SlotInfo, block: bytes) -> bytes: ...

    def slot_decrypt(
        self, info: SlotInfo, ciphertext: bytes, padding: AsymmetricPadding
    ) -> bytes: ...

    def slot_exchange(self, info: SlotInfo, peer: ec.EllipticCurvePublicKey) -> bytes: ...


def _slot_public(info: SlotInfo, kind: type[Any], name: str) -> Any:
    """The slot's public key, after checking it is a `kind` (the caller's `_public` type)."""
    if not isinstance(info.public_key, kind):
        raise KeyStoreError(f"not an {name} key")
    return info.public_key


def pkcs1v15_encode(
    message: bytes, algorithm: hashes.HashAlgorithm | Prehashed | NoDigestInfo, size: int
) -> bytes | None:
    """EMSA-PKCS1-v1_5 for a `size`-byte modulus, or None for a hash we have no prefix for."""
    if isinstance(algorithm, NoDigestInfo):
        t = message
    else:
        hash_algorithm = (
            prehashed_algorithm(algorithm) if isinstance(algorithm, Prehashed) else algorithm
        )
        if hash_algorithm.name not in _DIGEST_INFO_HASHES:
            return None
        digest, _ = host_digest(message, algorithm)
        t = digest_info(digest, hash_algorithm)
    if len(t) + 11 > size:
        raise ValueError("the digest is too long for this RSA key")
    return b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t


class _SlotKey:
    """What the YubiKey signers share: the store and slot, and YubiKey refusals."""

    _card: SlotOperations
    _info: SlotInfo

    @property
    def slot(self) -> SLOT:
        return self._info.slot

    def _export_error(self) -> Exception:
        return KeyStoreError("the private key stays on the YubiKey: it cannot be exported")

    def _refusal(self, message: str) -> Exception:
        return KeyStoreError(message)


class YubiKeyECSigner(_SlotKey, TokenEcPrivateKey):
    """An EC key (P-256, P-384) in a YubiKey slot."""

    _ecdsa_only = "a YubiKey EC key signs ECDSA only"
    _no_deterministic = "a YubiKey does not make deterministic ECDSA signatures"

    def __init__(self, card: SlotOperations, info: SlotInfo) -> None:
        self._public = _slot_public(info, ec.EllipticCurvePublicKey, "EC")
        self._card = card
        self._info = info

    def _sign_ecdsa(self, data: bytes, algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
        return self._card.slot_sign(self._info, data, algorithm, None)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        if not isinstance(algorithm, ec.ECDH):
            raise KeyStoreError("a YubiKey EC key exchanges with ECDH only")
        return self._card.slot_exchange(self._info, peer_public_key)

    def __repr__(self) -> str:
        return f"<YubiKeyECSigner slot={int(self.slot):02x} curve={self.curve.name}>"


class YubiKeyRSASigner(_SlotKey, TokenRsaPrivateKey):
    """An RSA key in a YubiKey slot."""

    def __init__(self, card: SlotOperations, info: SlotInfo) -> None:
        self._public = _slot_public(info, rsa.RSAPublicKey, "RSA")
        self._card = card
        self._info = info

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | NoDigestInfo,
    ) -> bytes:
        if isinstance(padding, PKCS1v15):
            block = pkcs1v15_encode(bytes(data), algorithm, self.key_size // 8)
            if block is not None:
                return self._card.slot_rsa_raw(self._info, block)
        if isinstance(algorithm, NoDigestInfo):
            raise KeyStoreError("NoDigestInfo needs PKCS#1 v1.5 padding")
        return self._card.slot_sign(self._info, bytes(data), algorithm, padding)

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        return self._card.slot_decrypt(self._info, ciphertext, padding)

    def __repr__(self) -> str:
        return f"<YubiKeyRSASigner slot={int(self.slot):02x} bits={self.key_size}>"


class YubiKeyEd25519Signer(_SlotKey, TokenEd25519PrivateKey):
    """An Ed25519 key in a YubiKey slot (firmware 5.7 and later)."""

    def __init__(self, card: SlotOperations, info: SlotInfo) -> None:
        self._public = _slot_public(info, ed25519.Ed25519PublicKey, "Ed25519")
        self._card = card
        self._info = info

    def _sign_eddsa(self, data: bytes) -> bytes:
        return self._card.slot_sign(self._info, data, None, None)

    def __repr__(self) -> str:
        return f"<YubiKeyEd25519Signer slot={int(self.slot):02x}>"


def make_signer(card: SlotOperations, info: SlotInfo) -> SigningKey:
    """The signer class that fits the slot's public key."""
    if isinstance(info.public_key, ec.EllipticCurvePublicKey):
        return YubiKeyECSigner(card, info)
    if isinstance(info.public_key, rsa.RSAPublicKey):
        return YubiKeyRSASigner(card, info)
    return YubiKeyEd25519Signer(card, info)
