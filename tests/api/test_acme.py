"""ACME routes in-process (falcon.testing over a fresh CA with an ACME provisioner): the JWS
envelope's checks and problem documents, a whole order with the CA fetching http-01 from a
server on 127.0.0.1, identifiers refused by policy, revocation by the certificate's key."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import falcon
import falcon.testing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk, jws  # type: ignore[import-untyped]
from sqlalchemy import update

from api.app import create_app
from appliance.acme.store import STUCK_AFTER, Store, aware, now
from appliance.authority import Authority
from appliance.db.models import acme_challenges
from provisioners.schema import PolicySchema
from tests.acme_ca import acme_authority
from tests.e2e.harness import free_port
from tests.http_server import QuietHandler, serving

NAME = "www.acme.test"
PROBLEM = "urn:ietf:params:acme:error:"
BASE = "https://127.0.0.1:9/acme/acme"


class Challenges(QuietHandler):
    """Serves the key authorizations in `answers` (token -> text)."""

    answers: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        token = self.path.rsplit("/", 1)[-1]
        body = self.answers.get(token, "").encode()
        self.send_body(body, 200 if body else 404)


@pytest.fixture(scope="module")
def http01_port() -> Iterator[int]:
    port = free_port()
    with serving(Challenges, port=port):
        yield port


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory, http01_port: int) -> Iterator[Authority]:
    acme = {
        "type": "ACME",
        "name": "acme",
        "forceCN": True,
        "challenges": ["http-01"],
        "termsOfService": "https://ca.test/tos",
        "stepstone": {"httpPort": http01_port, "hosts": {NAME: "127.0.0.1"}},
    }
    with acme_authority(tmp_path_factory.mktemp("acme") / "step", acme) as authority:
        yield authority


@pytest.fixture(scope="module")
def client(authority: Authority) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(authority))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Client:
    """A minimal ACME client: jwcrypto signs, the test drives each request."""

    def __init__(self, http: falcon.testing.TestClient, kty: str = "EC") -> None:
        self.http = http
        self.key = (
            jwk.JWK.generate(kty="EC", crv="P-256")
            if kty == "EC"
            else jwk.JWK.generate(kty="OKP", crv="Ed25519")
            if kty == "OKP"
            else jwk.JWK.generate(kty="RSA", size=2048)
        )
        self.alg = {"EC": "ES256", "OKP": "EdDSA", "RSA": "RS256"}[kty]
        self.kid: str | None = None

    def nonce(self) -> str:
        return str(self.http.simulate_head("/acme/acme/new-nonce").headers["Replay-Nonce"])

    def body(
        self, url: str, payload: Any, *, nonce: str | None = None, jwk: bool = False, **header: Any
    ) -> str:
        protected: dict[str, Any] = {"alg": self.alg, "nonce": nonce or self.nonce(), "url": url}
        if self.kid and not jwk:
            protected["kid"] = self.kid
        else:
            protected["jwk"] = json.loads(self.key.export_public())
        protected.update(header)
        token = jws.JWS(b"" if payload is None else json.dumps(payload).encode())
        token.add_signature(self.key, None, json.dumps(protected))
        return str(token.serialize())

    def post(self, path: str, payload: Any = None, **kw: Any) -> falcon.testing.Result:
        url = kw.pop("url", f"https://127.0.0.1:9{path}")
        return self.http.simulate_post(
            path,
            body=self.body(url, payload, **kw),
            headers={"Content-Type": "application/jose+json"},
        )

    def register(self) -> falcon.testing.Result:
        result = self.post("/acme/acme/new-account", {"termsOfServiceAgreed": True}, jwk=True)
        self.kid = result.headers["Location"]
        return result

    def thumbprint(self) -> str:
        return str(self.key.thumbprint())


def path(url: str) -> str:
    return url.removeprefix("https://127.0.0.1:9")


def problem(result: falcon.testing.Result, kind: str, status: int = 400) -> None:
    assert result.status_code == status, result.text
    assert result.headers["Content-Type"] == "application/problem+json"
    assert result.json["type"] == PROBLEM + kind
    assert result.headers["Replay-Nonce"]


def test_directory_and_nonces(client: falcon.testing.TestClient) -> None:
    for prefix in ("/acme", "/2.0/acme"):
        got = client.simulate_get(f"{prefix}/acme/directory")
        assert got.status_code == 200
        assert got.json == {
            "newNonce": f"{BASE}/new-nonce",
            "newAccount": f"{BASE}/new-account",
            "newOrder": f"{BASE}/new-order",
            "revokeCert": f"{BASE}/revoke-cert",
            "keyChange": f"{BASE}/key-change",
            "meta": {"termsOfService": "https://ca.test/tos", "externalAccountRequired": False},
        }
    head = client.simulate_head("/acme/acme/new-nonce")
    get = client.simulate_get("/2.0/acme/acme/new-nonce")
    assert (head.status_code, get.status_code) == (200, 204)
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    assert head.headers["Cache-Control"] == "no-store"
    assert client.simulate_get("/1.0/acme/acme/directory").status_code == 404
    missing = client.simulate_get("/acme/admin/directory")
    assert missing.status_code == 404
    assert missing.json["type"] == "urn:ietf:params:acme:error:accountDoesNotExist"
    assert "Replay-Nonce" not in missing.headers  # no provisioner, no nonce row either


def test_provisioners_lists_the_acme_entry(client: falcon.testing.TestClient) -> None:
    listed = client.simulate_get("/provisioners").json["provisioners"]
    acme = [p for p in listed if p["type"] == "ACME"]
    assert [list(p)[:4] for p in acme] == [["type", "name", "forceCN", "challenges"]]


def test_the_envelope_is_checked(client: falcon.testing.TestClient) -> None:
    acme = Client(client)
    created = acme.register()
    assert created.status_code == 201
    assert created.headers["Location"].startswith(f"{BASE}/account/")
    assert created.json["status"] == "valid"
    assert acme.register().status_code == 200  # the same key: the same account

    nonce = acme.nonce()
    first = acme.post("/acme/acme/new-order", {"identifiers": []}, nonce=nonce)
    problem(first, "malformed")
    problem(acme.post("/acme/acme/new-order", {}, nonce=nonce), "badNonce")
    problem(acme.post("/acme/acme/new-order", {}, url=f"{BASE}/new-account"), "unauthorized", 401)
    hs256 = {"alg": "HS256", "nonce": acme.nonce(), "url": f"{BASE}/new-order", "kid": acme.kid}
    forged = {"protected": b64(json.dumps(hs256).encode()), "payload": "", "signature": "AA"}
    sent = client.simulate_post(
        "/acme/acme/new-order",
        body=json.dumps(forged),
        headers={"Content-Type": "application/jose+json"},
    )
    problem(sent, "badSignatureAlgorithm")

    stranger = Client(client)
    stranger.kid = acme.kid  # signs with its own key under another account's kid
    problem(stranger.post("/acme/acme/new-order", {}), "malformed")
    problem(
        stranger.post("/acme/acme/new-account", {"onlyReturnExisting": True}, jwk=True),
        "accountDoesNotExist",
    )
    text = client.simulate_post("/acme/acme/new-order", body="{}",
                                headers={"Content-Type": "application/json"})  # fmt: skip
    problem(text, "malformed", 415)


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("dns", "127.0.0.1", "rejectedIdentifier"),
        ("dns", "*.acme.test", "rejectedIdentifier"),
        ("dns", "bad_name.test", "rejectedIdentifier"),
        ("ip", "not-an-ip", "rejectedIdentifier"),
        ("email", "a@b.test", "unsupportedIdentifier"),
    ],
)
def test_names_outside_the_policy_are_refused(
    client: falcon.testing.TestClient, kind: str, value: str, expected: str
) -> None:
    acme = Client(client)
    acme.register()
    order = acme.post("/acme/acme/new-order", {"identifiers": [{"type": kind, "value": value}]})
    problem(order, expected)


def wait_for(acme: Client, url: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        got = acme.post(path(url))
        if got.json["status"] != "pending" or time.monotonic() > deadline:
            assert got.json["status"] == status, got.json
            return dict(got.json)
        assert got.headers["Retry-After"] == "1"
        time.sleep(0.2)


def csr_der(key: ec.EllipticCurvePrivateKey, *names: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return b64(csr.public_bytes(serialization.Encoding.DER))


@pytest.mark.parametrize("kty", ["EC", "OKP", "RSA"])
def test_an_order_from_challenge_to_revocation(client: falcon.testing.TestClient, kty: str) -> None:
    acme = Client(client, kty)
    acme.register()
    created = acme.post("/acme/acme/new-order", {"identifiers": [{"type": "dns", "value": NAME}]})
    assert created.status_code == 201, created.text
    order, order_url = created.json, created.headers["Location"]
    assert order["status"] == "pending"
    key = ec.generate_private_key(ec.SECP256R1())
    early = acme.post(path(order["finalize"]), {"csr": csr_der(key, NAME)})
    problem(early, "orderNotReady", 403)

    authz = acme.post(path(order["authorizations"][0])).json
    assert authz["identifier"] == {"type": "dns", "value": NAME}
    (challenge,) = authz["challenges"]
    assert challenge["type"] == "http-01"
    Challenges.answers[challenge["token"]] = f"{challenge['token']}.{acme.thumbprint()}"
    started = acme.post(path(challenge["url"]), {})
    assert started.json["status"] in ("processing", "valid")
    wait_for(acme, order["authorizations"][0], "valid")
    assert acme.post(path(order_url)).json["status"] == "ready"

    bad = acme.post(path(order["finalize"]), {"csr": csr_der(key, NAME, "other.test")})
    problem(bad, "badCSR")
    done = acme.post(path(order["finalize"]), {"csr": csr_der(key, NAME)})
    assert done.status_code == 200, done.text
    assert done.json["status"] == "valid"
    chain = acme.post(path(done.json["certificate"]))
    assert chain.headers["Content-Type"] == "application/pem-certificate-chain"
    leaf = x509.load_pem_x509_certificates(chain.text.encode())[0]
    assert leaf.subject.rfc4514_string() == f"CN={NAME}"  # forceCN
    listed = acme.post(path(acme.kid or "") + "/orders").json["orders"]
    assert order_url in listed

    holder = Client(client, "EC")
    holder.key = jwk.JWK.from_pem(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = b64(leaf.public_bytes(serialization.Encoding.DER))
    stranger = Client(client)
    stranger.register()
    problem(stranger.post("/acme/acme/revoke-cert", {"certificate": der}), "unauthorized", 401)
    revoked = holder.post("/acme/acme/revoke-cert", {"certificate": der})
    assert revoked.status_code == 200, revoked.text
    problem(acme.post("/acme/acme/revoke-cert", {"certificate": der}), "alreadyRevoked")


def test_a_wrong_key_authorization_invalidates_the_order(
    client: falcon.testing.TestClient,
) -> None:
    acme = Client(client)
    acme.register()
    order = acme.post("/acme/acme/new-order", {"identifiers": [{"type": "dns", "value": NAME}]})
    authz_url = order.json["authorizations"][0]
    (challenge,) = acme.post(path(authz_url)).json["challenges"]
    Challenges.answers[challenge["token"]] = "wrong"
    acme.post(path(challenge["url"]), {})
    authz = wait_for(acme, authz_url, "invalid")
    assert authz["challenges"][0]["error"]["type"] == PROBLEM + "incorrectResponse"
    assert acme.post(path(order.headers["Location"])).json["status"] == "invalid"


def test_key_change_moves_the_account_to_the_new_key(client: falcon.testing.TestClient) -> None:
    acme = Client(client)
    acme.register()
    new = Client(client, "OKP")
    url = f"{BASE}/key-change"
    inner = jws.JWS(
        json.dumps({"account": acme.kid, "oldKey": json.loads(acme.key.export_public())}).encode()
    )
    inner.add_signature(
        new.key,
        None,
        json.dumps({"alg": "EdDSA", "url": url, "jwk": json.loads(new.key.export_public())}),
    )
    changed = acme.post("/acme/acme/key-change", json.loads(inner.serialize()))
    assert changed.status_code == 200, changed.text
    assert changed.headers["Location"] == acme.kid
    new.kid = acme.kid
    assert new.post(path(acme.kid or ""), {}).json["status"] == "valid"
    problem(acme.post(path(acme.kid or ""), {}), "malformed")  # the old key no longer signs
    found = new.post("/acme/acme/new-account", {"onlyReturnExisting": True}, jwk=True)
    assert found.headers["Location"] == acme.kid


@pytest.mark.parametrize(
    "url",
    [
        "https://ca.other.test:9/acme/acme/new-order",  # another host
        "http://127.0.0.1:9/acme/acme/new-order",  # another scheme
        "https://127.0.0.1:10/acme/acme/new-order",  # another port
        "https://127.0.0.1/acme/acme/new-order",  # the default port is not :9
        "https://127.0.0.1:9/acme/acme/new-order?x=1",
        "https://127.0.0.1:x/acme/acme/new-order",
    ],
)
def test_the_url_header_is_the_whole_request_url(
    client: falcon.testing.TestClient, url: str
) -> None:
    acme = Client(client)
    acme.register()
    idents = {"identifiers": [{"type": "dns", "value": NAME}]}
    problem(acme.post("/acme/acme/new-order", idents, url=url), "unauthorized", 401)
    same = acme.post("/acme/acme/new-order", idents, url="HTTPS://127.0.0.1:9/acme/acme/new-order")
    assert same.status_code == 201, same.text
    other_prefix = acme.post("/2.0/acme/acme/new-order", idents)  # its own URL, as sent
    assert other_prefix.status_code == 201, other_prefix.text


def test_key_change_to_a_key_in_use_names_its_account(client: falcon.testing.TestClient) -> None:
    acme, other = Client(client), Client(client, "OKP")
    acme.register()
    other.register()
    url = f"{BASE}/key-change"
    inner = jws.JWS(
        json.dumps({"account": acme.kid, "oldKey": json.loads(acme.key.export_public())}).encode()
    )
    inner.add_signature(
        other.key,
        None,
        json.dumps({"alg": "EdDSA", "url": url, "jwk": json.loads(other.key.export_public())}),
    )
    refused = acme.post("/acme/acme/key-change", json.loads(inner.serialize()))
    problem(refused, "malformed", 409)
    assert refused.headers["Location"] == other.kid
    assert acme.post(path(acme.kid or ""), {}).json["status"] == "valid"  # the key is unchanged


@pytest.mark.parametrize("poke", ["authz", "challenge"])
def test_a_challenge_left_processing_by_a_dead_worker_is_validated_again(
    client: falcon.testing.TestClient, authority: Authority, poke: str
) -> None:
    acme = Client(client)
    acme.register()
    order = acme.post("/acme/acme/new-order", {"identifiers": [{"type": "dns", "value": NAME}]})
    authz_url = order.json["authorizations"][0]
    (challenge,) = acme.post(path(authz_url)).json["challenges"]
    challenge_id = challenge["url"].rsplit("/", 1)[-1]
    Challenges.answers[challenge["token"]] = f"{challenge['token']}.{acme.thumbprint()}"

    def mark_processing(since: datetime) -> None:
        """As if a worker took the challenge at `since` and never came back."""
        with authority.repository.engine.begin() as conn:
            conn.execute(
                update(acme_challenges)
                .where(acme_challenges.c.id == challenge_id)
                .values(status="processing", validated=since)
            )

    recent = now() - timedelta(minutes=1)
    mark_processing(recent)
    polled = acme.post(path(authz_url)).json
    assert (polled["status"], polled["challenges"][0]["status"]) == ("pending", "processing")
    assert "validated" not in polled["challenges"][0]
    store, authz_id = Store(authority.repository.engine), path(authz_url).rsplit("/", 1)[-1]
    row = store.challenge(authz_id, challenge_id)
    assert row is not None and aware(row["validated"]) == recent  # not started again
    assert acme.post(path(challenge["url"]), {}).json["status"] == "processing"
    assert aware(store.challenge(authz_id, challenge_id)["validated"]) == recent  # type: ignore[index]

    mark_processing(now() - STUCK_AFTER - timedelta(seconds=5))
    if poke == "challenge":  # the client asks again: the challenge starts again
        again = acme.post(path(challenge["url"]), {})
        assert again.json["status"] in ("processing", "valid")
        row = store.challenge(authz_id, challenge_id)
        assert row is not None
        assert row["status"] == "valid" or aware(row["validated"]) > recent
    authz = wait_for(acme, authz_url, "valid")  # or the poll of the authz started it again
    assert authz["challenges"][0]["status"] == "valid"
    assert acme.post(path(order.headers["Location"])).json["status"] == "ready"


def test_finalize_checks_the_policy_again(
    client: falcon.testing.TestClient, authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy that changed since new-order (a reload) refuses the certificate at finalize."""
    acme = Client(client)
    acme.register()
    created = acme.post("/acme/acme/new-order", {"identifiers": [{"type": "dns", "value": NAME}]})
    order = created.json
    authz = acme.post(path(order["authorizations"][0])).json
    (challenge,) = authz["challenges"]
    Challenges.answers[challenge["token"]] = f"{challenge['token']}.{acme.thumbprint()}"
    acme.post(path(challenge["url"]), {})
    wait_for(acme, order["authorizations"][0], "valid")
    denied = PolicySchema.model_validate({"x509": {"deny": {"dns": [NAME]}}}).engine
    monkeypatch.setattr(authority.registry.by_name("acme"), "policy", denied)
    key = ec.generate_private_key(ec.SECP256R1())
    refused = acme.post(path(order["finalize"]), {"csr": csr_der(key, NAME)})
    problem(refused, "rejectedIdentifier")
    assert NAME in refused.json["detail"]
    assert acme.post(path(created.headers["Location"])).json["status"] == "ready"


def test_bad_requests_are_problems_not_errors(client: falcon.testing.TestClient) -> None:
    """Client-made oddities each get a problem document, never a 500."""
    acme = Client(client)
    acme.register()
    many = [{"type": "dns", "value": f"h{i}.{NAME}"} for i in range(101)]
    problem(acme.post("/acme/acme/new-order", {"identifiers": many}), "malformed")
    zoned = {"identifiers": [{"type": "ip", "value": "fe80::1%eth0"}]}
    problem(acme.post("/acme/acme/new-order", zoned), "rejectedIdentifier")
    for cert_id in ("²", "9" * 60):
        problem(acme.post(f"/acme/acme/certificate/{cert_id}"), "malformed", 404)
    utf16 = acme.body("https://127.0.0.1:9/acme/acme/new-order", {}).encode("utf-16")
    got = client.simulate_post("/acme/acme/new-order", body=utf16,
                               headers={"Content-Type": "application/jose+json"})  # fmt: skip
    assert got.status_code == 400 and got.json["type"] == PROBLEM + "malformed"


def test_reason_seven_is_not_a_revocation_reason(client: falcon.testing.TestClient) -> None:
    acme = Client(client)
    acme.register()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.now(UTC))
        .not_valid_after(datetime.now(UTC) + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    der = b64(cert.public_bytes(serialization.Encoding.DER))
    got = acme.post("/acme/acme/revoke-cert", {"certificate": der, "reason": 7})
    problem(got, "badRevocationReason")
