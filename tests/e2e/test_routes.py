"""Every read-only route, at `/` and under `/1.0`, over raw HTTPS to the running server."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.harness import (
    BAD_REQUEST,
    CA,
    DEFAULT_404,
    cert_fingerprint,
    error_body,
    load_chain,
)

PREFIXES = ["", "/1.0"]


def _json(resp: httpx.Response) -> object:
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    assert resp.text.endswith("\n"), "Go's JSON encoder ends bodies with a newline"
    return json.loads(resp.text)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_health(http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/health")
    assert resp.status_code == 200
    assert _json(resp) == {"status": "ok"}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_version(http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/version")
    assert resp.status_code == 200
    body = _json(resp)
    assert isinstance(body, dict) and set(body) == {"version"}
    assert isinstance(body["version"], str) and body["version"]


def _fingerprint_forms(fp: str) -> list[str]:
    return [fp, fp.upper(), "-".join(fp[i : i + 2] for i in range(0, len(fp), 2)),
            "-".join(fp[i : i + 8] for i in range(0, len(fp), 8)).upper()]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("form", range(4))
def test_root_by_fingerprint(main_ca: CA, http: httpx.Client, prefix: str, form: int) -> None:
    sha = _fingerprint_forms(main_ca.fingerprint)[form]
    resp = http.get(f"{prefix}/root/{sha}")
    assert resp.status_code == 200
    body = _json(resp)
    assert isinstance(body, dict) and set(body) == {"ca"}
    (cert,) = load_chain(body["ca"])
    assert cert == main_ca.root
    assert cert_fingerprint(cert) == main_ca.fingerprint


@pytest.mark.parametrize("prefix", PREFIXES)
def test_root_unknown_fingerprint_is_404(http: httpx.Client, prefix: str) -> None:
    zeros = "0" * 64
    resp = http.get(f"{prefix}/root/{zeros}")
    assert resp.status_code == 404
    assert _json(resp) == error_body(
        404, f'root certificate with fingerprint "{zeros}" was not found'
    )


@pytest.mark.parametrize("prefix", PREFIXES)
def test_roots(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/roots")
    assert resp.status_code == 201
    body = _json(resp)
    assert isinstance(body, dict) and set(body) == {"crts"}
    assert [c for pem in body["crts"] for c in load_chain(pem)] == [main_ca.root]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_roots_pem(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/roots.pem")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-pem-file"
    assert load_chain(resp.content) == [main_ca.root]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_intermediates(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/intermediates")
    assert resp.status_code == 201
    body = _json(resp)
    assert isinstance(body, dict) and set(body) == {"crts"}
    assert [c for pem in body["crts"] for c in load_chain(pem)] == [main_ca.intermediate]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_intermediates_pem(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/intermediates.pem")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-pem-file"
    assert load_chain(resp.content) == [main_ca.intermediate]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_federation(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/federation")
    assert resp.status_code == 201
    body = _json(resp)
    assert isinstance(body, dict) and set(body) == {"crts"}
    assert [c for pem in body["crts"] for c in load_chain(pem)] == [main_ca.root]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_provisioners(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/provisioners")
    assert resp.status_code == 200
    body = _json(resp)
    assert isinstance(body, dict) and set(body) == {"provisioners", "nextCursor"}
    assert body["nextCursor"] == ""
    configured = main_ca.config()["authority"]["provisioners"]
    assert body["provisioners"] == configured
    (prov,) = body["provisioners"]
    assert prov["type"] == "JWK" and prov["name"] == "admin"
    assert prov["key"]["kid"] and prov["encryptedKey"].count(".") == 4


@pytest.mark.parametrize("prefix", PREFIXES)
def test_provisioners_limit_one(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/provisioners", params={"limit": "1"})
    assert resp.status_code == 200
    body = _json(resp)
    assert isinstance(body, dict)
    assert body["nextCursor"] == ""
    assert [p["name"] for p in body["provisioners"]] == ["admin"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_provisioners_limit_not_an_integer(http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/provisioners", params={"limit": "abc"})
    assert resp.status_code == 400
    assert _json(resp) == error_body(400, BAD_REQUEST + "limit 'abc' is not an integer.")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_encrypted_key(main_ca: CA, http: httpx.Client, prefix: str) -> None:
    (prov,) = main_ca.config()["authority"]["provisioners"]
    resp = http.get(f"{prefix}/provisioners/{prov['key']['kid']}/encrypted-key")
    assert resp.status_code == 200
    assert _json(resp) == {"key": prov["encryptedKey"]}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_encrypted_key_unknown_kid_is_404(http: httpx.Client, prefix: str) -> None:
    resp = http.get(f"{prefix}/provisioners/x/encrypted-key")
    assert resp.status_code == 404
    assert _json(resp) == error_body(404, DEFAULT_404)


def _get_routes(ca: CA) -> list[str]:
    kid = ca.config()["authority"]["provisioners"][0]["key"]["kid"]
    return [
        "/health",
        "/version",
        f"/root/{ca.fingerprint}",
        f"/root/{'0' * 64}",
        "/roots",
        "/roots.pem",
        "/intermediates",
        "/intermediates.pem",
        "/federation",
        "/provisioners",
        "/provisioners?limit=abc",
        f"/provisioners/{kid}/encrypted-key",
        "/provisioners/x/encrypted-key",
    ]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_head_matches_get_with_empty_body(main_ca: CA, prefix: str) -> None:
    """HEAD on every GET route: GET's status, nothing after the headers on the wire."""
    for route in _get_routes(main_ca):
        path = prefix + route
        get = main_ca.raw("GET", path)
        head = main_ca.raw("HEAD", path)
        assert get.body, f"GET {path} returned no body"
        assert head.status == get.status, f"HEAD {path}: {head.status} != GET {get.status}"
        assert head.body == b"", f"HEAD {path} sent a body: {head.body[:80]!r}"
        assert head.headers.get("content-type") == get.headers.get("content-type"), path


def test_unknown_route_is_404_in_step_form(http: httpx.Client) -> None:
    resp = http.get("/1.0/no-such-route")
    assert resp.status_code == 404
    body = resp.json()
    assert set(body) == {"status", "message"} and body["status"] == 404


@pytest.mark.parametrize("value", ["1_0", " 1", "1.0", "0x10"])
def test_provisioners_limit_parsed_like_go_atoi(http: httpx.Client, value: str) -> None:
    resp = http.get("/provisioners", params={"limit": value})
    assert resp.status_code == 400
    assert _json(resp) == error_body(400, BAD_REQUEST + f"limit '{value}' is not an integer.")


@pytest.mark.parametrize("value", ["0", "-1", "1000", "+1"])
def test_provisioners_odd_but_valid_limits(http: httpx.Client, value: str) -> None:
    resp = http.get("/provisioners", params={"limit": value})
    assert resp.status_code == 200
    body = _json(resp)
    assert isinstance(body, dict)
    assert [p["name"] for p in body["provisioners"]] == ["admin"]
    assert body["nextCursor"] == ""
