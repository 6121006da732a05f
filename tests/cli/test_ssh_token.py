"""The one-time token `step ssh` makes: step's `step.ssh` claim, no `sans`, the ssh/sign
audience; X.509 tokens unchanged; SSHPOP tokens signed by the certificate's key."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from cli import ssh_keys
from cli.ca.client import CAClient
from cli.ca.flows import TokenRequest
from cli.ca.tokens import jwk_flow
from cli.common import CLIError
from cli.ssh_pop import sshpop_token
from pki.jose import private_jwk, public_jwk
from pki.jwe import encrypt_jwk
from tests.sshd import local_cert

PASSWORD = b"provisioner-password"


class StubClient:
    """Only what the JWK flow asks the CA for: the escrowed key."""

    def __init__(self, jwe: str) -> None:
        self.jwe = jwe

    def encrypted_key(self, kid: str) -> str:
        return self.jwe


def _token(
    tmp_path: Path, options: dict[str, Any]
) -> tuple[dict[str, Any], ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = public_jwk(key)
    jwe = encrypt_jwk(private_jwk(key), PASSWORD, p2c=1000)
    pw = tmp_path / "pw"
    pw.write_bytes(PASSWORD)
    now = datetime.now(UTC)
    req = TokenRequest(
        client=cast(CAClient, StubClient(jwe)),
        root=tmp_path / "root.crt",
        root_fingerprint="ab" * 32,
        subject="joe@example.com",
        sans=[],
        audience="https://ca.test:9000/1.0/ssh/sign",
        not_before=now,
        expires=now + timedelta(minutes=5),
        password_file=pw,
        options=options,
    )
    token = jwk_flow(req, {"type": "JWK", "name": "admin", "key": pub})
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"], audience=req.audience)
    return claims, key


def test_ssh_token_carries_step_ssh_claim(tmp_path: Path) -> None:
    ssh = {
        "certType": "user",
        "keyID": "joe@example.com",
        "principals": ["joe", "joe@example.com"],
        "validAfter": "",
        "validBefore": "2h",
    }
    claims, _ = _token(tmp_path, {"ssh": ssh})
    assert claims["step"] == {"ssh": ssh}
    assert "sans" not in claims
    assert claims["sub"] == "joe@example.com" and claims["iss"] == "admin"
    assert claims["sha"] == "ab" * 32 and len(claims["jti"]) == 64


def test_x509_token_is_unchanged(tmp_path: Path) -> None:
    claims, _ = _token(tmp_path, {})
    assert "step" not in claims and claims["sans"] == ["joe@example.com"]


class PopClient:
    ca_url = "https://ca.test:9000"

    def provisioners(self) -> list[dict[str, Any]]:
        return [{"type": "JWK", "name": "admin"}, {"type": "SSHPOP", "name": "sshpop"}]


def _root(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "root.crt"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


def test_sshpop_token_is_signed_by_the_certificate_key(tmp_path: Path) -> None:
    ca = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = local_cert(ca, key.public_key(), ["host.test"], host=True, key_id="host.test")
    (tmp_path / "k").write_bytes(ssh_keys.private_openssh(key, b"key-pw"))
    (tmp_path / "k-cert.pub").write_bytes(ssh_keys.authorized_line(cert, "host.test"))
    (tmp_path / "pw").write_text("key-pw\n")
    token, _ = sshpop_token(
        cast(CAClient, PopClient()),
        _root(tmp_path),
        cert_file=tmp_path / "k-cert.pub",
        key_file=tmp_path / "k",
        path="/1.0/ssh/renew",
        provisioner=None,
        password_file=tmp_path / "pw",
    )
    header = jwt.get_unverified_header(token)
    assert base64.b64decode(header["sshpop"]) == ssh_keys.wire_blob(cert)
    assert header["alg"] == "ES256"
    aud = "https://ca.test:9000/1.0/ssh/renew#sshpop/sshpop"
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"], audience=aud)
    assert claims["iss"] == "sshpop" and claims["sub"] == str(cert.serial)
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "other").write_bytes(ssh_keys.private_openssh(other, None))
    with pytest.raises(CLIError, match="does not match"):
        sshpop_token(
            cast(CAClient, PopClient()),
            _root(tmp_path),
            cert_file=tmp_path / "k-cert.pub",
            key_file=tmp_path / "other",
            path="/1.0/ssh/renew",
            provisioner=None,
            password_file=None,
        )
