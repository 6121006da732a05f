"""The renewal schedule and crash-safe replacement of certificate/key pairs."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from cli.ca import certfiles
from cli.ca.renewal import next_renewal
from cli.common import CLIError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _cert(key: ec.EllipticCurvePrivateKey, start: datetime, life: timedelta) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pair.test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + life)
        .sign(key, hashes.SHA256())
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_default_schedule_is_two_thirds_minus_jitter(jitter: float) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(key, NOW, timedelta(hours=24))
    wait = next_renewal(cert, NOW, rng=lambda lo, hi: lo + (hi - lo) * jitter)
    assert wait == timedelta(hours=16) - timedelta(hours=24) / 20 * jitter


def test_schedule_edges() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(key, NOW, timedelta(hours=3))
    assert next_renewal(cert, NOW + timedelta(hours=2, minutes=30)) == timedelta(0)
    assert next_renewal(
        cert, NOW, expires_in=timedelta(hours=1), rng=lambda lo, hi: 0
    ) == timedelta(hours=2)
    assert next_renewal(cert, NOW, renew_period=timedelta(minutes=10)) == timedelta(minutes=10)
    assert next_renewal(
        cert, NOW + timedelta(hours=2, minutes=55), renew_period=timedelta(minutes=10)
    ) == timedelta(0)
    near = NOW + timedelta(hours=2) - timedelta(minutes=1)  # less than 1/20 of life left
    assert next_renewal(cert, near, rng=lambda lo, hi: hi) == timedelta(minutes=1)


def _pair(tmp: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    crt, key_path = tmp / "a.crt", tmp / "a.key"
    certfiles.save_certificate(crt, [_cert(key, NOW, timedelta(days=1))])
    key_path.write_bytes(_key_pem(key))
    return crt, key_path, key


def test_save_pair_replaces_both(tmp_path: Path) -> None:
    crt, key_path, _ = _pair(tmp_path)
    new = ec.generate_private_key(ec.SECP256R1())
    certfiles.save_pair(crt, key_path, [_cert(new, NOW, timedelta(days=1))], _key_pem(new))
    assert certfiles.load_pair(crt, key_path).leaf.public_key() == new.public_key()
    assert oct(crt.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("stage", ["crt-next-only", "both-next", "key-renamed"])
def test_interrupted_replacement_recovers_a_matching_pair(tmp_path: Path, stage: str) -> None:
    crt, key_path, old = _pair(tmp_path)
    new = ec.generate_private_key(ec.SECP256R1())
    crt_next, key_next = tmp_path / "a.crt.next", tmp_path / "a.key.next"
    crt_next.write_bytes(certfiles.chain_pem([_cert(new, NOW, timedelta(days=1))]))
    if stage in ("both-next", "key-renamed"):
        key_next.write_bytes(_key_pem(new))
    if stage == "key-renamed":
        os.replace(key_next, key_path)
    pair = certfiles.load_pair(crt, key_path)
    expected = old if stage == "crt-next-only" else new
    assert pair.leaf.public_key() == expected.public_key()
    assert not crt_next.exists() and not key_next.exists()


def test_mismatched_pair_is_refused(tmp_path: Path) -> None:
    crt, key_path, _ = _pair(tmp_path)
    key_path.write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(CLIError, match="does not match"):
        certfiles.load_pair(crt, key_path)
