"""ACME device-attest-01 in-process (falcon.testing over a fresh CA): a permanent-identifier
order, its challenge answered on the POST with a `step` attestation statement made with a
test Yubico-like chain (the provisioner's attestationRoots), finalize bound to the attested
key, the attested leaf; and the refusals a client sees."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwcrypto import jwk, jws  # type: ignore[import-untyped]

from api.app import create_app
from appliance.acme.attestation import OID_PERMANENT_IDENTIFIER
from tests.acme_attest import AttestationCA, att_obj, payload
from tests.acme_ca import acme_authority

SERIAL = "12345678"
ORIGIN = "https://127.0.0.1:9"
PROBLEM = "urn:ietf:params:acme:error:"


@pytest.fixture(scope="module")
def attestation_ca() -> AttestationCA:
    return AttestationCA.make()


@pytest.fixture(scope="module")
def http(
    tmp_path_factory: pytest.TempPathFactory, attestation_ca: AttestationCA
) -> Iterator[falcon.testing.TestClient]:
    roots = base64.b64encode(attestation_ca.root_pem()).decode()
    attested = {
        "type": "ACME",
        "name": "acme-da",
        "challenges": ["device-attest-01"],
        "attestationFormats": ["step"],
        "attestationRoots": roots,
    }
    plain = {"type": "ACME", "name": "acme", "challenges": ["http-01"]}
    with acme_authority(tmp_path_factory.mktemp("acme-da") / "step", attested, plain) as ca:
        yield falcon.testing.TestClient(create_app(ca))


class Client:
    """An ACME account at one provisioner; the test drives each request."""

    def __init__(self, http: falcon.testing.TestClient, provisioner: str = "acme-da") -> None:
        self.http = http
        self.prefix = f"/acme/{provisioner}"
        self.key = jwk.JWK.generate(kty="EC", crv="P-256")
        self.kid: str | None = None
        resp = self.post("/new-account", {"termsOfServiceAgreed": True})
        assert resp.status_code == 201, resp.text
        self.kid = resp.headers["Location"]

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.key.thumbprint()}"

    def post(self, path: str, body: Any = None) -> falcon.testing.Result:
        """POST to PREFIX+path (or a full URL of this CA); None is POST-as-GET."""
        path = path.removeprefix(ORIGIN) if path.startswith(ORIGIN) else self.prefix + path
        nonce = self.http.simulate_head(f"{self.prefix}/new-nonce").headers["Replay-Nonce"]
        protected: dict[str, Any] = {"alg": "ES256", "nonce": nonce, "url": ORIGIN + path}
        if self.kid:
            protected["kid"] = self.kid
        else:
            protected["jwk"] = json.loads(self.key.export_public())
        token = jws.JWS(b"" if body is None else json.dumps(body).encode())
        token.add_signature(self.key, None, json.dumps(protected))
        return self.http.simulate_post(
            path,
            body=token.serialize(),
            headers={"Content-Type": "application/jose+json"},
        )

    def order(self, serial: str = SERIAL) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(order URL, order, its device-attest-01 challenge)."""
        resp = self.post("/new-order", {"identifiers": [{"type": "permanent-identifier",
                                                         "value": serial}]})  # fmt: skip
        assert resp.status_code == 201, resp.text
        order = resp.json
        authz = self.post(order["authorizations"][0]).json
        assert authz["identifier"] == {"type": "permanent-identifier", "value": serial}
        assert [c["type"] for c in authz["challenges"]] == ["device-attest-01"]
        return resp.headers["Location"], order, authz["challenges"][0]


def _csr(key: ec.EllipticCurvePrivateKey, cn: str = SERIAL) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return base64.urlsafe_b64encode(csr.public_bytes(Encoding.DER)).rstrip(b"=").decode()


def test_a_yubikey_attested_order(
    http: falcon.testing.TestClient, attestation_ca: AttestationCA
) -> None:
    client = Client(http)
    order_url, order, challenge = client.order()
    assert challenge["status"] == "pending"
    # POST-as-GET only reads the challenge; the attestation comes in the POST's payload
    assert client.post(challenge["url"]).json["status"] == "pending"
    key = ec.generate_private_key(ec.SECP256R1())
    chain = [attestation_ca.attest(key, int(SERIAL)), attestation_ca.f9]
    body = payload(att_obj(key, chain, client.key_authorization(challenge["token"])))
    resp = client.post(challenge["url"], body)
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "valid" and "validated" in resp.json
    assert client.post(order_url).json["status"] == "ready"

    # another key than the attested one: refused, the order stays ready
    stranger = ec.generate_private_key(ec.SECP256R1())
    resp = client.post(order["finalize"], {"csr": _csr(stranger)})
    assert resp.status_code == 401
    assert resp.json["type"] == PROBLEM + "unauthorized"
    assert resp.json["detail"].endswith("csr does not match the attested key")
    resp = client.post(order["finalize"], {"csr": _csr(key, "other.test")})
    assert (resp.status_code, resp.json["type"]) == (400, PROBLEM + "badCSR")

    resp = client.post(order["finalize"], {"csr": _csr(key)})
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "valid"
    pem = client.post(resp.json["certificate"]).text
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    assert leaf.subject.rfc4514_string() == f"CN={SERIAL}"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (other_name,) = sans.get_values_for_type(x509.OtherName)
    assert other_name.type_id == OID_PERMANENT_IDENTIFIER
    assert other_name.value == b"\x30\x0a\x0c\x08" + SERIAL.encode()
    assert list(sans) == [other_name]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert leaf.public_key() == key.public_key()


def test_a_failed_attestation_invalidates_the_order(
    http: falcon.testing.TestClient, attestation_ca: AttestationCA
) -> None:
    client = Client(http)
    order_url, _, challenge = client.order("87654321")
    key = ec.generate_private_key(ec.SECP256R1())
    chain = [attestation_ca.attest(key, int(SERIAL)), attestation_ca.f9]
    body = payload(att_obj(key, chain, client.key_authorization(challenge["token"])))
    resp = client.post(challenge["url"], body)
    assert resp.status_code == 200, resp.text
    assert resp.json["status"] == "invalid"
    error = resp.json["error"]
    assert error["type"] == PROBLEM + "badAttestationStatement"
    assert error["subproblems"][0]["identifier"]["value"] == "87654321"
    assert client.post(order_url).json["status"] == "invalid"
    # a second answer changes nothing
    assert client.post(challenge["url"], body).json["status"] == "invalid"


def test_an_empty_attestation_and_another_format(
    http: falcon.testing.TestClient, attestation_ca: AttestationCA
) -> None:
    client = Client(http)
    _, _, challenge = client.order()
    resp = client.post(challenge["url"], {})
    assert resp.json["status"] == "invalid"
    assert resp.json["error"]["detail"].endswith("attObj must not be empty")
    client = Client(http)
    _, _, challenge = client.order()
    key = ec.generate_private_key(ec.SECP256R1())
    chain = [attestation_ca.attest(key, int(SERIAL)), attestation_ca.f9]
    token = client.key_authorization(challenge["token"])
    resp = client.post(challenge["url"], payload(att_obj(key, chain, token, fmt="apple")))
    assert resp.json["error"]["detail"].endswith('attestation format "apple" is not enabled')


def test_new_order_refusals(http: falcon.testing.TestClient) -> None:
    client = Client(http, "acme")
    resp = client.post("/new-order", {"identifiers": [{"type": "permanent-identifier",
                                                       "value": SERIAL}]})  # fmt: skip
    assert resp.status_code == 400
    assert resp.json["detail"] == (
        "'12345678' needs device-attest-01, which this provisioner does not offer"
    )
    client = Client(http)
    resp = client.post("/new-order", {"identifiers": [{"type": "permanent-identifier",
                                                       "value": ""}]})  # fmt: skip
    assert resp.json["detail"] == "permanent identifier cannot be empty"
