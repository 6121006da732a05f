"""The falcon app in-process (no gunicorn, no TLS): routing, HEAD, error rendering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import falcon
import falcon.testing
import pytest

from api.app import create_app
from api.errors import DEFAULT_MESSAGES
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.pki import InitRequest, init_pki

INTERNAL = DEFAULT_MESSAGES[500]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[falcon.testing.TestClient]:
    base = tmp_path_factory.mktemp("api") / "step"
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        init_pki(InitRequest(base, "Api", ["127.0.0.1", "localhost"], "127.0.0.1:9",
                             "admin", b"ca-pw", b"prov-pw"))
        authority = Authority.open(CAConfig.load(base / "config" / "ca.json"), password=b"ca-pw")
        yield falcon.testing.TestClient(create_app(authority))
    finally:
        mp.undo()


GET_ROUTES = ["/health", "/version", "/roots", "/roots.pem", "/intermediates",
              "/intermediates.pem", "/federation", "/provisioners", f"/root/{'0' * 64}",
              "/provisioners/x/encrypted-key", "/provisioners?limit=abc"]


@pytest.mark.parametrize("prefix", ["", "/1.0"])
@pytest.mark.parametrize("route", GET_ROUTES)
def test_head_like_get_without_body(
    client: falcon.testing.TestClient, prefix: str, route: str
) -> None:
    path, _, query = (prefix + route).partition("?")
    get = client.simulate_get(path, query_string=query)
    head = client.simulate_head(path, query_string=query)
    assert head.status_code == get.status_code
    assert head.content == b""
    assert get.content != b""


def test_json_bodies_end_with_newline(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/health")
    assert resp.headers["content-type"] == "application/json"
    assert resp.text == '{"status":"ok"}\n'


def test_unknown_route(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_get("/1.0/nothing-here")
    assert resp.status_code == 404
    assert resp.json == {"status": 404, "message": DEFAULT_MESSAGES[404]}


@pytest.mark.parametrize(
    "method,path,allowed",
    [("POST", "/health", "GET"), ("GET", "/1.0/sign", "POST"), ("DELETE", "/roots", "GET"),
     ("OPTIONS", "/health", "GET"), ("OPTIONS", "/1.0/sign", "POST")],
)
def test_wrong_method_is_405_not_an_internal_error(
    client: falcon.testing.TestClient, method: str, path: str, allowed: str
) -> None:
    resp = client.simulate_request(method, path)
    assert resp.status_code == 405
    body = json.loads(resp.text)
    assert set(body) == {"status", "message"}
    assert body["status"] == 405
    assert body["message"] != INTERNAL, "a 405 must not claim an Internal Server Error"
    assert allowed in resp.headers["allow"]


@pytest.mark.parametrize(
    "raw", [b"{", b"[]", b"1", b"null", b"", b"\xff\xfe"], ids=["cut", "array", "number",
                                                              "null", "empty", "not-utf8"]
)
def test_sign_body_must_be_a_json_object(client: falcon.testing.TestClient, raw: bytes) -> None:
    resp = client.simulate_post("/1.0/sign", body=raw,
                                headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json == {"status": 400,
                         "message": "The request could not be completed: error decoding json."}


def test_sign_missing_fields_order(client: falcon.testing.TestClient) -> None:
    resp = client.simulate_post("/sign", json={})
    assert resp.json == {"status": 400,
                         "message": "The request could not be completed: missing csr."}


def test_ca_json_paths_are_absolute(tmp_path: Path) -> None:
    """init writes absolute paths, so the CA does not depend on the server's cwd."""
    base = tmp_path / "step"
    init_pki(InitRequest(base, "Abs", ["127.0.0.1"], "127.0.0.1:9", "a", b"pw", b"pw"))
    cfg = json.loads((base / "config" / "ca.json").read_text())
    for key in ("root", "crt", "key"):
        assert Path(cfg[key]).is_absolute(), key
