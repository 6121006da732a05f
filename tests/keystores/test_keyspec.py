"""KeySpec validates step's key vocabulary up front and generates the matching key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keystores import KeySpec, KeyStoreError


def test_defaults_are_p256() -> None:
    key = KeySpec().generate()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


@pytest.mark.parametrize(("curve", "name"), [("P-384", "secp384r1"), ("P-521", "secp521r1")])
def test_ec_curves(curve: str, name: str) -> None:
    key = KeySpec("EC", curve).generate()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == name


def test_rsa_size() -> None:
    key = KeySpec("RSA", size=3072).generate()
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 3072


def test_ed25519() -> None:
    assert isinstance(KeySpec("OKP", "Ed25519").generate(), ed25519.Ed25519PrivateKey)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kty": "RSA", "size": 1024}, "too small"),
        ({"kty": "EC", "curve": "P-192"}, "unsupported EC curve"),
        ({"kty": "OKP"}, "unsupported OKP curve"),
        ({"kty": "OKP", "curve": "Ed448"}, "unsupported OKP curve"),
        ({"kty": "DSA"}, "unsupported key type"),
    ],
)
def test_rejects_bad_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(KeyStoreError, match=message):
        KeySpec(**kwargs)  # type: ignore[arg-type]
