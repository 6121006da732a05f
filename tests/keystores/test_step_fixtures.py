"""step-ca's own legacy encrypted CA keys (`Proc-Type: 4,ENCRYPTED`) load and match their certs."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keystores import WrongPasswordError, open_keystore

from .conftest import STEP_TESTDATA

SECRETS = STEP_TESTDATA / "secrets"


@pytest.mark.parametrize(
    ("key", "cert", "password"),
    [
        ("intermediate_ca_key", "intermediate_ca.crt", b"password"),
        ("root_ca_key", "root_ca.crt", b"password"),
        ("rsa_intermediate_ca_key", "rsa_intermediate_ca.crt", b"1234"),  # as in rsaca.json
    ],
)
def test_legacy_key_matches_certificate(key: str, cert: str, password: bytes) -> None:
    certificate = x509.load_pem_x509_certificate((SECRETS / cert).read_bytes())
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with open_keystore(key, password=password, base_dir=SECRETS) as store:
        public = store.public_key(key)
        assert public.public_bytes(*fmt) == certificate.public_key().public_bytes(*fmt)
        assert store.signer(f"softkms:path={SECRETS / key}").public_key().public_bytes(
            *fmt
        ) == public.public_bytes(*fmt)


def test_legacy_key_wrong_password() -> None:
    store = open_keystore("file:intermediate_ca_key", password=b"pass", base_dir=SECRETS)
    path = SECRETS / "intermediate_ca_key"
    with pytest.raises(WrongPasswordError) as info:
        store.signer("intermediate_ca_key")
    assert str(info.value).startswith(f"failed to decrypt {path}: wrong password")


def test_step_intermediate_signs_a_leaf() -> None:
    issuer = x509.load_pem_x509_certificate((SECRETS / "intermediate_ca.crt").read_bytes())
    signer = open_keystore("", password=b"password").signer(str(SECRETS / "intermediate_ca_key"))
    now = datetime.datetime.now(datetime.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foo.internal")]))
        .issuer_name(issuer.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=24))
        .sign(signer, hashes.SHA256())
    )
    leaf.verify_directly_issued_by(issuer)
