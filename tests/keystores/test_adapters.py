"""The shared token-key adapters: DigestInfo encoding, export refusal, ECDSA checks."""

from __future__ import annotations

import copy

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from keystores.adapters import TokenEcPrivateKey, digest_info, host_digest

# DER DigestInfo prefixes from RFC 8017 section 9.2, note 1.
_PREFIXES = {
    "sha224": "302d300d06096086480165030402040500041c",
    "sha256": "3031300d060960864801650304020105000420",
    "sha384": "3041300d060960864801650304020205000430",
    "sha512": "3051300d060960864801650304020305000440",
    "sha3-256": "3031300d060960864801650304020805000420",
    "sha3-384": "3041300d060960864801650304020905000430",
    "sha3-512": "3051300d060960864801650304020a05000440",
}
_HASHES = {
    "sha224": hashes.SHA224(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
    "sha3-256": hashes.SHA3_256(),
    "sha3-384": hashes.SHA3_384(),
    "sha3-512": hashes.SHA3_512(),
}


@pytest.mark.parametrize("name", sorted(_PREFIXES))
def test_digest_info_matches_rfc8017_prefixes(name: str) -> None:
    algorithm = _HASHES[name]
    digest, _ = host_digest(b"abc", algorithm)
    assert digest_info(digest, algorithm) == bytes.fromhex(_PREFIXES[name]) + digest


def test_host_digest_checks_prehashed_length() -> None:
    with pytest.raises(ValueError, match="wrong length"):
        host_digest(b"short", Prehashed(hashes.SHA256()))


class _Refused(Exception):
    pass


class _FakeEcKey(TokenEcPrivateKey):
    _ecdsa_only = "ecdsa only"
    _no_deterministic = "no rfc6979"

    def __init__(self) -> None:
        self._public = ec.generate_private_key(ec.SECP256R1()).public_key()
        self.calls: list[bytes] = []

    def _export_error(self) -> Exception:
        return _Refused("no export")

    def _refusal(self, message: str) -> Exception:
        return _Refused(message)

    def _sign_ecdsa(self, data: bytes, algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
        self.calls.append(data)
        return b"sig"

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise _Refused("no ecdh")


def test_ec_base_checks_and_delegates() -> None:
    key = _FakeEcKey()
    assert key.sign(bytearray(b"m"), ec.ECDSA(hashes.SHA256())) == b"sig"
    assert key.calls == [b"m"]
    with pytest.raises(_Refused, match="no rfc6979"):
        key.sign(b"m", ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    with pytest.raises(_Refused, match="no export"):
        key.private_numbers()
    assert key.key_size == 256
    assert key.curve.name == "secp256r1"
    assert copy.deepcopy(key) is key
