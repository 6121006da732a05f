"""FileKeyStore: keys round-trip encrypted, are private on disk, and fail with clear errors."""

from __future__ import annotations

import base64
import datetime
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.x509.oid import NameOID

from keystores import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStoreError,
    PublicKey,
    SigningKey,
    WrongPasswordError,
    pkcs8,
)
from keystores.file import FileKeyStore, encrypt_private_key_pem, load_private_key_pem
from pki import der

from .conftest import PASSWORD

SPECS = [
    pytest.param(KeySpec("EC", "P-256"), id="ec-p256"),
    pytest.param(KeySpec("EC", "P-384"), id="ec-p384"),
    pytest.param(KeySpec("RSA", size=2048), id="rsa-2048"),
    pytest.param(KeySpec("OKP", "Ed25519"), id="ed25519"),
]


def spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def self_signed(key: SigningKey) -> x509.Certificate:
    """Sign a small CA certificate with `key`, the way the authority will use signers."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stepstone Test Root")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def verify_self_signed(cert: x509.Certificate) -> None:
    public = cert.public_key()
    signature, tbs = cert.signature, cert.tbs_certificate_bytes
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, tbs, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, tbs)
    else:  # pragma: no cover - the specs above cover every supported type
        raise AssertionError(type(public))


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip(tmp_path: Path, spec: KeySpec) -> None:
    with FileKeyStore(PASSWORD, tmp_path) as writer:
        created = writer.create_key("ca_key", spec)

    # A fresh store has no cache: this reads and decrypts the file.
    with FileKeyStore(PASSWORD, tmp_path) as reader:
        assert spki(reader.public_key("ca_key")) == spki(created)
        signer = reader.signer("ca_key")
        assert spki(signer.public_key()) == spki(created)
        cert = self_signed(signer)
    verify_self_signed(cert)
    assert spki(cert.public_key()) == spki(created)  # type: ignore[arg-type]


def test_written_file_is_private_pkcs8(store: FileKeyStore, tmp_path: Path) -> None:
    store.create_key("keys/intermediate_ca_key", KeySpec())
    path = tmp_path / "keys" / "intermediate_ca_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = path.read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert data.endswith(b"-----END ENCRYPTED PRIVATE KEY-----\n")
    assert sorted(os.listdir(path.parent)) == ["intermediate_ca_key"]


def test_signer_is_cached(store: FileKeyStore, tmp_path: Path) -> None:
    store.create_key("k", KeySpec())
    first = store.signer("k")
    (tmp_path / "k").unlink()
    assert store.signer("k") is first
    assert store.signer(str(tmp_path / "k")) is first  # same file, other spelling


def test_wrong_password(store: FileKeyStore, tmp_path: Path) -> None:
    store.create_key("intermediate_ca_key", KeySpec())
    path = tmp_path / "intermediate_ca_key"
    with pytest.raises(WrongPasswordError) as info:
        FileKeyStore(b"not the password", tmp_path).signer("intermediate_ca_key")
    # Rarely (~1 in 300) a wrong password decrypts to garbage and the message adds "or damaged".
    assert str(info.value).startswith(f"failed to decrypt {path}: wrong password")
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_missing_password(store: FileKeyStore, tmp_path: Path) -> None:
    store.create_key("k", KeySpec())
    with pytest.raises(WrongPasswordError, match=r"failed to decrypt .*/k: .*no password"):
        FileKeyStore(None, tmp_path).public_key("k")


def test_missing_file(store: FileKeyStore, tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError, match=re.escape(f"key not found: {tmp_path}/nope")):
        store.signer("nope")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01 not pem at all", "not a PEM private key"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a PEM"),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAMCAQA=\n"
            b"-----END ENCRYPTED PRIVATE KEY-----\n",
            "damaged encrypted private key",
        ),
        (b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", "not valid base64"),
        (b"-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n", "not a usable"),
        (
            b"-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAAAAAAAAAAAAAAAAAAAA==\n"
            b"-----END EC PRIVATE KEY-----\n",
            "missing DEK-Info",
        ),
    ],
)
def test_garbage_file(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(KeyStoreError, match=message) as info:
        FileKeyStore(PASSWORD, tmp_path).signer("bad")
    assert not isinstance(info.value, WrongPasswordError)
    assert str(info.value).startswith(f"cannot load {tmp_path}/bad: ")


def test_unreadable_path(store: FileKeyStore, tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(KeyStoreError, match=r"cannot read .*/dir: "):
        store.signer("dir")


def test_overwrite_refused(store: FileKeyStore, tmp_path: Path) -> None:
    first = store.create_key("k", KeySpec())
    before = (tmp_path / "k").read_bytes()
    with pytest.raises(KeyExistsError, match=re.escape(f"key already exists: {tmp_path}/k")):
        store.create_key("k", KeySpec())
    with pytest.raises(KeyExistsError):
        store.import_key("k", ec.generate_private_key(ec.SECP256R1()))
    assert (tmp_path / "k").read_bytes() == before
    assert spki(FileKeyStore(PASSWORD, tmp_path).public_key("k")) == spki(first)


def test_overwrite_allowed(store: FileKeyStore, tmp_path: Path) -> None:
    store.create_key("k", KeySpec())
    second = store.create_key("k", KeySpec("EC", "P-384"), overwrite=True)
    assert spki(store.public_key("k")) == spki(second)  # the cache follows the new key
    assert spki(FileKeyStore(PASSWORD, tmp_path).public_key("k")) == spki(second)
    assert sorted(os.listdir(tmp_path)) == ["k"]


def test_import_key(store: FileKeyStore, tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = store.import_key("imported", key)
    assert spki(public) == spki(key.public_key())
    loaded = FileKeyStore(PASSWORD, tmp_path).signer("imported")
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == key.private_numbers()


def test_import_rejects_non_signing_keys(store: FileKeyStore) -> None:
    with pytest.raises(KeyStoreError, match="cannot sign"):
        store.import_key("x", x25519.X25519PrivateKey.generate())


def test_plaintext_refused_without_opt_in(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="keys at rest must be encrypted"):
        FileKeyStore(None, tmp_path).create_key("k", KeySpec())
    with pytest.raises(KeyStoreError, match="keys at rest must be encrypted"):
        FileKeyStore(b"", tmp_path).create_key("k", KeySpec())
    assert not (tmp_path / "k").exists()


def test_plaintext_allowed_with_opt_in(tmp_path: Path) -> None:
    public = FileKeyStore(None, tmp_path, allow_plaintext=True).create_key("k", KeySpec())
    data = (tmp_path / "k").read_bytes()
    assert data.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    # Plain keys stay readable from a store that has a password.
    assert spki(FileKeyStore(PASSWORD, tmp_path).public_key("k")) == spki(public)


def test_opt_in_still_encrypts_when_password_given(tmp_path: Path) -> None:
    FileKeyStore(PASSWORD, tmp_path, allow_plaintext=True).create_key("k", KeySpec())
    assert (tmp_path / "k").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_reads_cryptography_and_legacy_encodings(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    formats = {
        "pkcs8-2048": serialization.PrivateFormat.PKCS8,
        "legacy": serialization.PrivateFormat.TraditionalOpenSSL,
    }
    for name, fmt in formats.items():
        pem = key.private_bytes(
            serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(PASSWORD)
        )
        (tmp_path / name).write_bytes(pem)
    store = FileKeyStore(PASSWORD, tmp_path)
    for name in formats:
        assert spki(store.public_key(name)) == spki(key.public_key())
    with pytest.raises(WrongPasswordError, match="legacy: wrong password"):
        FileKeyStore(b"nope", tmp_path).signer("legacy")


def test_skips_ec_parameters_block(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    (tmp_path / "k").write_bytes(params + pem)
    assert spki(FileKeyStore(None, tmp_path).public_key("k")) == spki(key.public_key())


def test_key_names(tmp_path: Path) -> None:
    writer = FileKeyStore(PASSWORD, tmp_path / "base")
    public = writer.create_key("a b%c", KeySpec())
    absolute = tmp_path / "base" / "a b%c"
    names = [
        "a b%c",
        str(absolute),
        "file:a%20b%25c",
        f"file:{tmp_path}/base/a%20b%25c",
        f"file://{tmp_path}/base/a%20b%25c",
        f"file://localhost{tmp_path}/base/a%20b%25c",
        "softkms:path=a%20b%25c",
        f"softkms:path={tmp_path}/base/a b%25c",
    ]
    for name in names:
        reader = FileKeyStore(PASSWORD, tmp_path / "base")
        assert reader.path_for(name) == absolute, name
        assert spki(reader.public_key(name)) == spki(public), name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty key name"),
        ("pkcs11:object=root", "cannot address 'pkcs11' keys"),
        ("softkms:name=x", "no path attribute"),
        ("file://remote.example/k", "remote host"),
        ("file:k?x=1", "no query"),
        ("file:100%zz", "invalid percent-encoding"),
    ],
)
def test_bad_key_names(store: FileKeyStore, name: str, message: str) -> None:
    with pytest.raises(KeyStoreError, match=message):
        store.signer(name)


def test_closed_store_refuses_work(store: FileKeyStore) -> None:
    store.create_key("k", KeySpec())
    store.close()
    store.close()  # idempotent
    with pytest.raises(KeyStoreError, match="closed"):
        store.signer("k")
    with pytest.raises(KeyStoreError, match="closed"):
        store.create_key("k2", KeySpec())


def test_module_helpers_round_trip() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    pem = encrypt_private_key_pem(key, b"pw", iterations=1000)
    loaded = load_private_key_pem(pem, b"pw")
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    assert spki(loaded.public_key()) == spki(key.public_key())
    with pytest.raises(KeyStoreError, match="empty password"):
        encrypt_private_key_pem(key, b"")


def test_unsupported_encryption_is_not_a_password_error(tmp_path: Path) -> None:
    pem = encrypt_private_key_pem(ec.generate_private_key(ec.SECP256R1()), b"pw", iterations=1)
    body = base64.b64decode(b"".join(pem.splitlines()[1:-1]))
    unknown_cipher = der.object_identifier("2.16.840.1.101.3.4.1.99")  # same length as AES-256
    body = body.replace(der.object_identifier(pkcs8.OID_AES256_CBC), unknown_cipher)
    armored = base64.encodebytes(body)
    (tmp_path / "k").write_bytes(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        + armored
        + b"-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    with pytest.raises(KeyStoreError, match="unsupported key encryption") as info:
        FileKeyStore(b"pw", tmp_path).signer("k")
    assert not isinstance(info.value, WrongPasswordError)
