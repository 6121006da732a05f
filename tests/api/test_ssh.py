"""The SSH routes in process: `/ssh/sign` (and `/sign-ssh`, `/1.0/...`), `/ssh/roots`,
`/ssh/federation`, `/ssh/check-host`, `/ssh/hosts`, over a CA made by `init --ssh`.

Every certificate issued is read back by `ssh-keygen -L` and its signature checked against
the CA's public key (`ssh-keygen -L` does not verify: cryptography's `verify_cert_signature`
does, with the key from `/ssh/roots`)."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
    load_ssh_public_key,
)

from api.app import create_app
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from tests.appliance.conftest import TokenMaker
from tests.tools import required

PASSWORD, PROV_PASSWORD = b"ca-pw", b"prov-pw"
required("ssh-keygen")


def open_authority(base: Path, edit: Any = None) -> Authority:
    path = base / "config" / "ca.json"
    if edit is not None:
        raw = json.loads(path.read_text())
        edit(raw)
        path.write_text(json.dumps(raw))
    auth = Authority.open(CAConfig.load(path), password=PASSWORD)
    auth.start_time -= 5
    return auth


@contextlib.contextmanager
def ssh_ca(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A CA made by `init --ssh` in a fresh folder; STEPPATH points at it while in use."""
    base = tmp_path_factory.mktemp(name.lower()) / "step"
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        init_pki(
            InitRequest(
                base, name, ["ca.test"], "127.0.0.1:9", "admin", PASSWORD, PROV_PASSWORD, ssh=True
            )
        )
        yield base
    finally:
        mp.undo()


@contextlib.contextmanager
def opened_authority(base: Path) -> Iterator[Authority]:
    """`open_authority(base)`, its database engine disposed afterwards."""
    auth = open_authority(base)
    try:
        yield auth
    finally:
        auth.repository.engine.dispose()


@pytest.fixture(scope="module")
def steppath(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with ssh_ca(tmp_path_factory, "SSH") as base:
        yield base


@pytest.fixture(scope="module")
def authority(steppath: Path) -> Iterator[Authority]:
    with opened_authority(steppath) as auth:
        yield auth


@pytest.fixture(scope="module")
def client(authority: Authority) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(authority))


@pytest.fixture
def token(authority: Authority) -> TokenMaker:
    return TokenMaker(authority, PROV_PASSWORD)


def ssh_token(
    token: TokenMaker, sub: str = "alice", *, path: str = "/1.0/ssh/sign", **ssh: Any
) -> str:
    """A token as `step ssh certificate` makes it: `step.ssh` with type, key ID, principals."""
    options = {"certType": "user", "keyID": sub, "principals": [sub], "validAfter": "",
               "validBefore": ""}  # fmt: skip
    options.update(ssh)
    return str(token(sub, aud=f"https://ca.test:9000{path}", step={"ssh": options}))


def wire(public: Any) -> str:
    text = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return str(text.split(" ")[1])


def sign_body(token: str, public: Any = None, **fields: Any) -> dict[str, Any]:
    key = public or ec.generate_private_key(ec.SECP256R1()).public_key()
    body = {"publicKey": wire(key), "ott": token, "certType": "user", "keyID": "alice",
            "principals": ["alice"], "validAfter": "", "validBefore": ""}  # fmt: skip
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def ca_keys(client: falcon.testing.TestClient) -> dict[str, Any]:
    roots = client.simulate_get("/ssh/roots").json
    return {
        kind: load_ssh_public_key(f"ecdsa-sha2-nistp256 {roots[kind][0]}".encode())
        for kind in ("userKey", "hostKey")
    }


def keygen_list(cert_b64: str, tmp_path: Path) -> str:
    """`ssh-keygen -L` of a certificate as the API returned it."""
    blob = base64.b64decode(cert_b64)
    kind = blob[4 : 4 + int.from_bytes(blob[:4], "big")].decode()
    path = tmp_path / "id-cert.pub"
    path.write_text(f"{kind} {cert_b64}\n")
    done = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def load_cert(cert_b64: str) -> SSHCertificate:
    blob = base64.b64decode(cert_b64)
    kind = blob[4 : 4 + int.from_bytes(blob[:4], "big")].decode()
    cert = load_ssh_public_identity(f"{kind} {cert_b64}".encode())
    assert isinstance(cert, SSHCertificate)
    return cert


def verified(cert_b64: str, ca: Any) -> SSHCertificate:
    """The certificate, its signature checked against `ca` (the CA's public key)."""
    cert = load_cert(cert_b64)
    cert.verify_cert_signature()
    assert cert.signature_key().public_bytes(
        Encoding.OpenSSH, PublicFormat.OpenSSH
    ) == ca.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return cert


# --- roots ------------------------------------------------------------------------------


def test_roots_and_federation_list_the_ca_keys(
    client: falcon.testing.TestClient, steppath: Path
) -> None:
    for path in ("/ssh/roots", "/1.0/ssh/roots", "/ssh/federation", "/1.0/ssh/federation"):
        resp = client.simulate_get(path)
        assert resp.status_code == 200, resp.text
        assert set(resp.json) == {"userKey", "hostKey"}
        for kind, name in (("userKey", "user"), ("hostKey", "host")):
            pub = (steppath / "certs" / f"ssh_{name}_ca_key.pub").read_text().split()
            assert resp.json[kind] == [pub[1]]
            assert pub[0] == "ecdsa-sha2-nistp256"


def test_federation_adds_the_configured_keys(steppath: Path, tmp_path: Path) -> None:
    extra = ed25519.Ed25519PrivateKey.generate().public_key()
    x = base64.urlsafe_b64encode(extra.public_bytes_raw()).decode().rstrip("=")
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x}

    def edit(raw: dict[str, Any]) -> None:
        raw["ssh"]["keys"] = [{"type": "user", "federated": True, "key": jwk}]

    copy = tmp_path / "step"
    shutil.copytree(steppath, copy)
    (copy / "config" / "ca.json").write_text(
        (steppath / "config" / "ca.json").read_text().replace(str(steppath), str(copy))
    )
    auth = open_authority(copy, edit)
    try:
        c = falcon.testing.TestClient(create_app(auth))
        fed = c.simulate_get("/ssh/federation").json
        roots = c.simulate_get("/ssh/roots").json
        assert len(roots["userKey"]) == 1
        assert fed["userKey"] == [*roots["userKey"], wire(extra)]
        assert fed["hostKey"] == roots["hostKey"]
    finally:
        auth.repository.engine.dispose()


# --- sign ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ssh/sign", "/1.0/ssh/sign", "/sign-ssh", "/1.0/sign-ssh"])
def test_user_certificate(
    client: falcon.testing.TestClient, token: TokenMaker, tmp_path: Path, path: str
) -> None:
    user_key = ed25519.Ed25519PrivateKey.generate().public_key()
    resp = client.simulate_post(path, json=sign_body(ssh_token(token), user_key))
    assert resp.status_code == 201, resp.text
    assert set(resp.json) == {"crt"}
    cert = verified(resp.json["crt"], ca_keys(client)["userKey"])
    assert cert.type == SSHCertificateType.USER
    assert cert.key_id == b"alice"
    assert cert.valid_principals == [b"alice"]
    assert cert.critical_options == {}
    assert set(cert.extensions) == {
        b"permit-X11-forwarding", b"permit-agent-forwarding", b"permit-port-forwarding",
        b"permit-pty", b"permit-user-rc",
    }  # fmt: skip
    assert wire(cert.public_key()) == wire(user_key)
    now = int(time.time())
    # default 16h from a start backdated by a minute
    assert cert.valid_before - cert.valid_after == 16 * 3600 + 60
    assert abs(cert.valid_after - (now - 60)) < 30
    listing = keygen_list(resp.json["crt"], tmp_path)
    assert "ssh-ed25519-cert-v01@openssh.com user certificate" in listing
    assert 'Key ID: "alice"' in listing
    assert "permit-pty" in listing


def test_host_certificate(
    client: falcon.testing.TestClient, token: TokenMaker, tmp_path: Path
) -> None:
    ott = ssh_token(token, "web.test", certType="host", principals=["web.test", "10.0.0.1"])
    body = sign_body(ott, certType="host", keyID="web.test", principals=["web.test", "10.0.0.1"])
    resp = client.simulate_post("/ssh/sign", json=body)
    assert resp.status_code == 201, resp.text
    cert = verified(resp.json["crt"], ca_keys(client)["hostKey"])
    assert cert.type == SSHCertificateType.HOST
    assert cert.valid_principals == [b"web.test", b"10.0.0.1"]
    assert cert.extensions == {}
    assert cert.valid_before - cert.valid_after == 30 * 86400 + 60
    listing = keygen_list(resp.json["crt"], tmp_path)
    assert "host certificate" in listing
    assert "web.test" in listing and "10.0.0.1" in listing


def test_rsa_key_and_validity_from_request(
    client: falcon.testing.TestClient, token: TokenMaker, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(65537, 2048).public_key()
    resp = client.simulate_post(
        "/ssh/sign", json=sign_body(ssh_token(token), key, validAfter="1m", validBefore="2h")
    )
    assert resp.status_code == 201, resp.text
    cert = verified(resp.json["crt"], ca_keys(client)["userKey"])
    assert cert.valid_before - cert.valid_after == 2 * 3600 - 60
    assert "ssh-rsa-cert-v01@openssh.com" in keygen_list(resp.json["crt"], tmp_path)


def test_token_principals_and_subset_request(
    client: falcon.testing.TestClient, token: TokenMaker
) -> None:
    ott = ssh_token(token, principals=["alice", "admin"])
    resp = client.simulate_post("/ssh/sign", json=sign_body(ott, principals=["admin"]))
    assert resp.status_code == 201, resp.text
    assert load_cert(resp.json["crt"]).valid_principals == [b"alice", b"admin"]


def test_add_user_certificate(
    client: falcon.testing.TestClient, token: TokenMaker, tmp_path: Path
) -> None:
    add_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    resp = client.simulate_post(
        "/ssh/sign", json=sign_body(ssh_token(token), addUserPublicKey=wire(add_key))
    )
    assert resp.status_code == 201, resp.text
    add = verified(resp.json["addUserCrt"], ca_keys(client)["userKey"])
    assert add.key_id == b"alice-provisioner"
    assert add.valid_principals == [b"provisioner"]
    assert add.critical_options == {b"force-command": b"sudo useradd -m alice; nc -q0 localhost 22"}
    main = load_cert(resp.json["crt"])
    assert (add.valid_after, add.valid_before) == (main.valid_after, main.valid_before)
    assert "force-command" in keygen_list(resp.json["addUserCrt"], tmp_path)


def test_certificates_and_tokens_are_recorded(
    client: falcon.testing.TestClient, token: TokenMaker, authority: Authority
) -> None:
    from sqlalchemy import select

    from appliance.db.models import audit, ssh_certs, used_tokens
    from tests.e2e.tokens import claims_of

    ott = ssh_token(token, "bob", principals=["bob"])
    resp = client.simulate_post("/ssh/sign", json=sign_body(ott, keyID="bob", principals=["bob"]))
    assert resp.status_code == 201, resp.text
    cert = load_cert(resp.json["crt"])
    with authority.repository.engine.connect() as conn:
        row = conn.execute(select(ssh_certs).where(ssh_certs.c.serial == str(cert.serial))).one()
        used = conn.execute(
            select(used_tokens).where(used_tokens.c.id == claims_of(ott)["jti"])
        ).one()
        entry = conn.execute(select(audit).where(audit.c.serial == str(cert.serial))).one()
    assert row.cert == base64.b64decode(cert.public_bytes().split()[1])
    assert row.cert_type == "user" and row.key_id == "bob"
    assert row.token_id == used.id
    assert entry.kind == "ssh.sign" and entry.subject == "bob"


# --- refusals -----------------------------------------------------------------------------


def _error(resp: Any, status: int, message: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    if message is not None:
        assert message in resp.json["message"], resp.json


def test_replayed_token_is_refused(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    ott = ssh_token(token)
    assert client.simulate_post("/ssh/sign", json=sign_body(ott)).status_code == 201
    _error(client.simulate_post("/ssh/sign", json=sign_body(ott)), 401)


def test_refused_token_is_not_burned(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    ott = ssh_token(token)
    _error(client.simulate_post("/ssh/sign", json=sign_body(ott, validBefore="72h")), 403)
    assert client.simulate_post("/ssh/sign", json=sign_body(ott)).status_code == 201


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"principals": ["root"]}, 403,
         "ssh certificate principals does not match - got [root], want [alice]"),
        ({"principals": ["alice", "root"]}, 403, None),
        ({"certType": "host"}, 403, "ssh certificate type does not match - got host, want user"),
        ({"keyID": "mallory"}, 403,
         "ssh certificate key id does not match - got mallory, want alice"),
        ({"certType": "admin"}, 400, "invalid certType 'admin'"),
        ({"validBefore": "72h"}, 403,
         "requested duration of 72h1m0s is more than the authorized maximum certificate "
         "duration of 24h1m0s"),
        ({"validAfter": "1m", "validBefore": "3m"}, 403,
         "requested duration of 2m0s is less than minimum accepted duration for selected "
         "provisioner of 5m0s"),
        ({"validAfter": "2h", "validBefore": "1h"}, 400,
         "ssh certificate valid after cannot be greater than valid before"),
        ({"validBefore": "2006-01-02T15:04:05Z"}, 400,
         "ssh certificate validBefore cannot be in the past"),
        ({"validBefore": "tomorrow"}, 400, "error decoding json"),
        ({"publicKey": ""}, 400, "missing or empty publicKey"),
        ({"publicKey": "bm90IGEga2V5"}, 400, "error parsing publicKey"),
        ({"ott": ""}, 400, "missing or empty ott"),
        ({"principals": "alice"}, 400, "error decoding json"),
    ],
)  # fmt: skip
def test_bad_requests(
    client: falcon.testing.TestClient,
    token: TokenMaker,
    fields: dict[str, Any],
    status: int,
    message: str | None,
) -> None:
    _error(client.simulate_post("/ssh/sign", json=sign_body(ssh_token(token), **fields)),
           status, message)  # fmt: skip


def test_small_rsa_key_is_refused(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    key = rsa.generate_private_key(65537, 1024).public_key()
    _error(
        client.simulate_post("/ssh/sign", json=sign_body(ssh_token(token), key)),
        403,
        "ssh certificate key must be at least 2048 bits (256 bytes)",
    )


def test_token_without_ssh_claim_and_wrong_audience(
    client: falcon.testing.TestClient, token: TokenMaker
) -> None:
    plain = token("alice", aud="https://ca.test:9000/1.0/ssh/sign")
    _error(client.simulate_post("/ssh/sign", json=sign_body(plain)), 401)
    revoke_aud = ssh_token(token, path="/1.0/revoke")
    _error(client.simulate_post("/ssh/sign", json=sign_body(revoke_aud)), 401)


def test_token_validity_overrides_the_request(
    client: falcon.testing.TestClient, token: TokenMaker
) -> None:
    ott = ssh_token(token, validBefore="1h")
    resp = client.simulate_post("/ssh/sign", json=sign_body(ott))
    assert resp.status_code == 201, resp.text
    cert = load_cert(resp.json["crt"])
    assert cert.valid_before - cert.valid_after == 3600 + 60


def test_ssh_disabled_for_provisioner(steppath: Path, tmp_path: Path) -> None:
    copy = tmp_path / "step"
    shutil.copytree(steppath, copy)
    text = (steppath / "config" / "ca.json").read_text().replace(str(steppath), str(copy))
    raw = json.loads(text)
    for prov in raw["authority"]["provisioners"]:
        prov.get("claims", {}).pop("enableSSHCA", None)
    (copy / "config" / "ca.json").write_text(json.dumps(raw))
    auth = open_authority(copy)
    try:
        c = falcon.testing.TestClient(create_app(auth))
        ott = ssh_token(TokenMaker(auth, PROV_PASSWORD))
        resp = c.simulate_post("/ssh/sign", json=sign_body(ott))
        _error(resp, 401)
    finally:
        auth.repository.engine.dispose()


def test_no_ssh_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(base))
    init_pki(InitRequest(base, "X", ["ca.test"], "127.0.0.1:9", "admin", PASSWORD, PROV_PASSWORD))

    def edit(raw: dict[str, Any]) -> None:
        raw["authority"]["provisioners"][0]["claims"] = {"enableSSHCA": True}

    auth = open_authority(base, edit)
    try:
        c = falcon.testing.TestClient(create_app(auth))
        _error(c.simulate_get("/ssh/roots"), 404, "no keys found")
        ott = ssh_token(TokenMaker(auth, PROV_PASSWORD))
        resp = c.simulate_post("/ssh/sign", json=sign_body(ott))
        _error(resp, 501)
        _error(c.simulate_get("/ssh/hosts"), 501)
    finally:
        auth.repository.engine.dispose()


# --- hosts ------------------------------------------------------------------------------


def test_check_host_and_hosts(client: falcon.testing.TestClient, token: TokenMaker) -> None:
    name = "DB1.example"
    ott = ssh_token(token, name, certType="host", principals=[name])
    body = sign_body(ott, certType="host", keyID=name, principals=[name])
    assert client.simulate_post("/ssh/sign", json=body).status_code == 201
    for path in ("/ssh/check-host", "/1.0/ssh/check-host"):
        resp = client.simulate_post(path, json={"type": "host", "principal": "db1.example"})
        assert resp.status_code == 200 and resp.json == {"exists": True}
        resp = client.simulate_post(path, json={"type": "host", "principal": "nope.example"})
        assert resp.json == {"exists": False}
    _error(client.simulate_post("/ssh/check-host", json={"type": "user", "principal": "x"}),
           400, "unsupported type user")  # fmt: skip
    _error(client.simulate_post("/ssh/check-host", json={"type": "host"}),
           400, "missing or empty principal")  # fmt: skip
    for path in ("/ssh/hosts", "/ssh/get-hosts", "/1.0/ssh/hosts"):
        resp = client.simulate_get(path)
        assert resp.status_code == 200
        assert {"hid": "", "host_tags": None, "hostname": "db1.example"} in resp.json["hosts"]
        assert all(h["hostname"] != "alice" for h in resp.json["hosts"])


def test_sshpop_provisioner_is_listed_and_signs_no_x509(
    client: falcon.testing.TestClient,
) -> None:
    items = client.simulate_get("/provisioners").json["provisioners"]
    assert items[-1] == {"type": "SSHPOP", "name": "sshpop", "claims": {"enableSSHCA": True}}
