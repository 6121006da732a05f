"""Fixtures for the CA core: a CA created by `init_pki` and step-ca's own test configuration."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from pki.jose import key_from_jwk
from pki.jwe import decrypt_jwk
from pki.sans import SubjectAltNames
from provisioners.schema import JWKSchema
from tests.fixtures import STEP_CA_TESTDATA

TESTDATA = STEP_CA_TESTDATA
PASSWORD = b"ca-password"
PROV_PASSWORD = b"provisioner-password"


@pytest.fixture
def steppath(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(path))
    return path


@pytest.fixture
def ca_dir(steppath: Path) -> Path:
    init_pki(
        InitRequest(
            steppath,
            "Test",
            ["ca.test", "127.0.0.1"],
            "127.0.0.1:9000",
            "admin",
            PASSWORD,
            PROV_PASSWORD,
        )
    )
    return steppath


def edit_config(ca_dir: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = ca_dir / "config" / "ca.json"
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


@pytest.fixture
def authority(ca_dir: Path) -> Iterator[Authority]:
    auth = Authority.open(CAConfig.load(ca_dir / "config" / "ca.json"), password=PASSWORD)
    auth.start_time -= 5  # tokens made right after start must not look older than the CA
    yield auth
    auth.repository.engine.dispose()


class TokenMaker:
    """Signs JWK provisioner tokens the way `step ca token` does."""

    def __init__(self, authority: Authority, password: bytes, name: str | None = None) -> None:
        prov = next(
            p
            for p in authority.config.provisioners
            if isinstance(p, JWKSchema) and name in (None, p.name)
        )
        assert prov.encryptedKey
        self.name = prov.name
        self.kid = prov.key.kid
        self.key = key_from_jwk(decrypt_jwk(prov.encryptedKey, password))
        self.dns = authority.config.dns_names[0]

    def __call__(self, sub: str = "foo.test", kid: str | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.name,
            "aud": f"https://{self.dns}:9000/1.0/sign",
            "sub": sub,
            "sans": [sub],
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_hex(32),
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        headers = {"kid": kid or self.kid, "typ": "JWT"}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=headers)


@pytest.fixture
def token(authority: Authority) -> TokenMaker:
    return TokenMaker(authority, PROV_PASSWORD)


def make_csr(cn: str | None, sans: list[str], key: Any = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(SubjectAltNames.split(sans).general_names()), False
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def now_utc() -> datetime:
    return datetime.now(UTC)


def approx(a: datetime, b: datetime, seconds: float = 30) -> bool:
    return abs(a - b) <= timedelta(seconds=seconds)
