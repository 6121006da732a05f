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
from typing import Protocol

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed
from cryptography.utils import Buffer
from yubikit.piv import KEY_TYPE, PIN_POLICY, SLOT, TOUCH_POLICY

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

# DER DigestInfo prefixes (RFC 8017 section 9.2, note 1).
_DIGEST_INFO: dict[str, bytes] = {
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
    "sha3-256": bytes.fromhex("3031300d060960864801650304020805000420"),
    "sha3-384": bytes.fromhex("3041300d060960864801650304020905000430"),
    "sha3-512": bytes.fromhex("3051300d060960864801650304020a05000440"),
}


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


def _no_export() -> KeyStoreError:
    return KeyStoreError("the private key stays on the YubiKey: it cannot be exported")


def pkcs1v15_encode(
    message: bytes, algorithm: hashes.HashAlgorithm | Prehashed | NoDigestInfo, size: int
) -> bytes | None:
    """EMSA-PKCS1-v1_5 for a `size`-byte modulus, or None for a hash we have no prefix for."""
    if isinstance(algorithm, NoDigestInfo):
        t = message
    else:
        hash_algorithm = algorithm._algorithm if isinstance(algorithm, Prehashed) else algorithm
        prefix = _DIGEST_INFO.get(hash_algorithm.name)
        if prefix is None:
            return None
        if isinstance(algorithm, Prehashed):
            digest = message
            if len(digest) != hash_algorithm.digest_size:
                raise ValueError("the prehashed digest has the wrong length for its algorithm")
        else:
            h = hashes.Hash(hash_algorithm)
            h.update(message)
            digest = h.finalize()
        t = prefix + digest
    if len(t) + 11 > size:
        raise ValueError("the digest is too long for this RSA key")
    return b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t


class YubiKeyECSigner(ec.EllipticCurvePrivateKey):
    """An EC key (P-256, P-384) in a YubiKey slot."""

    def __init__(self, card: SlotOperations, info: SlotInfo) -> None:
        if not isinstance(info.public_key, ec.EllipticCurvePublicKey):
            raise KeyStoreError("not an EC key")
        self._card = card
        self._info = info
        self._public = info.public_key

    @property
    def slot(self) -> SLOT:
        return self._info.slot

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise KeyStoreError("a YubiKey EC key signs ECDSA only")
        if signature_algorithm.deterministic_signing:
            raise KeyStoreError("a YubiKey does not make deterministic ECDSA signatures")
        return self._card.slot_sign(self._info, bytes(data), signature_algorithm.algorithm, None)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        if not isinstance(algorithm, ec.ECDH):
            raise KeyStoreError("a YubiKey EC key exchanges with ECDH only")
        return self._card.slot_exchange(self._info, peer_public_key)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise _no_export()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _no_export()

    def __copy__(self) -> YubiKeyECSigner:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> YubiKeyECSigner:
        return self

    def __repr__(self) -> str:
        return f"<YubiKeyECSigner slot={int(self.slot):02x} curve={self.curve.name}>"


class YubiKeyRSASigner(rsa.RSAPrivateKey):
    """An RSA key in a YubiKey slot."""

    def __init__(self, card: SlotOperations, info: SlotInfo) -> None:
        if not isinstance(info.public_key, rsa.RSAPublicKey):
            raise KeyStoreError("not an RSA key")
        self._card = card
        self._info = info
        self._public = info.public_key

    @property
    def slot(self) -> SLOT:
        return self._info.slot

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

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise _no_export()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _no_export()

    def __copy__(self) -> YubiKeyRSASigner:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> YubiKeyRSASigner:
        return self

    def __repr__(self) -> str:
        return f"<YubiKeyRSASigner slot={int(self.slot):02x} bits={self.key_size}>"


class YubiKeyEd25519Signer(ed25519.Ed25519PrivateKey):
    """An Ed25519 key in a YubiKey slot (firmware 5.7 and later)."""

    def __init__(self, card: SlotOperations, info: SlotInfo) -> None:
        if not isinstance(info.public_key, ed25519.Ed25519PublicKey):
            raise KeyStoreError("not an Ed25519 key")
        self._card = card
        self._info = info
        self._public = info.public_key

    @property
    def slot(self) -> SLOT:
        return self._info.slot

    def sign(self, data: Buffer) -> bytes:
        return self._card.slot_sign(self._info, bytes(data), None, None)

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _no_export()

    def private_bytes_raw(self) -> bytes:
        raise _no_export()

    def __copy__(self) -> YubiKeyEd25519Signer:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> YubiKeyEd25519Signer:
        return self

    def __repr__(self) -> str:
        return f"<YubiKeyEd25519Signer slot={int(self.slot):02x}>"


def make_signer(card: SlotOperations, info: SlotInfo) -> SigningKey:
    """The signer class that fits the slot's public key."""
    if isinstance(info.public_key, ec.EllipticCurvePublicKey):
        return YubiKeyECSigner(card, info)
    if isinstance(info.public_key, rsa.RSAPublicKey):
        return YubiKeyRSASigner(card, info)
    return YubiKeyEd25519Signer(card, info)
