"""`POST /sign` in process: the body step-ca sends, with the CA certificates rendered once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon.testing
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from api.app import create_app
from api.sign import chain_json
from appliance.authority import Authority, SignResult, pem
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki
from appliance.profiles import build_root
from tests.appliance.conftest import TokenMaker, make_csr

PASSWORD, PROV_PASSWORD = b"ca-pw", b"prov-pw"


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    base = tmp_path_factory.mktemp("sign") / "step"
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        init_pki(
            InitRequest(base, "Sign", ["ca.test"], "127.0.0.1:9", "admin", PASSWORD, PROV_PASSWORD)
        )
        auth = Authority.open(CAConfig.load(base / "config" / "ca.json"), password=PASSWORD)
        auth.start_time -= 5  # tokens made right after start must not look older than the CA
        yield auth
        auth.repository.engine.dispose()
    finally:
        mp.undo()


def _expected(chain: list[x509.Certificate], tls: dict[str, Any]) -> str:
    pems = [pem(c) for c in chain]
    body = {
        "crt": pems[0],
        "ca": pems[1] if len(pems) > 1 else "",
        "certChain": pems,
        "tlsOptions": tls,
    }
    return json.dumps(body, separators=(",", ":"))


def _cert(name: str) -> x509.Certificate:
    return build_root(name, ec.generate_private_key(ec.SECP256R1()), datetime.now(UTC))


@pytest.mark.parametrize("length", [1, 2, 3])
def test_chain_json_is_the_dict_step_ca_sends(length: int) -> None:
    chain = [_cert(f"c{i}") for i in range(length)]
    tls = {"cipherSuites": ["A", "B"], "minVersion": 1.2, "maxVersion": 1.3, "renegotiation": False}
    for leaf in (chain[0], _cert("another leaf")):  # the CA part is reused, the leaf is not
        result = SignResult(leaf, [leaf, *chain[1:]], "p")
        tls_json = json.dumps(tls, separators=(",", ":"))
        assert chain_json(result, tls_json) == _expected([leaf, *chain[1:]], tls)


def test_sign_answers_201_with_the_chain(authority: Authority) -> None:
    client = falcon.testing.TestClient(create_app(authority))
    tokens = TokenMaker(authority, PROV_PASSWORD)
    for _ in range(2):
        resp = client.simulate_post(
            "/1.0/sign", json={"csr": make_csr("foo.test", ["foo.test"]), "ott": tokens()}
        )
        assert resp.status_code == 201, resp.text
        assert resp.text.endswith("}\n")
        body = resp.json
        leaf = x509.load_pem_x509_certificate(body["crt"].encode())
        assert body["certChain"] == [body["crt"], *(pem(c) for c in authority.intermediates)]
        assert body["ca"] == pem(authority.intermediates[0])
        assert body["tlsOptions"] == authority.config.tls_options()
        assert leaf.subject.rfc4514_string() == "CN=foo.test"
        assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(
            hours=24, minutes=1
        )
