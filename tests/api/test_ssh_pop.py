"""`/ssh/renew`, `/ssh/rekey` and `/ssh/revoke` in process, with SSHPOP tokens (a JWT signed
by the certificate's own key, the certificate in the `sshpop` header) made here the way
step-ca reads them; and JWK revocation tokens."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from typing import Any

import falcon.testing
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import SSHCertificate

from api.app import create_app
from appliance.authority import Authority
from tests.api.test_ssh import (
    PROV_PASSWORD,
    ca_keys,
    keygen_list,
    load_cert,
    opened_authority,
    sign_body,
    ssh_ca,
    ssh_token,
    verified,
    wire,
)
from tests.appliance.conftest import TokenMaker
from tests.tools import required

required("ssh-keygen")
AUD = "https://ca.test:9000/1.0/{path}#sshpop/sshpop"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    with ssh_ca(tmp_path_factory, "POP") as base, opened_authority(base) as auth:
        yield auth


@pytest.fixture(scope="module")
def client(authority: Authority) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(authority))


@pytest.fixture
def token(authority: Authority) -> TokenMaker:
    return TokenMaker(authority, PROV_PASSWORD)


def issue(
    client: falcon.testing.TestClient,
    token: TokenMaker,
    key: Any,
    name: str = "pop.example",
    cert_type: str = "host",
    **fields: Any,
) -> SSHCertificate:
    ott = ssh_token(token, name, certType=cert_type, principals=[name])
    body = sign_body(ott, key.public_key(), certType=cert_type, keyID=name, principals=[name])
    body.update(fields)
    resp = client.simulate_post("/ssh/sign", json=body)
    assert resp.status_code == 201, resp.text
    return load_cert(resp.json["crt"])


def pop_token(
    cert: SSHCertificate, key: Any, path: str, sub: str | None = None, **claims: Any
) -> str:
    """An SSHPOP token as `step ssh renew` makes it."""
    now = int(time.time())
    body = {
        "iss": "sshpop",
        "aud": AUD.format(path=path),
        "sub": sub if sub is not None else str(cert.serial),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(32),
    }
    body.update(claims)
    blob = base64.b64decode(cert.public_bytes().split()[1])
    alg = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "ES256"
    headers = {"sshpop": base64.b64encode(blob).decode(), "typ": "JWT"}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def test_renew_host_certificate(
    client: falcon.testing.TestClient, token: TokenMaker, tmp_path: Any
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = issue(client, token, key)
    for path in ("/ssh/renew", "/1.0/ssh/renew"):
        resp = client.simulate_post(path, json={"ott": pop_token(old, key, "ssh/renew")})
        assert resp.status_code == 201, resp.text
        assert set(resp.json) == {"crt"}
        new = verified(resp.json["crt"], ca_keys(client)["hostKey"])
        assert new.serial != old.serial
        assert new.valid_principals == old.valid_principals and new.key_id == old.key_id
        assert wire(new.public_key()) == wire(key.public_key())
        assert new.valid_before - new.valid_after == old.valid_before - old.valid_after
        assert "host certificate" in keygen_list(resp.json["crt"], tmp_path)


def test_renew_refusals(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    host = issue(client, token, key)
    ott = pop_token(host, key, "ssh/renew")
    assert client.simulate_post("/ssh/renew", json={"ott": ott}).status_code == 201
    assert client.simulate_post("/ssh/renew", json={"ott": ott}).status_code == 401  # replay
    other = ec.generate_private_key(ec.SECP256R1())
    forged = pop_token(host, other, "ssh/renew")  # not signed by the certificate's key
    assert client.simulate_post("/ssh/renew", json={"ott": forged}).status_code == 401
    wrong_aud = pop_token(host, key, "ssh/rekey")
    assert client.simulate_post("/ssh/renew", json={"ott": wrong_aud}).status_code == 401
    user_key = ec.generate_private_key(ec.SECP256R1())
    user = issue(client, token, user_key, "carol", "user")
    resp = client.simulate_post("/ssh/renew", json={"ott": pop_token(user, user_key, "ssh/renew")})
    assert resp.status_code == 400
    assert "must be a host ssh certificate" in resp.json["message"]
    resp = client.simulate_post("/ssh/renew", json={})
    assert resp.status_code == 400 and "missing or empty ott" in resp.json["message"]


def test_certificate_from_another_ca_is_refused(
    client: falcon.testing.TestClient,
) -> None:
    from cryptography.hazmat.primitives.serialization import (
        SSHCertificateBuilder,
        SSHCertificateType,
    )

    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    rogue = (
        SSHCertificateBuilder()
        .public_key(key.public_key())
        .serial(99)
        .type(SSHCertificateType.HOST)
        .key_id(b"rogue")
        .valid_principals([b"rogue"])
        .valid_after(now - 60)
        .valid_before(now + 3600)
        .sign(ec.generate_private_key(ec.SECP256R1()))
    )
    resp = client.simulate_post("/ssh/renew", json={"ott": pop_token(rogue, key, "ssh/renew")})
    assert resp.status_code == 401


def test_rekey(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = issue(client, token, key)
    new_key = ed25519.Ed25519PrivateKey.generate()
    body = {"ott": pop_token(old, key, "ssh/rekey"), "publicKey": wire(new_key.public_key())}
    resp = client.simulate_post("/ssh/rekey", json=body)
    assert resp.status_code == 201, resp.text
    new = verified(resp.json["crt"], ca_keys(client)["hostKey"])
    assert wire(new.public_key()) == wire(new_key.public_key())
    assert new.valid_principals == old.valid_principals
    # the new certificate proves possession with the new key
    again = {"ott": pop_token(new, new_key, "ssh/renew")}
    assert client.simulate_post("/ssh/renew", json=again).status_code == 201
    resp = client.simulate_post("/ssh/rekey", json={"ott": pop_token(old, key, "ssh/rekey")})
    assert resp.status_code == 400 and "missing or empty public key" in resp.json["message"]


def test_revoke_by_sshpop_then_renewal_is_refused(
    client: falcon.testing.TestClient, token: TokenMaker
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(client, token, key)
    body = {
        "serial": str(cert.serial),
        "ott": pop_token(cert, key, "ssh/revoke"),
        "reasonCode": 1,
        "reason": "key compromise",
        "passive": True,
    }
    for path in ("/ssh/revoke",):
        resp = client.simulate_post(path, json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json == {"status": "ok"}
    resp = client.simulate_post("/ssh/renew", json={"ott": pop_token(cert, key, "ssh/renew")})
    assert resp.status_code == 401
    again = dict(body, ott=pop_token(cert, key, "ssh/revoke"))  # a revoked cert proves nothing
    assert client.simulate_post("/1.0/ssh/revoke", json=again).status_code == 401


def test_revoke_refusals(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(client, token, key)
    base = {"serial": str(cert.serial), "passive": True}
    wrong_sub = dict(base, ott=pop_token(cert, key, "ssh/revoke", sub="12"))
    resp = client.simulate_post("/ssh/revoke", json=wrong_sub)
    assert resp.status_code == 400
    assert "subject must be equivalent" in resp.json["message"]
    other = dict(base, serial="12", ott=pop_token(cert, key, "ssh/revoke"))
    assert client.simulate_post("/ssh/revoke", json=other).status_code == 403
    active = dict(base, passive=False, ott=pop_token(cert, key, "ssh/revoke"))
    assert client.simulate_post("/ssh/revoke", json=active).status_code == 501
    assert client.simulate_post("/ssh/revoke", json=base).status_code == 400


def test_revoke_by_jwk_token(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(client, token, key, "dave", "user")
    ott = token(str(cert.serial), aud="https://ca.test:9000/1.0/ssh/revoke")
    body = {"serial": str(cert.serial), "ott": ott, "passive": True}
    resp = client.simulate_post("/ssh/revoke", json=body)
    assert resp.status_code == 200, resp.text
    twice = dict(body, ott=token(str(cert.serial), aud="https://ca.test:9000/ssh/revoke"))
    resp = client.simulate_post("/ssh/revoke", json=twice)
    assert resp.status_code == 400 and "already revoked" in resp.json["message"]
    x509_aud = token(str(cert.serial), aud="https://ca.test:9000/1.0/revoke")
    resp = client.simulate_post("/ssh/revoke", json=dict(body, ott=x509_aud))
    assert resp.status_code == 401
