"""`cryptography` private-key objects whose private half stays in a PKCS#11 token.

cryptography's X.509 code checks `isinstance` against its Python ABCs and then calls
`key.sign(...)`, so these subclasses make certificates, CSRs, CRLs and OCSP responses get
signed in the HSM. Hashing happens on the host (SoftHSM 2.6 offers only raw CKM_ECDSA, and
raw mechanisms work the same on every token); the token sees a digest, a DigestInfo (PKCS#1
v1.5), a PSS digest, or the whole message for Ed25519.

A key object holds its store and the key's id/label, never a PKCS#11 handle: handles die
with the session, while these objects must keep working after the store reconnects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import MGF, Mechanism

from keystores.adapters import (
    TokenEcPrivateKey,
    TokenEd25519PrivateKey,
    TokenRsaPrivateKey,
    digest_info,
    host_digest,
    mgf1_algorithm,
    pss_salt_length,
)
from keystores.base import KeyStoreError, PublicKey, SigningKey

__all__ = [
    "KeyRef",
    "NonExtractableKeyError",
    "Pkcs11EcPrivateKey",
    "Pkcs11Ed25519PrivateKey",
    "Pkcs11RsaPrivateKey",
    "TokenSelector",
    "make_signer",
]


class NonExtractableKeyError(KeyStoreError):
    """The private key lives in a token and cannot be exported (by design)."""


@dataclass(frozen=True)
class TokenSelector:
    """Which token of which PKCS#11 module: `kind` is "token" (label), "serial" or "slot-id"."""

    module: str
    kind: str
    value: str

    def describe(self) -> str:
        return f"{self.kind}={self.value!r}"


@dataclass(frozen=True)
class KeyRef:
    """A key pair in a token, found by CKA_ID and/or CKA_LABEL (at least one is set)."""

    token: TokenSelector
    id: bytes | None
    label: str | None

    def describe(self) -> str:
        parts = []
        if self.id is not None:
            parts.append(f"id={self.id.hex()}")
        if self.label is not None:
            parts.append(f"object={self.label!r}")
        return f"pkcs11 key {';'.join(parts)} on {self.token.describe()}"


class RawSigner(Protocol):
    """What a key object needs from its store: one raw signature, under the store's rules."""

    def sign_raw(
        self, key: KeyRef, mechanism: Mechanism, data: bytes, param: Any | None = None
    ) -> bytes: ...


class _Pkcs11Key:
    """What the PKCS#11 key objects share: the store and key reference, PKCS#11 refusals."""

    _store: RawSigner
    ref: KeyRef

    def _export_error(self) -> Exception:
        return NonExtractableKeyError(
            "the private key is in a PKCS#11 token and cannot be exported"
        )

    def _refusal(self, message: str) -> Exception:
        return UnsupportedAlgorithm(message)


# PSS parameters name the hash and MGF by mechanism constant (CK_RSA_PKCS_PSS_PARAMS).
_PSS_HASHES: dict[str, tuple[Mechanism, MGF]] = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    "sha224": (Mechanism.SHA224, MGF.SHA224),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}


class Pkcs11EcPrivateKey(_Pkcs11Key, TokenEcPrivateKey):
    """An ECDSA key in a token: CKM_ECDSA over a host-computed digest, DER-encoded result."""

    _ecdsa_only = "only ECDSA signatures are supported"
    _no_deterministic = "a PKCS#11 token cannot do deterministic (RFC 6979) ECDSA"

    def __init__(self, store: RawSigner, ref: KeyRef, public: ec.EllipticCurvePublicKey) -> None:
        self._store = store
        self.ref = ref
        self._public = public

    def _sign_ecdsa(self, data: bytes, algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
        digest, _ = host_digest(data, algorithm)
        # ECDSA uses the leftmost bits of a longer hash; tokens differ on truncating themselves.
        # (Exact for P-256/P-384; no hash is longer than P-521's 521 bits.)
        digest = digest[: (self.curve.key_size + 7) // 8]
        raw = self._store.sign_raw(self.ref, Mechanism.ECDSA, digest)
        half = len(raw) // 2
        if not raw or len(raw) % 2:
            raise KeyStoreError(f"{self.ref.describe()}: the token returned a malformed signature")
        r = int.from_bytes(raw[:half], "big")
        s = int.from_bytes(raw[half:], "big")
        return encode_dss_signature(r, s)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise UnsupportedAlgorithm("CA keys in a token are for signing only (no ECDH)")

    def __repr__(self) -> str:
        return f"<Pkcs11EcPrivateKey {self.curve.name} {self.ref.describe()}>"


class Pkcs11RsaPrivateKey(_Pkcs11Key, TokenRsaPrivateKey):
    """An RSA key in a token: PKCS#1 v1.5 (CKM_RSA_PKCS over a DigestInfo) or PSS
    (CKM_RSA_PKCS_PSS over a digest), hashing on the host either way."""

    def __init__(self, store: RawSigner, ref: KeyRef, public: rsa.RSAPublicKey) -> None:
        self._store = store
        self.ref = ref
        self._public = public

    def sign(
        self,
        data: bytes,
        padding: padding.AsymmetricPadding,
        algorithm: hashes.HashAlgorithm | Prehashed | asym_utils.NoDigestInfo,
    ) -> bytes:
        if _NoDigestInfo is not None and isinstance(algorithm, _NoDigestInfo):
            if not isinstance(padding, _PKCS1v15):
                raise ValueError("NoDigestInfo is only for PKCS#1 v1.5 signatures")
            return self._store.sign_raw(self.ref, Mechanism.RSA_PKCS, bytes(data))
        if not isinstance(algorithm, hashes.HashAlgorithm | Prehashed):
            raise UnsupportedAlgorithm("unsupported RSA signature hash")
        digest, hash_alg = host_digest(bytes(data), algorithm)
        if isinstance(padding, _PKCS1v15):
            block = digest_info(digest, hash_alg)
            return self._store.sign_raw(self.ref, Mechanism.RSA_PKCS, block)
        if isinstance(padding, _PSS):
            mgf = padding.mgf
            if not isinstance(mgf, _MGF1):
                raise UnsupportedAlgorithm("PSS needs MGF1")
            hash_mechanism, _ = _pss_hash(hash_alg, "message")
            _, mgf_id = _pss_hash(mgf1_algorithm(mgf), "MGF1")
            param = (hash_mechanism, mgf_id, self._salt_length(padding, hash_alg))
            return self._store.sign_raw(self.ref, Mechanism.RSA_PKCS_PSS, digest, param)
        raise UnsupportedAlgorithm(f"RSA padding {padding.name} is not supported for signing")

    def _salt_length(self, pss: padding.PSS, hash_alg: hashes.HashAlgorithm) -> int:
        salt = pss_salt_length(pss)
        if isinstance(salt, int):
            return salt
        if salt is _PSS.DIGEST_LENGTH:
            return hash_alg.digest_size
        if salt is _PSS.MAX_LENGTH:
            em_len = (self.key_size - 1 + 7) // 8
            return em_len - hash_alg.digest_size - 2
        raise ValueError("PSS salt length AUTO is only for verifying")

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise UnsupportedAlgorithm("CA keys in a token are for signing only (no decryption)")

    def __repr__(self) -> str:
        return f"<Pkcs11RsaPrivateKey {self.key_size} {self.ref.describe()}>"


_PKCS1v15 = padding.PKCS1v15
# cryptography 50 added NoDigestInfo (sign a ready-made DigestInfo); older releases lack it.
_NoDigestInfo: type | None = getattr(asym_utils, "NoDigestInfo", None)
_PSS = padding.PSS
_MGF1 = padding.MGF1


def _pss_hash(algorithm: hashes.HashAlgorithm, what: str) -> tuple[Mechanism, MGF]:
    found = _PSS_HASHES.get(algorithm.name)
    if found is None:
        raise UnsupportedAlgorithm(f"PSS {what} hash {algorithm.name} is not supported")
    return found


class Pkcs11Ed25519PrivateKey(_Pkcs11Key, TokenEd25519PrivateKey):
    """An Ed25519 key in a token: CKM_EDDSA over the whole message (PureEdDSA)."""

    def __init__(self, store: RawSigner, ref: KeyRef, public: ed25519.Ed25519PublicKey) -> None:
        self._store = store
        self.ref = ref
        self._public = public

    def _sign_eddsa(self, data: bytes) -> bytes:
        return self._store.sign_raw(self.ref, Mechanism.EDDSA, data)

    def __repr__(self) -> str:
        return f"<Pkcs11Ed25519PrivateKey {self.ref.describe()}>"


def make_signer(store: RawSigner, ref: KeyRef, public: PublicKey) -> SigningKey:
    """The key object matching the public key's type."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return Pkcs11EcPrivateKey(store, ref, public)
    if isinstance(public, rsa.RSAPublicKey):
        return Pkcs11RsaPrivateKey(store, ref, public)
    return Pkcs11Ed25519PrivateKey(store, ref, public)
