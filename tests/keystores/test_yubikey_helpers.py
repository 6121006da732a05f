"""Shared pieces of the YubiKey store tests (no tests here): emulated cards plugged in
through the store's connection-provider seam, and certificate builders for chains that
OpenSSL checks strictly."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from yubikit.core import TRANSPORT
from yubikit.core.smartcard import SmartCardConnection

from keystores import PublicKey, SigningKey
from keystores.yubikey import ENV_LOCK_DIR, Reader, register_connection_provider
from tests.piv_emulator import EmulatedConnection, VirtualPiv, new_card_state

from .conftest import OPENSSL

#: A store URI that may administer a factory-fresh card, with its default PIN.
ADMIN = "yubikey:allow-default-management-key=true?pin-value=123456"


class Cards:
    """The emulated YubiKeys "plugged in" for a test, and every connection opened to them."""

    def __init__(self) -> None:
        self.cards: list[VirtualPiv] = []
        self.connections: list[EmulatedConnection] = []
        self.transport = TRANSPORT.USB

    def add(
        self, version: tuple[int, int, int] = (5, 7, 2), serial: int | None = None
    ) -> VirtualPiv:
        card = VirtualPiv(new_card_state(version, serial))
        self.cards.append(card)
        return card

    def provider(self) -> list[Reader]:
        def opener(card: VirtualPiv) -> SmartCardConnection:
            connection = card.connect(self.transport)
            self.connections.append(connection)
            return connection

        return [
            (f"Emulated YubiKey {i}", lambda card=card: opener(card))  # type: ignore[misc]
            for i, card in enumerate(self.cards)
        ]


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the per-YubiKey lock files of a test in its own directory."""
    path = tmp_path / "locks"
    path.mkdir()
    monkeypatch.setenv(ENV_LOCK_DIR, str(path))
    return path


@pytest.fixture
def cards() -> Iterator[Cards]:
    plugged = Cards()
    previous = register_connection_provider(plugged.provider)
    try:
        yield plugged
    finally:
        register_connection_provider(previous)


@pytest.fixture
def card(cards: Cards) -> VirtualPiv:
    return cards.add(serial=11111111)


def verifies(card: VirtualPiv) -> int:
    """How many times the card was sent a PIN (VERIFY with data)."""
    return card.pins_sent


# --- certificates ------------------------------------------------------------------------


def hash_for(key: SigningKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Stepstone tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def _base(
    subject: x509.Name, issuer: x509.Name, public: PublicKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def make_root(key: SigningKey) -> x509.Certificate:
    name = _name("YubiKey Root CA")
    return (
        _base(name, name, key.public_key(), 3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .sign(key, hash_for(key))
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def make_intermediate(
    public: PublicKey, root: x509.Certificate, root_key: SigningKey
) -> x509.Certificate:
    return (
        _base(_name("YubiKey Intermediate CA"), root.subject, public, 1825)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(_aki(root), critical=False)
        .sign(root_key, hash_for(root_key))
    )


def make_leaf(
    public: PublicKey, issuer: x509.Certificate, issuer_key: SigningKey, dns: str = "leaf.internal"
) -> x509.Certificate:
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    return (
        _base(_name(dns), issuer.subject, public, 1)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .add_extension(_aki(issuer), critical=False)
        .sign(issuer_key, hash_for(issuer_key))
    )


def software_key(kind: str) -> SigningKey:
    if kind == "RSA":
        return rsa.generate_private_key(65537, 2048)
    if kind == "OKP":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def openssl_verify(
    directory: Path, root: x509.Certificate, chain: list[x509.Certificate], *flags: str
) -> subprocess.CompletedProcess[str]:
    """`openssl verify -x509_strict` of chain[0] with chain[1:] as untrusted intermediates."""
    (directory / "root.pem").write_bytes(root.public_bytes(Encoding.PEM))
    (directory / "untrusted.pem").write_bytes(
        b"".join(c.public_bytes(Encoding.PEM) for c in chain[1:])
    )
    (directory / "leaf.pem").write_bytes(chain[0].public_bytes(Encoding.PEM))
    args = [OPENSSL, "verify", "-x509_strict", *flags, "-CAfile", "root.pem"]
    if len(chain) > 1:
        args += ["-untrusted", "untrusted.pem"]
    return subprocess.run(
        [*args, "leaf.pem"], cwd=directory, capture_output=True, text=True, check=False
    )
