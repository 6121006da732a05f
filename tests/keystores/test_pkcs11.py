"""The PKCS#11 key store against real SoftHSM2 tokens: URIs, key creation, signing in the HSM.

Signatures made in the token are checked by OpenSSL (`verify -x509_strict`, `req -verify`,
`crl -verify`, `ocsp`), not only by cryptography.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keystores import (
    KeyExistsError,
    KeyNotFoundError,
    KeySpec,
    KeyStoreError,
    PublicKey,
    SigningKey,
    WrongPasswordError,
    open_keystore,
)
from keystores.pkcs11 import (
    NonExtractableKeyError,
    Pkcs11EcPrivateKey,
    Pkcs11Ed25519PrivateKey,
    Pkcs11KeyStore,
    Pkcs11RsaPrivateKey,
    decode_id,
)
from tests.softhsm import MODULE, SoftHSM, Token, softhsm_session

from .conftest import OPENSSL


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


@pytest.fixture
def token(hsm: SoftHSM) -> Token:
    return hsm.init_token()


@pytest.fixture
def store(token: Token) -> Iterator[Pkcs11KeyStore]:
    with Pkcs11KeyStore.from_uri(token.uri(), password=None, base_dir=None) as store:
        yield store


# --- URIs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"7331", b"\x73\x31"),
        (b"0x7331", b"\x73\x31"),
        (b"73:31:0a", b"\x73\x31\x0a"),
        (b"ABCDEF", b"\xab\xcd\xef"),
        (b"key1", b"key1"),
        (b"733", b"733"),
        (b"\x01\x02", b"\x01\x02"),
        (b"", None),
        (None, None),
    ],
)
def test_decode_id(raw: bytes | None, expected: bytes | None) -> None:
    assert decode_id(raw) == expected


def test_key_uri_resolution(store: Pkcs11KeyStore, token: Token) -> None:
    ref = store.resolve("pkcs11:id=7331;object=intermediate%20key%3B1")
    assert ref.id == b"\x73\x31"
    assert ref.label == "intermediate key;1"
    assert ref.token.kind == "token" and ref.token.value == token.label
    assert ref.token.module == MODULE
    assert store.resolve("pkcs11:id=%01%02").id == b"\x01\x02"
    other = store.resolve("pkcs11:module-path=/opt/hsm.so;serial=abc;object=k")
    assert (other.token.module, other.token.kind, other.token.value) == (
        "/opt/hsm.so",
        "serial",
        "abc",
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("pkcs11:token=a;serial=b", "only one of token, serial and slot-id"),
        ("pkcs11:slot-id=x1", "slot-id must be a decimal number"),
        ("yubikey:slot-id=9c", "expected 'pkcs11'"),
        ("pkcs11:token=a%zz", "percent-encoding"),
    ],
)
def test_bad_store_uris(uri: str, message: str) -> None:
    with pytest.raises(KeyStoreError, match=message):
        Pkcs11KeyStore.from_uri(uri, password=None, base_dir=None)


def test_bad_key_names(store: Pkcs11KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="needs id or object"):
        store.signer("pkcs11:token=x")
    with pytest.raises(KeyStoreError, match="needs both id and object"):
        store.create_key("pkcs11:object=only-a-label", KeySpec())
    with pytest.raises(KeyStoreError, match="no scheme"):
        store.signer("/some/file.key")
    bare = Pkcs11KeyStore.from_uri("pkcs11:?pin-value=1234", password=None, base_dir=None)
    with pytest.raises(KeyStoreError, match="names no token"):
        bare.signer("pkcs11:id=01")


def test_open_keystore_picks_pkcs11(token: Token) -> None:
    store = open_keystore(token.uri())
    assert isinstance(store, Pkcs11KeyStore)
    store.create_key("pkcs11:id=01;object=k", KeySpec())
    assert isinstance(store.signer("pkcs11:id=01"), Pkcs11EcPrivateKey)


def test_percent_encoded_token_and_label_round_trip(hsm: SoftHSM) -> None:
    token = hsm.init_token("ca token;1")
    uri = f"pkcs11:module-path={MODULE};token=ca%20token%3B1?pin-value={token.pin}"
    store = Pkcs11KeyStore.from_uri(uri, password=None, base_dir=None)
    created = store.create_key("pkcs11:id=7331;object=intermediate%20key%2F%C3%A9", KeySpec())
    [row] = store.list_keys()
    assert row == {
        "label": "intermediate key/é",
        "id": "7331",
        "type": "EC P-256",
        "uri": "pkcs11:id=7331;object=intermediate%20key%2F%C3%A9",
    }
    assert _spki(store.public_key(row["uri"])) == _spki(created)


def test_pin_source_file_relative_to_base_dir(token: Token, tmp_path: Path) -> None:
    (tmp_path / "pin").write_text(token.pin + "\n")
    uri = f"pkcs11:module-path={MODULE};token={token.label}?pin-source=pin"
    store = Pkcs11KeyStore.from_uri(uri, password=None, base_dir=tmp_path)
    store.create_key("pkcs11:id=01;object=k", KeySpec())
    (tmp_path / "pin").write_text("changed later: the PIN was read when the store opened")
    assert isinstance(store.signer("pkcs11:object=k"), Pkcs11EcPrivateKey)


def test_pin_in_key_uri_and_password_as_pin(token: Token) -> None:
    without_pin = Pkcs11KeyStore.from_uri(token.uri(pin=False), password=None, base_dir=None)
    without_pin.create_key(f"pkcs11:id=01;object=k?pin-value={token.pin}", KeySpec())
    by_password = Pkcs11KeyStore.from_uri(
        token.uri(pin=False), password=token.pin.encode(), base_dir=None
    )
    assert isinstance(by_password.signer("pkcs11:id=01"), Pkcs11EcPrivateKey)


def test_token_selected_by_serial_and_slot_id(hsm: SoftHSM, token: Token) -> None:
    Pkcs11KeyStore.from_uri(token.uri(), password=None, base_dir=None).create_key(
        "pkcs11:id=01;object=k", KeySpec()
    )
    slot, serial = hsm.slot_and_serial(token)
    for selector in (f"serial={serial}", f"slot-id={slot}"):
        uri = f"pkcs11:module-path={MODULE};{selector}?pin-value={token.pin}"
        store = Pkcs11KeyStore.from_uri(uri, password=None, base_dir=None)
        key = store.signer("pkcs11:object=k")
        _check_signature(key)


def test_wrong_pin(token: Token) -> None:
    uri = f"pkcs11:module-path={MODULE};token={token.label}?pin-value=9999"
    store = Pkcs11KeyStore.from_uri(uri, password=None, base_dir=None)
    with pytest.raises(WrongPasswordError, match="wrong PIN"):
        store.signer("pkcs11:id=01")


_WITHOUT_PIN = """
import sys
from keystores import KeyNotFoundError
from keystores.pkcs11 import Pkcs11KeyStore
store = Pkcs11KeyStore.from_uri(sys.argv[1], password=None, base_dir=None)
try:
    store.signer("pkcs11:id=01")
except KeyNotFoundError as exc:
    print(exc)
"""


def test_without_pin_private_keys_are_hidden(
    hsm: SoftHSM, token: Token, store: Pkcs11KeyStore
) -> None:
    store.create_key("pkcs11:id=01;object=k", KeySpec())
    # Login is per process and token (PKCS#11 shares it between sessions): use a new process.
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PIN, token.uri(pin=False)],
        env=hsm.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "no PIN given: private keys are hidden until login" in done.stdout


def test_unknown_token_and_key(hsm: SoftHSM, store: Pkcs11KeyStore) -> None:
    with pytest.raises(KeyNotFoundError, match="object='absent' on token="):
        store.signer("pkcs11:object=absent")
    gone = Pkcs11KeyStore.from_uri(
        f"pkcs11:module-path={MODULE};token=no-such-token?pin-value=1", password=None, base_dir=None
    )
    with pytest.raises(KeyStoreError, match="token='no-such-token' is unavailable"):
        gone.signer("pkcs11:id=01")


def test_missing_module_is_a_configuration_error(tmp_path: Path) -> None:
    uri = f"pkcs11:module-path={tmp_path}/nope.so;token=x?pin-value=1"
    store = Pkcs11KeyStore.from_uri(uri, password=None, base_dir=None)
    with pytest.raises(KeyStoreError, match="cannot load PKCS#11 module"):
        store.signer("pkcs11:id=01")


def test_closed_store(store: Pkcs11KeyStore) -> None:
    store.close()
    with pytest.raises(KeyStoreError, match="closed"):
        store.signer("pkcs11:id=01")


# --- creating keys ------------------------------------------------------------------------

SPECS = {
    "EC P-256": KeySpec("EC", "P-256"),
    "EC P-384": KeySpec("EC", "P-384"),
    "EC P-521": KeySpec("EC", "P-521"),
    "RSA 2048": KeySpec("RSA", size=2048),
    "RSA 3072": KeySpec("RSA", size=3072),
    "RSA 4096": KeySpec("RSA", size=4096),
    "Ed25519": KeySpec("OKP", "Ed25519"),
}

_READ_ATTRIBUTES = """
import json, sys, pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive
module, label, pin, name = sys.argv[1:]
token = pkcs11.lib(module).get_token(token_label=label)
flags = ("TOKEN", "PRIVATE", "SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE",
         "NEVER_EXTRACTABLE", "LOCAL", "SIGN", "DECRYPT", "UNWRAP", "DERIVE")
rows = []
with token.open(user_pin=pin) as session:
    for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        for obj in session.get_objects({Attribute.CLASS: cls, Attribute.LABEL: name}):
            row = {"class": cls.name, "id": obj[Attribute.ID].hex()}
            if cls == ObjectClass.PRIVATE_KEY:
                row.update({flag: obj[Attribute[flag]] for flag in flags})
                secret = (Attribute.PRIVATE_EXPONENT if obj[Attribute.KEY_TYPE] == KeyType.RSA
                          else Attribute.VALUE)
                try:
                    obj[secret]
                    row["secret"] = "readable"
                except AttributeSensitive:
                    row["secret"] = "sensitive"
            rows.append(row)
print(json.dumps(rows))
"""


def _token_objects(hsm: SoftHSM, token: Token, label: str) -> list[dict[str, object]]:
    """The key objects as another process sees them through python-pkcs11 directly."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_ATTRIBUTES, MODULE, token.label, token.pin, label],
        env=hsm.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


@pytest.mark.parametrize("kind", list(SPECS))
def test_create_each_key_type(kind: str, hsm: SoftHSM, token: Token, store: Pkcs11KeyStore) -> None:
    public = store.create_key("pkcs11:id=7331;object=ca-key", SPECS[kind])
    [row] = store.list_keys()
    assert row["type"] == kind and row["id"] == "7331" and row["label"] == "ca-key"

    objects = _token_objects(hsm, token, "ca-key")
    assert sorted(str(o["class"]) for o in objects) == ["PRIVATE_KEY", "PUBLIC_KEY"]
    assert all(o["id"] == "7331" for o in objects)
    [private] = [o for o in objects if o["class"] == "PRIVATE_KEY"]
    assert private == {
        "class": "PRIVATE_KEY",
        "id": "7331",
        "TOKEN": True,
        "PRIVATE": True,
        "SENSITIVE": True,
        "EXTRACTABLE": False,
        "ALWAYS_SENSITIVE": True,
        "NEVER_EXTRACTABLE": True,
        "LOCAL": True,
        "SIGN": True,
        "DECRYPT": False,
        "UNWRAP": False,
        "DERIVE": False,
        "secret": "sensitive",
    }

    # A fresh store (as another process would open it) finds the same key and signs with it.
    fresh = Pkcs11KeyStore.from_uri(token.uri(), password=None, base_dir=None)
    key = fresh.signer("pkcs11:id=7331;object=ca-key")
    assert _spki(key.public_key()) == _spki(public)
    assert _spki(fresh.public_key("pkcs11:object=ca-key")) == _spki(public)
    _check_signature(key)
    with pytest.raises(NonExtractableKeyError):
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def test_refuses_to_overwrite(store: Pkcs11KeyStore) -> None:
    first = store.create_key("pkcs11:id=01;object=k", KeySpec())
    old_signer = store.signer("pkcs11:id=01;object=k")
    for clash in ("pkcs11:id=01;object=k", "pkcs11:id=01;object=other", "pkcs11:id=02;object=k"):
        with pytest.raises(KeyExistsError, match="already exists"):
            store.create_key(clash, KeySpec())
    assert _spki(store.public_key("pkcs11:id=01")) == _spki(first)

    second = store.create_key("pkcs11:id=01;object=k", KeySpec("EC", "P-384"), overwrite=True)
    assert _spki(second) != _spki(first)
    assert len(store.list_keys()) == 1
    assert _spki(store.public_key("pkcs11:id=01;object=k")) == _spki(second)
    assert old_signer is not store.signer("pkcs11:id=01;object=k")


def test_overwrite_never_destroys_another_key(store: Pkcs11KeyStore) -> None:
    store.create_key("pkcs11:id=01;object=a", KeySpec())
    store.create_key("pkcs11:id=02;object=b", KeySpec())
    with pytest.raises(KeyExistsError, match="another key uses this id or object"):
        store.create_key("pkcs11:id=01;object=b", KeySpec(), overwrite=True)
    assert {row["label"] for row in store.list_keys()} == {"a", "b"}


def test_find_by_id_or_label_alone(store: Pkcs11KeyStore) -> None:
    store.create_key("pkcs11:id=01;object=a", KeySpec())
    store.create_key("pkcs11:id=02;object=b", KeySpec())
    assert isinstance(store.signer("pkcs11:id=02"), Pkcs11EcPrivateKey)
    assert isinstance(store.signer("pkcs11:object=a"), Pkcs11EcPrivateKey)


# --- signing in the HSM -------------------------------------------------------------------


def _spki(public: PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_signature(key: SigningKey) -> None:
    """Sign a message with the token key and verify it on the host."""
    data = b"signed in the token"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        pub_ec = key.public_key()
        pub_ec.verify(key.sign(data, ec.ECDSA(hashes.SHA256())), data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        pub_rsa = key.public_key()
        pkcs1 = padding.PKCS1v15()
        pub_rsa.verify(key.sign(data, pkcs1, hashes.SHA256()), data, pkcs1, hashes.SHA256())
    else:
        key.public_key().verify(key.sign(data), data)


def test_ecdsa_details(store: Pkcs11KeyStore) -> None:
    store.create_key("pkcs11:id=01;object=p256", KeySpec("EC", "P-256"))
    key = store.signer("pkcs11:id=01")
    assert isinstance(key, Pkcs11EcPrivateKey)
    assert key.key_size == 256 and isinstance(key.curve, ec.SECP256R1)
    data = b"x" * 1000
    # A longer hash than the curve: the leftmost bits are signed, as ECDSA says.
    sig = key.sign(data, ec.ECDSA(hashes.SHA512()))
    key.public_key().verify(sig, data, ec.ECDSA(hashes.SHA512()))
    digest = hashes.Hash(hashes.SHA384())
    digest.update(data)
    prehashed = ec.ECDSA(Prehashed(hashes.SHA384()))
    sig = key.sign(digest.finalize(), prehashed)
    key.public_key().verify(sig, data, ec.ECDSA(hashes.SHA384()))
    with pytest.raises(UnsupportedAlgorithm, match="deterministic"):
        key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    with pytest.raises(UnsupportedAlgorithm):
        key.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(NonExtractableKeyError):
        key.private_numbers()


def test_the_openssl_error_queue_is_left_empty(store: Pkcs11KeyStore) -> None:
    """SoftHSM2 leaves an entry on OpenSSL's per-thread error queue when it opens a session;
    Python's ssl would report it as the failure of this thread's next non-blocking TLS read
    (the worker's event loop signs). The store clears the queue after each call."""
    libcrypto = ctypes.CDLL("libcrypto.so.3")
    libcrypto.ERR_peek_error.restype = ctypes.c_ulong
    libcrypto.ERR_clear_error()
    store.create_key("pkcs11:id=01;object=p256", KeySpec("EC", "P-256"))
    assert libcrypto.ERR_peek_error() == 0
    key = store.signer("pkcs11:id=01")
    key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    assert libcrypto.ERR_peek_error() == 0


def test_rsa_paddings(store: Pkcs11KeyStore) -> None:
    store.create_key("pkcs11:id=01;object=rsa", KeySpec("RSA", size=2048))
    key = store.signer("pkcs11:id=01")
    assert isinstance(key, Pkcs11RsaPrivateKey)
    public = key.public_key()
    data = b"to be signed"
    for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512(), hashes.SHA1()):
        public.verify(
            key.sign(data, padding.PKCS1v15(), algorithm), data, padding.PKCS1v15(), algorithm
        )
    for salt in (padding.PSS.DIGEST_LENGTH, padding.PSS.MAX_LENGTH, 0, 20):
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), salt)
        public.verify(key.sign(data, pss, hashes.SHA256()), data, pss, hashes.SHA256())
    with pytest.raises(ValueError, match="AUTO"):
        key.sign(
            data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO), hashes.SHA256()
        )
    with pytest.raises(UnsupportedAlgorithm):
        key.decrypt(b"x" * 256, padding.PKCS1v15())


def test_ed25519_details(store: Pkcs11KeyStore) -> None:
    store.create_key("pkcs11:id=01;object=ed", KeySpec("OKP", "Ed25519"))
    key = store.signer("pkcs11:id=01")
    assert isinstance(key, Pkcs11Ed25519PrivateKey)
    assert isinstance(key.public_key(), ed25519.Ed25519PublicKey)
    message = bytearray(b"a longer message " * 100)
    key.public_key().verify(key.sign(message), bytes(message))
    with pytest.raises(NonExtractableKeyError):
        key.private_bytes_raw()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sign_args(key: SigningKey, pss: bool) -> dict[str, Any]:
    """Keyword arguments for a builder's sign(): no hash for Ed25519, PSS padding if asked."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return {"private_key": key, "algorithm": None}
    args: dict[str, Any] = {"private_key": key, "algorithm": hashes.SHA256()}
    if pss and isinstance(key, rsa.RSAPrivateKey):
        args["rsa_padding"] = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    return args


def _ca_cert(
    subject: str,
    public: PublicKey,
    issuer: x509.Certificate | None,
    signer: SigningKey,
    *,
    path_length: int | None,
    pss: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
    )
    signing_public = signer.public_key()
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_public)
    builder = builder.add_extension(aki, critical=False)
    return builder.sign(**_sign_args(signer, pss))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def _openssl(*args: str | Path) -> str:
    done = subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


# root key, intermediate key, RSA-PSS signatures
CHAINS = {
    "EC P-384 / EC P-256": (KeySpec("EC", "P-384"), KeySpec("EC", "P-256"), False),
    "RSA 3072 / RSA 2048": (KeySpec("RSA", size=3072), KeySpec("RSA", size=2048), False),
    "RSA-PSS 2048 / RSA-PSS 2048": (KeySpec("RSA", size=2048), KeySpec("RSA", size=2048), True),
    "Ed25519 / Ed25519": (KeySpec("OKP", "Ed25519"), KeySpec("OKP", "Ed25519"), False),
    "RSA 4096 / Ed25519": (KeySpec("RSA", size=4096), KeySpec("OKP", "Ed25519"), False),
}


@pytest.mark.parametrize("chain", list(CHAINS))
def test_chain_csr_crl_ocsp_signed_in_the_hsm(chain: str, hsm: SoftHSM, tmp_path: Path) -> None:
    root_spec, ca_spec, pss = CHAINS[chain]
    root_token, ca_token = hsm.init_token(), hsm.init_token()
    root_store = open_keystore(root_token.uri())
    ca_store = open_keystore(ca_token.uri())
    root_store.create_key("pkcs11:id=7330;object=root-key", root_spec)
    ca_store.create_key("pkcs11:id=7331;object=intermediate-key", ca_spec)
    root_key = root_store.signer("pkcs11:id=7330;object=root-key")
    ca_key = ca_store.signer("pkcs11:id=7331;object=intermediate-key")

    root = _ca_cert("Test Root", root_key.public_key(), None, root_key, path_length=1, pss=pss)

    # The intermediate's CSR is signed in its token and checked by OpenSSL.
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name("Test Intermediate"))
        .sign(**_sign_args(ca_key, pss))
    )
    csr_path = tmp_path / "inter.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    assert "verify OK" in _openssl("req", "-verify", "-noout", "-in", csr_path)
    assert csr.is_signature_valid

    inter = _ca_cert(
        "Test Intermediate", ca_key.public_key(), root, root_key, path_length=0, pss=pss
    )

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("leaf.internal"))
        .issuer_name(inter.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=24))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("leaf.internal")]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(**_sign_args(ca_key, pss))
    )
    root_pem, inter_pem = _pem(tmp_path / "root.pem", root), _pem(tmp_path / "inter.pem", inter)
    leaf_pem = _pem(tmp_path / "leaf.pem", leaf)
    out = _openssl("verify", "-x509_strict", "-CAfile", root_pem, "-untrusted", inter_pem, leaf_pem)
    assert out.strip() == f"{leaf_pem}: OK"
    assert _openssl("verify", "-x509_strict", "-CAfile", root_pem, inter_pem).strip().endswith("OK")

    # A CRL revoking the leaf, signed by the intermediate's token key.
    revoked = (
        x509.RevokedCertificateBuilder()
        .serial_number(leaf.serial_number)
        .revocation_date(now)
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(inter.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + dt.timedelta(hours=24))
        .add_revoked_certificate(revoked)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(**_sign_args(ca_key, pss))
    )
    crl_path = tmp_path / "crl.pem"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    chain_pem = _pem(tmp_path / "chain.pem", inter, root)
    assert "verify OK" in _openssl("crl", "-noout", "-in", crl_path, "-CAfile", chain_pem)
    assert crl.is_signature_valid(ca_key.public_key())

    # An OCSP response for the leaf, signed by the intermediate's token key.
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, inter, hashes.SHA1()).build()
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=inter,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.REVOKED,
            this_update=now - dt.timedelta(minutes=1),
            next_update=now + dt.timedelta(hours=1),
            revocation_time=now,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, inter)
        .sign(ca_key, None if isinstance(ca_key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )
    assert request.serial_number == response.serial_number
    resp_path = tmp_path / "resp.der"
    resp_path.write_bytes(response.public_bytes(serialization.Encoding.DER))
    out = _openssl(
        "ocsp",
        "-respin",
        resp_path,
        "-issuer",
        inter_pem,
        "-CAfile",
        root_pem,
        "-cert",
        leaf_pem,
        "-no_nonce",
    )
    assert "Response verify OK" in out and "revoked" in out
