"""SSH authorization in the provisioners: the request/token matching rules, the OIDC
identity's principals, and OIDC SSH certificates through `/ssh/sign` against a real identity
provider on 127.0.0.1 (tests/oidc_idp.py): a user gets its e-mail's principals, an admin
whatever the request names."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from api.app import create_app
from appliance.pki import InitRequest, init_pki
from pki.errors import CAError, ErrorKind
from provisioners.claims import Claims
from provisioners.ssh import SSHOptions, grant, oidc_principals, sanitize_principal
from tests.api.test_ssh import PASSWORD, PROV_PASSWORD, load_cert, open_authority, wire
from tests.oidc_idp import TestIdP, User

ADMIN = User(sub="admin-1", email="Boss.Man@Example.com")


@pytest.mark.parametrize(
    ("email", "name"),
    [
        ("jane@example.com", "jane"),
        ("Jane.Doe@example.com", "janedoe"),
        ("j+tag@example.com", "j_tag"),
        ("no-at-sign", "no-at-sign"),
    ],
)
def test_sanitize_principal(email: str, name: str) -> None:
    assert sanitize_principal(email) == name


def test_oidc_principals() -> None:
    assert oidc_principals("Jane.Doe@example.com") == (
        "janedoe", "Jane.Doe", "Jane.Doe@example.com",
    )  # fmt: skip
    assert oidc_principals("jane@example.com") == ("jane", "jane@example.com")


def _grant(**token: Any) -> Any:
    from datetime import UTC, datetime

    return grant("p", "alice", SSHOptions(**token), Claims(), "id", datetime.now(UTC))


@pytest.mark.parametrize(
    ("request_", "token", "fragment"),
    [
        ({"cert_type": "host"}, {"cert_type": "user"}, "type does not match"),
        ({"principals": ("a", "x")}, {"principals": ("a", "b")}, "principals does not match"),
        ({"key_id": "bob"}, {}, "key id does not match"),
    ],
)
def test_request_may_only_narrow_the_token(
    request_: dict[str, Any], token: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(CAError) as info:
        SSHOptions(**request_).check_grant(_grant(**token))
    assert info.value.kind is ErrorKind.FORBIDDEN and fragment in str(info.value.public)


def test_defaults_from_the_subject() -> None:
    g = _grant()
    assert (g.cert_type, g.key_id, g.principals) == ("user", "alice", ("alice",))
    SSHOptions(principals=("alice",), key_id="alice").check_grant(g)


# --- OIDC through /ssh/sign ---------------------------------------------------------------


@pytest.fixture
def idp() -> Iterator[TestIdP]:
    with TestIdP() as provider:
        yield provider


@pytest.fixture
def client(
    idp: TestIdP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[falcon.testing.TestClient]:
    base = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(base))
    init_pki(
        InitRequest(
            base, "OIDC", ["ca.test"], "127.0.0.1:9", "admin", PASSWORD, PROV_PASSWORD, ssh=True
        )
    )

    def edit(raw: dict[str, Any]) -> None:
        prov = idp.provisioner(admins=[ADMIN.email])
        prov["claims"] = {"enableSSHCA": True}
        raw["authority"]["provisioners"].append(prov)

    auth = open_authority(base, edit)
    try:
        yield falcon.testing.TestClient(create_app(auth))
    finally:
        auth.repository.engine.dispose()


def _body(ott: str, **fields: Any) -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {"publicKey": wire(key), "ott": ott, **fields}


def test_oidc_user_gets_the_email_principals(
    idp: TestIdP, client: falcon.testing.TestClient
) -> None:
    ott = idp.sign(idp.claims_for())
    resp = client.simulate_post("/ssh/sign", json=_body(ott, principals=["jane"]))
    assert resp.status_code == 201, resp.text
    cert = load_cert(resp.json["crt"])
    assert cert.key_id == b"jane@example.com"
    assert cert.valid_principals == [b"jane", b"jane@example.com"]
    again = client.simulate_post("/ssh/sign", json=_body(ott))  # the nonce is single use
    assert again.status_code == 401


def test_oidc_user_is_refused_other_principals_and_host_certs(
    idp: TestIdP, client: falcon.testing.TestClient
) -> None:
    resp = client.simulate_post(
        "/ssh/sign", json=_body(idp.sign(idp.claims_for()), principals=["root"])
    )
    assert resp.status_code == 403
    resp = client.simulate_post(
        "/ssh/sign", json=_body(idp.sign(idp.claims_for()), certType="host")
    )
    assert resp.status_code == 403
    no_email = idp.sign(idp.claims_for(User(sub="x", email=None)))
    assert client.simulate_post("/ssh/sign", json=_body(no_email)).status_code == 401


def test_oidc_admin_names_the_certificate(idp: TestIdP, client: falcon.testing.TestClient) -> None:
    ott = idp.sign(idp.claims_for(ADMIN))
    body = _body(ott, certType="host", keyID="web", principals=["web.internal", "10.1.1.1"])
    resp = client.simulate_post("/ssh/sign", json=body)
    assert resp.status_code == 201, resp.text
    cert = load_cert(resp.json["crt"])
    assert cert.key_id == b"web" and cert.valid_principals == [b"web.internal", b"10.1.1.1"]
    incomplete = _body(idp.sign(idp.claims_for(ADMIN)), certType="user")
    resp = client.simulate_post("/ssh/sign", json=incomplete)
    assert resp.status_code == 400
    assert "keyID cannot be empty" in json.loads(resp.text)["message"]
