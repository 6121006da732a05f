"""new-account with External Account Binding (RFC 8555 §7.3.4) in-process: the directory says
EAB is required, a missing or bad binding is refused with the problem step-ca sends, a good one
(HS256/HS384/HS512) binds its key to exactly one account, visible in the admin list."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from jwcrypto import jwk  # type: ignore[import-untyped]

from tests.api.admin_tokens import Admin, add_key, admin_app
from tests.api.test_acme import BASE, Client, problem

NEW_ACCOUNT = "/acme/acme/new-account"


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[falcon.testing.TestClient]:
    with admin_app(tmp_path_factory.mktemp("eab") / "step") as client:
        yield client


@pytest.fixture(scope="module")
def admin(http: falcon.testing.TestClient) -> Admin:
    return Admin(http)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def binding(
    acme: Client,
    key: dict[str, Any],
    *,
    alg: str = "HS256",
    url: str = f"{BASE}/new-account",
    payload: Any = None,
    secret: bytes | None = None,
    **header: Any,
) -> dict[str, Any]:
    """The externalAccountBinding JWS for `acme`'s key, MAC'd with the EAB key (by hand:
    jwcrypto will not make HS384/HS512 with a 32-byte key, which RFC 8555 clients do)."""
    mac_key = secret or base64.b64decode(key["hmacKey"])
    protected = b64(json.dumps({"alg": alg, "kid": key["id"], "url": url, **header}).encode())
    body = payload if payload is not None else json.loads(acme.key.export_public())
    encoded = b64(json.dumps(body).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    mac = hmac.new(mac_key, f"{protected}.{encoded}".encode(), digest.get(alg, hashlib.sha256))
    return {"protected": protected, "payload": encoded, "signature": b64(mac.digest())}


def register(acme: Client, eab: dict[str, Any] | None) -> falcon.testing.Result:
    payload: dict[str, Any] = {"termsOfServiceAgreed": True}
    if eab is not None:
        payload["externalAccountBinding"] = eab
    return acme.post(NEW_ACCOUNT, payload, jwk=True)


def test_the_directory_says_eab_is_required(http: falcon.testing.TestClient) -> None:
    meta = http.simulate_get("/acme/acme/directory").json["meta"]
    assert meta["externalAccountRequired"] is True
    assert http.simulate_get("/acme/open/directory").json["meta"] == {
        "externalAccountRequired": False
    }


def test_a_binding_is_required(http: falcon.testing.TestClient) -> None:
    problem(register(Client(http), None), "externalAccountRequired", 401)


def test_a_good_binding_binds_the_key_once(http: falcon.testing.TestClient, admin: Admin) -> None:
    key = add_key(http, admin, "bind-once")
    acme = Client(http)
    created = register(acme, binding(acme, key))
    assert created.status_code == 201, created.text
    account_id = created.headers["Location"].rsplit("/", 1)[-1]

    path = "/admin/acme/eab/acme/bind-once"
    listed = http.simulate_get(path, headers=admin.headers(path)).json["eaks"]
    assert [(k["id"], k["account"]) for k in listed] == [(key["id"], account_id)]
    assert listed[0]["boundAt"]

    assert register(acme, binding(acme, key)).status_code == 200  # the same account again
    other = Client(http)
    reused = register(other, binding(other, key))
    problem(reused, "unauthorized", 401)
    assert "already bound" in reused.json["detail"]
    # Without the HMAC key nobody learns that the key is bound, nor to which account.
    guessed = register(other, binding(other, key, secret=b"\0" * 32))
    problem(guessed, "unauthorized", 401)
    assert account_id not in guessed.json["detail"]
    assert "signature" in guessed.json["detail"]
    forged = {**binding(other, key), "signature": "!!"}
    problem(register(other, forged), "unauthorized", 401)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms(http: falcon.testing.TestClient, admin: Admin, alg: str) -> None:
    key = add_key(http, admin)
    acme = Client(http, kty="OKP")
    assert register(acme, binding(acme, key, alg=alg)).status_code == 201


def test_bad_bindings_are_refused(http: falcon.testing.TestClient, admin: Admin) -> None:
    key = add_key(http, admin)
    acme = Client(http)
    stranger = Client(http)
    cases: list[tuple[dict[str, Any], str, int, str]] = [
        (binding(acme, key, secret=b"\0" * 32), "unauthorized", 401, "signature"),
        (binding(acme, {**key, "id": "unknown"}), "unauthorized", 401, "not found"),
        (binding(acme, key, url=f"{BASE}/new-order"), "unauthorized", 401, "url"),
        (binding(acme, key, payload=json.loads(stranger.key.export_public())),
         "unauthorized", 401, "do not match"),
        (binding(acme, key, nonce="abc"), "malformed", 400, "nonce"),
        ({"protected": "e30", "payload": "", "signature": ""}, "malformed", 400, "algorithm"),
        ({"protected": "!!", "payload": "", "signature": ""}, "malformed", 400, "parsing"),
    ]  # fmt: skip
    for eab, kind, status, text in cases:
        got = register(acme, eab)
        problem(got, kind, status)
        assert text in got.json["detail"], got.json
    problem(register(acme, "not-an-object"), "malformed")  # type: ignore[arg-type]
    # None of these bound the key: it still binds an account.
    assert register(acme, binding(acme, key)).status_code == 201


def test_a_binding_is_ignored_unless_required(
    http: falcon.testing.TestClient, admin: Admin
) -> None:
    """A provisioner without requireEAB ignores a binding, as step-ca does."""
    acme = Client(http)
    url = "https://127.0.0.1:9/acme/open/new-account"
    payload = {"externalAccountBinding": binding(acme, add_key(http, admin), url=url)}
    got = acme.post("/acme/open/new-account", payload, jwk=True)
    assert got.status_code == 201, got.text


def test_one_account_per_key_across_provisioners(http: falcon.testing.TestClient) -> None:
    """A key with an account on `open` is told so on `acme`, not let past its EAB."""
    acme = Client(http)
    made = acme.post("/acme/open/new-account", {"termsOfServiceAgreed": True}, jwk=True)
    assert made.status_code == 201, made.text
    refused = register(acme, None)
    problem(refused, "unauthorized", 401)
    assert "provisioner 'open'" in refused.json["detail"]


def test_revoke_by_key_is_for_acme_certificates_only(
    http: falcon.testing.TestClient, admin: Admin
) -> None:
    """The admin's certificate came from /1.0/sign: ACME's revoke-cert does not know it."""
    holder = Client(http)
    holder.key = jwk.JWK.from_pyca(admin.key)
    der = base64.urlsafe_b64encode(admin.chain[0].public_bytes(Encoding.DER)).rstrip(b"=")
    got = holder.post("/acme/open/revoke-cert", {"certificate": der.decode()}, jwk=True)
    problem(got, "malformed", 404)
