"""ACME challenges beyond http-01, in-process: what each authorization offers (a wildcard only
dns-01, named by its base domain with `wildcard: true`; an IP never dns-01), the `up` link
as step-ca writes it, and a wildcard order through dns-01 against the test DNS server on
127.0.0.1 (the CA's resolver, as `step-ca --resolver` sets it)."""

from __future__ import annotations

from collections.abc import Iterator

import falcon.testing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from api.app import create_app
from appliance.acme import dns01, validation
from tests.acme_ca import acme_authority
from tests.acme_dns import DNSServer
from tests.api.test_acme import Client, csr_der, path, wait_for

BASE_NAME = "w.acme.test"
WILD = "*." + BASE_NAME


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, dns_server: DNSServer
) -> Iterator[falcon.testing.TestClient]:
    base = tmp_path_factory.mktemp("acme-challenges") / "step"
    before = validation.settings()
    validation.configure(validation.Settings(("127.0.0.1", dns_server.port)))
    try:
        with acme_authority(base, {"type": "ACME", "name": "acme"}) as authority:
            yield falcon.testing.TestClient(create_app(authority))
    finally:
        validation.configure(before)


def test_each_authorization_offers_what_step_ca_offers(client: falcon.testing.TestClient) -> None:
    acme = Client(client)
    acme.register()
    idents = [
        {"type": "dns", "value": WILD},
        {"type": "dns", "value": BASE_NAME},
        {"type": "ip", "value": "127.0.0.1"},
    ]
    order = acme.post("/acme/acme/new-order", {"identifiers": idents})
    assert order.status_code == 201, order.text
    assert order.json["identifiers"] == idents
    authzs = [acme.post(path(url)).json for url in order.json["authorizations"]]
    offered = [
        (a["identifier"], a.get("wildcard", False), sorted(c["type"] for c in a["challenges"]))
        for a in authzs
    ]
    assert offered == [
        ({"type": "dns", "value": BASE_NAME}, True, ["dns-01"]),
        ({"type": "dns", "value": BASE_NAME}, False, ["dns-01", "http-01", "tls-alpn-01"]),
        ({"type": "ip", "value": "127.0.0.1"}, False, ["http-01", "tls-alpn-01"]),
    ]


def test_a_wildcard_order_through_dns01(
    client: falcon.testing.TestClient, dns_server: DNSServer
) -> None:
    acme = Client(client)
    acme.register()
    idents = [{"type": "dns", "value": WILD}, {"type": "dns", "value": BASE_NAME}]
    order = acme.post("/acme/acme/new-order", {"identifiers": idents}).json
    record = "_acme-challenge." + BASE_NAME
    challenges = []
    for url in order["authorizations"]:
        authz = acme.post(path(url)).json
        (challenge,) = [c for c in authz["challenges"] if c["type"] == "dns-01"]
        challenges.append(challenge)
    # both authorizations publish at the same name, as certbot does
    values = [dns01.txt_value(f"{c['token']}.{acme.thumbprint()}") for c in challenges]
    dns_server.set_txt(record, *values)
    for url, challenge in zip(order["authorizations"], challenges, strict=True):
        started = acme.post(path(challenge["url"]), {})
        assert started.status_code == 200, started.text
        assert started.headers["Link"].endswith(f'<{url}>;rel="up"')  # lego needs the quotes
        wait_for(acme, url, "valid")
    assert dns_server.asked(record, "TXT")
    key = ec.generate_private_key(ec.SECP256R1())
    done = acme.post(path(order["finalize"]), {"csr": csr_der(key, WILD, BASE_NAME)})
    assert done.status_code == 200, done.text
    chain = acme.post(path(done.json["certificate"]))
    leaf = x509.load_pem_x509_certificates(chain.text.encode())[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == [WILD, BASE_NAME]


def test_a_wrong_txt_value_invalidates_the_order(
    client: falcon.testing.TestClient, dns_server: DNSServer
) -> None:
    acme = Client(client)
    acme.register()
    order = acme.post("/acme/acme/new-order", {"identifiers": [{"type": "dns", "value": WILD}]})
    url = order.json["authorizations"][0]
    (challenge,) = acme.post(path(url)).json["challenges"]
    dns_server.set_txt("_acme-challenge." + BASE_NAME, "not-the-digest")
    acme.post(path(challenge["url"]), {})
    authz = wait_for(acme, url, "invalid")
    error = authz["challenges"][0]["error"]
    assert error["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    assert "not-the-digest" in error["detail"]
    assert acme.post(path(order.headers["Location"])).json["status"] == "invalid"
