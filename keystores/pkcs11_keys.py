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
from typing import Any, NoReturn, Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import MGF, Mechanism

from keystores import der
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


def _no_export() -> NoReturn:
    raise NonExtractableKeyError("the private key is in a PKCS#11 token and cannot be exported")


def _digest(
    data: bytes, algorithm: hashes.HashAlgorithm | Prehashed
) -> tuple[bytes, hashes.HashAlgorithm]:
    """Hash on the host, or accept a caller's prehashed digest after checking its length."""
    if isinstance(algorithm, Prehashed):
        if len(data) != algorithm.digest_size:
            raise ValueError("the prehashed digest has the wrong length for its algorithm")
        return data, algorithm._algorithm
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm


# DigestInfo algorithm OIDs for PKCS#1 v1.5 (RFC 8017 section 9.2, NIST hash OIDs).
_HASH_OIDS: dict[str, str] = {
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

# PSS parameters name the hash and MGF by mechanism constant (CK_RSA_PKCS_PSS_PARAMS).
_PSS_HASHES: dict[str, tuple[Mechanism, MGF]] = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    "sha224": (Mechanism.SHA224, MGF.SHA224),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}


def digest_info(digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    """DER DigestInfo, the block CKM_RSA_PKCS pads and signs for PKCS#1 v1.5."""
    oid = _HASH_OIDS.get(algorithm.name)
    if oid is None:
        raise UnsupportedAlgorithm(f"PKCS#1 v1.5 with {algorithm.name} is not supported")
    return der.sequence(
        der.sequence(der.object_identifier(oid), der.NULL), der.octet_string(digest)
    )


class Pkcs11EcPrivateKey(ec.EllipticCurvePrivateKey):
    """An ECDSA key in a token: CKM_ECDSA over a host-computed digest, DER-encoded result."""

    def __init__(self, store: RawSigner, ref: KeyRef, public: ec.EllipticCurvePublicKey) -> None:
        self._store = store
        self.ref = ref
        self._public = public

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        signature_algorithm: ec.EllipticCurveSignatureAlgorithm,
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm("only ECDSA signatures are supported")
        if signature_algorithm.deterministic_signing:
            raise UnsupportedAlgorithm("a PKCS#11 token cannot do deterministic (RFC 6979) ECDSA")
        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
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

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise UnsupportedAlgorithm("CA keys in a token are for signing only (no ECDH)")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _no_export()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _no_export()

    def __copy__(self) -> Pkcs11EcPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11EcPrivateKey:
        return self

    def __repr__(self) -> str:
        return f"<Pkcs11EcPrivateKey {self.curve.name} {self.ref.describe()}>"


class Pkcs11RsaPrivateKey(rsa.RSAPrivateKey):
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
        digest, hash_alg = _digest(bytes(data), algorithm)
        if isinstance(padding, _PKCS1v15):
            block = digest_info(digest, hash_alg)
            return self._store.sign_raw(self.ref, Mechanism.RSA_PKCS, block)
        if isinstance(padding, _PSS):
            mgf = padding.mgf
            if not isinstance(mgf, _MGF1):
                raise UnsupportedAlgorithm("PSS needs MGF1")
            hash_mechanism, _ = _pss_hash(hash_alg, "message")
            _, mgf_id = _pss_hash(mgf._algorithm, "MGF1")
            param = (hash_mechanism, mgf_id, self._salt_length(padding, hash_alg))
            return self._store.sign_raw(self.ref, Mechanism.RSA_PKCS_PSS, digest, param)
        raise UnsupportedAlgorithm(f"RSA padding {padding.name} is not supported for signing")

    def _salt_length(self, pss: padding.PSS, hash_alg: hashes.HashAlgorithm) -> int:
        salt = pss._salt_length
        if isinstance(salt, int):
            return salt
        if salt is _PSS.DIGEST_LENGTH:
            return hash_alg.digest_size
        if salt is _PSS.MAX_LENGTH:
            em_len = (self.key_size - 1 + 7) // 8
            return em_len - hash_alg.digest_size - 2
        raise ValueError("PSS salt length AUTO is only for verifying")

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise UnsupportedAlgorithm("CA keys in a token are for signing only (no decryption)")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _no_export()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _no_export()

    def __copy__(self) -> Pkcs11RsaPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11RsaPrivateKey:
        return self

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


class Pkcs11Ed25519PrivateKey(ed25519.Ed25519PrivateKey):
    """An Ed25519 key in a token: CKM_EDDSA over the whole message (PureEdDSA)."""

    def __init__(self, store: RawSigner, ref: KeyRef, public: ed25519.Ed25519PublicKey) -> None:
        self._store = store
        self.ref = ref
        self._public = public

    def sign(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._store.sign_raw(self.ref, Mechanism.EDDSA, bytes(data))

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        _no_export()

    def private_bytes_raw(self) -> bytes:
        _no_export()

    def __copy__(self) -> Pkcs11Ed25519PrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Pkcs11Ed25519PrivateKey:
        return self

    def __repr__(self) -> str:
        return f"<Pkcs11Ed25519PrivateKey {self.ref.describe()}>"


def make_signer(store: RawSigner, ref: KeyRef, public: PublicKey) -> SigningKey:
    """The key object matching the public key's type."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return Pkcs11EcPrivateKey(store, ref, public)
    if isinstance(public, rsa.RSAPublicKey):
        return Pkcs11RsaPrivateKey(store, ref, public)
    return Pkcs11Ed25519PrivateKey(store, ref, public)
