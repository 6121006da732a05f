"""The admin API for ACME EAB keys in-process: x5c admin tokens (missing, forged, replayed,
for another URL, by a non-admin), add/list/remove, step-ca's error form, and no admin routes
at all without `enableAdmin`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon.testing
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from api.app import create_app
from appliance.authority import Authority
from appliance.config import CAConfig
from tests.api.admin_tokens import Admin, add_key, admin_app, make_ca

PATH = "/admin/acme/eab/acme"


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[falcon.testing.TestClient]:
    with admin_app(tmp_path_factory.mktemp("admin") / "step") as client:
        yield client


@pytest.fixture(scope="module")
def admin(http: falcon.testing.TestClient) -> Admin:
    return Admin(http)


def refused(got: falcon.testing.Result, status: int, text: str) -> None:
    assert got.status_code == status, got.text
    assert set(got.json) == {"status", "message"}
    assert got.json["status"] == status
    assert text in got.json["message"]


def test_add_list_and_remove(http: falcon.testing.TestClient, admin: Admin) -> None:
    key = add_key(http, admin, "customer-1")
    assert set(key) == {"id", "hmacKey", "provisioner", "reference", "createdAt"}
    assert (key["provisioner"], key["reference"]) == ("acme", "customer-1")
    assert len(base64.b64decode(key["hmacKey"])) == 32
    plain = add_key(http, admin)
    assert "reference" not in plain  # protojson leaves empty fields out

    listed = http.simulate_get(PATH, headers=admin.headers(PATH))
    assert listed.status_code == 200, listed.text
    ids = [k["id"] for k in listed.json["eaks"]]
    assert {key["id"], plain["id"]} <= set(ids)
    assert listed.json["nextCursor"] == ""
    assert all("hmacKey" not in k for k in listed.json["eaks"])  # the secret is shown once

    page = http.simulate_get(PATH, params={"limit": "1"}, headers=admin.headers(PATH))
    assert len(page.json["eaks"]) == 1
    assert page.json["nextCursor"]

    by_ref = f"{PATH}/customer-1"
    found = http.simulate_get(by_ref, headers=admin.headers(by_ref))
    assert [k["id"] for k in found.json["eaks"]] == [key["id"]]

    again = http.simulate_post(PATH, json={"reference": "customer-1"}, headers=admin.headers(PATH))
    refused(again, 400, "reference 'customer-1' already exists")

    one = f"{PATH}/{key['id']}"
    gone = http.simulate_delete(one, headers=admin.headers(one))
    assert (gone.status_code, gone.json) == (200, {"status": "deleted"})
    refused(http.simulate_delete(one, headers=admin.headers(one)), 404, "not found")
    after = http.simulate_get(PATH, headers=admin.headers(PATH)).json["eaks"]
    assert key["id"] not in [k["id"] for k in after]


def test_provisioner_checks(http: falcon.testing.TestClient, admin: Admin) -> None:
    for path, status, text in (
        ("/admin/acme/eab/open", 400, "ACME EAB not enabled for provisioner open"),
        ("/admin/acme/eab/admin", 400, "is not an ACME provisioner"),
        ("/admin/acme/eab/nope", 404, "provisioner nope not found"),
    ):
        refused(http.simulate_get(path, headers=admin.headers(path)), status, text)
    long = http.simulate_post(PATH, json={"reference": "x" * 300}, headers=admin.headers(PATH))
    refused(long, 400, "exceeds the maximum (256)")


def test_tokens_are_checked(http: falcon.testing.TestClient, admin: Admin) -> None:
    refused(http.simulate_get(PATH), 401, "missing authorization header token")
    refused(http.simulate_get(PATH, headers={"Authorization": "garbage"}), 401, "")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"aud": "https://127.0.0.1:9/admin/acme/eab/other"}, "invalid audience"),
        ({"iss": "someone"}, "invalid issuer"),
        ({"sub": ""}, "subject cannot be empty"),
        ({"exp": int(datetime.now(UTC).timestamp()) - 600}, "expired"),
        ({"jti": None}, "no id claim (jti)"),
    ]
    for override, text in cases:
        refused(http.simulate_get(PATH, headers=admin.headers(PATH, **override)), 401, text)
    headers = admin.headers(PATH)
    assert http.simulate_get(PATH, headers=headers).status_code == 200
    refused(http.simulate_get(PATH, headers=headers), 401, "token already used")
    # The other valid ECDSA signature (s -> n - s) is the same token, spent already.
    head, body, sig = headers["Authorization"].split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    r, s_ = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's order
    twin = base64.urlsafe_b64encode(r.to_bytes(32, "big") + (n - s_).to_bytes(32, "big"))
    forged = f"{head}.{body}.{twin.rstrip(b'=').decode()}"
    refused(http.simulate_get(PATH, headers={"Authorization": forged}), 401, "token already used")


def test_a_reference_with_reserved_characters(
    http: falcon.testing.TestClient, admin: Admin
) -> None:
    """The token's `aud` names the percent-encoded URL a client sends (as ours does)."""
    add_key(http, admin, "customer 42")
    path = f"{PATH}/customer%2042"
    got = http.simulate_get(path, headers=admin.headers(path))
    assert got.status_code == 200, got.text
    assert [k["reference"] for k in got.json["eaks"]] == ["customer 42"]


def test_only_admins_and_this_ca(http: falcon.testing.TestClient, admin: Admin) -> None:
    other = Admin(http, subject="alice")
    refused(http.simulate_get(PATH, headers=other.headers(PATH)), 401, "unable to load admin")

    # The right subject on a certificate this CA did not issue.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "step")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(7)
        .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    forged = jwt.encode(
        {"iss": "step-admin-client/1.0", "aud": f"https://127.0.0.1:9{PATH}", "sub": "step",
         "exp": int(now.timestamp()) + 300},
        key,
        algorithm="ES256",
        headers={"x5c": [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]},
    )  # fmt: skip
    refused(http.simulate_get(PATH, headers={"Authorization": forged}), 401, "x5c certificate")

    # Signed by another key than the certificate's.
    stolen = Admin.__new__(Admin)
    stolen.subject, stolen.chain, stolen.key = "step", admin.chain, key
    refused(http.simulate_get(PATH, headers=stolen.headers(PATH)), 401, "x5c claims")


def test_no_admin_api_without_enable_admin(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("noadmin") / "step"
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        authority = Authority.open(
            CAConfig.load(make_ca(base, enable_admin=False)), password=b"ca-pw"
        )
        http = falcon.testing.TestClient(create_app(authority))
        got = http.simulate_get(PATH)
        assert got.status_code == 404
        assert set(got.json) == {"status", "message"}
    finally:
        mp.undo()


@pytest.mark.parametrize("limit", ["x", "²", "-1", "9" * 5000])
def test_a_bad_limit_is_a_400(http: falcon.testing.TestClient, admin: Admin, limit: str) -> None:
    got = http.simulate_get(PATH, params={"limit": limit}, headers=admin.headers(PATH))
    refused(got, 400, "is not an integer")
