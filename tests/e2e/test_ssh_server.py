"""The SSH CA over real HTTPS: `step ca init --ssh` lays the files out as step does, `step-ca`
starts with them, and `/1.0/ssh/sign` issues certificates `ssh-keygen -L` reads and that
verify against `/ssh/roots`; a replayed token is refused; `/ssh/check-host` and `/ssh/hosts`
answer from the host certificates issued."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificate,
    SSHCertificateType,
    load_pem_private_key,
    load_ssh_public_identity,
    load_ssh_public_key,
)

from tests.e2e.harness import (
    CA,
    CA_PASSWORD,
    free_port,
    run_step,
)
from tests.e2e.tokens import TokenMaker
from tests.tools import required

required("ssh-keygen")


@pytest.fixture(scope="module")
def ssh_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CA]:
    base = tmp_path_factory.mktemp("ssh-ca")
    ca = CA(base=base, port=free_port(), name="SSH")
    ca.password_file.write_text(CA_PASSWORD + "\n")
    ca.provisioner_password_file.write_text("provisioner-password-for-tests\n")
    done = run_step(["ca", "init", "--ssh", *ca.init_flags()], ca.steppath)
    assert "SSH user public key" in done.stdout + done.stderr
    ca.start()
    try:
        yield ca
    finally:
        ca.stop()


@pytest.fixture(scope="module")
def http(ssh_ca: CA) -> Iterator[httpx.Client]:
    with ssh_ca.http() as client:
        yield client


@pytest.fixture(scope="module")
def tokens(http: httpx.Client, ssh_ca: CA) -> TokenMaker:
    return TokenMaker.fetch(http, "provisioner-password-for-tests", ssh_ca.fingerprint)


def _ssh_token(tokens: TokenMaker, sub: str, cert_type: str, principals: list[str]) -> str:
    step = {"ssh": {"certType": cert_type, "keyID": sub, "principals": principals,
                    "validAfter": "", "validBefore": ""}}  # fmt: skip
    return tokens.token(sub, aud=f"{tokens.ca_url}/1.0/ssh/sign", extra={"step": step})


def _wire(public: Any) -> str:
    return str(public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode().split()[1])


def _cert(b64: str) -> tuple[SSHCertificate, str]:
    blob = base64.b64decode(b64)
    kind = blob[4 : 4 + int.from_bytes(blob[:4], "big")].decode()
    cert = load_ssh_public_identity(f"{kind} {b64}".encode())
    assert isinstance(cert, SSHCertificate)
    return cert, f"{kind} {b64}\n"


def _keygen(line: str, tmp_path: Path) -> str:
    path = tmp_path / "cert.pub"
    path.write_text(line)
    done = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_init_lays_out_the_ssh_files(ssh_ca: CA) -> None:
    cfg = ssh_ca.config()
    secrets, certs = ssh_ca.steppath / "secrets", ssh_ca.steppath / "certs"
    assert cfg["ssh"] == {
        "hostKey": str(secrets / "ssh_host_ca_key"),
        "userKey": str(secrets / "ssh_user_ca_key"),
    }
    assert list(cfg).index("ssh") < list(cfg).index("logger")
    provs = cfg["authority"]["provisioners"]
    assert provs[0]["claims"] == {"enableSSHCA": True}
    assert provs[-1] == {"type": "SSHPOP", "name": "sshpop", "claims": {"enableSSHCA": True}}
    for kind in ("user", "host"):
        pem = (secrets / f"ssh_{kind}_ca_key").read_bytes()
        assert b"ENCRYPTED" in pem
        assert (secrets / f"ssh_{kind}_ca_key").stat().st_mode & 0o077 == 0
        key = load_pem_private_key(pem, CA_PASSWORD.encode())
        pub = (certs / f"ssh_{kind}_ca_key.pub").read_text()
        assert pub.startswith("ecdsa-sha2-nistp256 ")
        assert _wire(key.public_key()) == pub.split()[1]


def test_roots(http: httpx.Client, ssh_ca: CA) -> None:
    resp = http.get("/ssh/roots")
    assert resp.status_code == 200, resp.text
    pub = (ssh_ca.steppath / "certs" / "ssh_user_ca_key.pub").read_text().split()[1]
    assert resp.json()["userKey"] == [pub]
    assert http.get("/1.0/ssh/federation").json() == resp.json()


def test_user_certificate_and_replay(
    http: httpx.Client, tokens: TokenMaker, tmp_path: Path
) -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    ott = _ssh_token(tokens, "alice", "user", ["alice"])
    body = {"publicKey": _wire(key), "ott": ott, "certType": "user", "keyID": "alice",
            "principals": ["alice"], "validAfter": "", "validBefore": ""}  # fmt: skip
    resp = http.post("/1.0/ssh/sign", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.headers["content-type"] == "application/json"
    cert, line = _cert(resp.json()["crt"])
    cert.verify_cert_signature()
    roots = http.get("/ssh/roots").json()
    ca_key = load_ssh_public_key(f"ecdsa-sha2-nistp256 {roots['userKey'][0]}".encode())
    assert _wire(cert.signature_key()) == _wire(ca_key)
    assert cert.type == SSHCertificateType.USER and cert.valid_principals == [b"alice"]
    listing = _keygen(line, tmp_path)
    assert 'Key ID: "alice"' in listing and "permit-agent-forwarding" in listing
    again = http.post("/1.0/ssh/sign", json=body)
    assert again.status_code == 401
    assert set(again.json()) == {"status", "message"}


def test_host_certificate_then_check_host_and_hosts(
    http: httpx.Client, tokens: TokenMaker, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    ott = _ssh_token(tokens, "node1.internal", "host", ["node1.internal"])
    body = {"publicKey": _wire(key), "ott": ott, "certType": "host",
            "keyID": "node1.internal", "principals": ["node1.internal"]}  # fmt: skip
    resp = http.post("/ssh/sign", json=body)
    assert resp.status_code == 201, resp.text
    cert, line = _cert(resp.json()["crt"])
    cert.verify_cert_signature()
    assert "host certificate" in _keygen(line, tmp_path)
    check = http.post("/ssh/check-host", json={"type": "host", "principal": "node1.internal"})
    assert check.status_code == 200 and check.json() == {"exists": True}
    hosts = http.get("/ssh/hosts").json()["hosts"]
    assert [h["hostname"] for h in hosts] == ["node1.internal"]


def test_principal_not_in_token_is_forbidden(http: httpx.Client, tokens: TokenMaker) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    ott = _ssh_token(tokens, "bob", "user", ["bob"])
    body = {"publicKey": _wire(key), "ott": ott, "principals": ["root"]}
    resp = http.post("/ssh/sign", json=body)
    assert resp.status_code == 403, resp.text
    assert "principals does not match" in resp.json()["message"]
    assert json.loads(resp.text)["status"] == 403


def _pop_token(tokens: TokenMaker, cert: SSHCertificate, key: Any, path: str) -> str:
    """An SSHPOP token: signed by the certificate's key, the certificate in `sshpop`."""
    now = int(time.time())
    claims = {"iss": "sshpop", "aud": f"{tokens.ca_url}/1.0/{path}#sshpop/sshpop",
              "sub": str(cert.serial), "iat": now, "nbf": now, "exp": now + 300,
              "jti": secrets.token_hex(32)}  # fmt: skip
    blob = base64.b64decode(cert.public_bytes().split()[1])
    headers = {"sshpop": base64.b64encode(blob).decode(), "typ": "JWT"}
    return jwt.encode(claims, key, algorithm="ES256", headers=headers)


def test_renew_then_revoke_over_sshpop(
    http: httpx.Client, tokens: TokenMaker, tmp_path: Path
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    ott = _ssh_token(tokens, "node2.internal", "host", ["node2.internal"])
    body = {"publicKey": _wire(key.public_key()), "ott": ott, "certType": "host"}
    resp = http.post("/1.0/ssh/sign", json=body)
    assert resp.status_code == 201, resp.text
    old, _ = _cert(resp.json()["crt"])
    resp = http.post("/1.0/ssh/renew", json={"ott": _pop_token(tokens, old, key, "ssh/renew")})
    assert resp.status_code == 201, resp.text
    new, line = _cert(resp.json()["crt"])
    new.verify_cert_signature()
    assert new.serial != old.serial and new.valid_principals == [b"node2.internal"]
    assert "host certificate" in _keygen(line, tmp_path)
    revoke = {"serial": str(new.serial), "passive": True, "reasonCode": 4,
              "ott": _pop_token(tokens, new, key, "ssh/revoke")}  # fmt: skip
    resp = http.post("/1.0/ssh/revoke", json=revoke)
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}, resp.text
    resp = http.post("/1.0/ssh/renew", json={"ott": _pop_token(tokens, new, key, "ssh/renew")})
    assert resp.status_code == 401
