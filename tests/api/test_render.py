"""api.render: request bodies are limited in size and nesting before they are parsed, and
every refusal keeps step-ca's error form."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import cast

import falcon
import falcon.testing
import pytest

from api.errors import http_error
from api.render import MAX_BODY, MAX_JSON_DEPTH, json_depth, read_json
from pki.errors import CAError

PREFIXES = ("", "/1.0")
MISSING_OTT = "The request could not be completed: missing ott."
DECODE_ERROR = "The request could not be completed: error decoding json."
TOO_LARGE = "The request could not be completed: error decoding json: request body too large."
TOO_DEEP = (
    "The request could not be completed: error decoding json: nested deeper than "
    f"{MAX_JSON_DEPTH} levels."
)


# --- JSON limits ----------------------------------------------------------------------------


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    "raw,depth",
    [
        (b"", 0),
        (b"{}", 1),
        (b'{"a":[{"b":{}}]}', 4),
        (b"[[],[[]],[]]", 3),
        (b'"[[[[["', 0),
        (b'{"a":"\\"[[[{{{"}', 1),
        (b'{"a":"\\\\","b":[[1]]}', 3),
        (b'["]]]]", [["{"]]]', 3),
        (b'{"x":"\xc3\xa9[[[["}', 1),
    ],
)
def test_json_depth_ignores_strings_and_escapes(raw: bytes, depth: int) -> None:
    assert json_depth(raw) == depth


def test_json_depth_of_a_large_body_is_cheap() -> None:
    assert json_depth(b"[" * MAX_BODY) == MAX_BODY
    assert json_depth(b"[]" * (MAX_BODY // 2)) == 1


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("route", ["/sign", "/revoke"])
def test_deeply_nested_body_is_a_400_not_a_recursion_error(
    client: falcon.testing.TestClient, prefix: str, route: str
) -> None:
    body = '{"csr":' + nested(100_000) + "}"
    resp = client.simulate_post(prefix + route, body=body,
                                headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json == {"status": 400, "message": TOO_DEEP}


def test_nesting_at_the_limit_is_parsed(client: falcon.testing.TestClient) -> None:
    data = nested(MAX_JSON_DEPTH - 2, "{}")  # the body object and the innermost {} are two
    body = '{"csr":"x","templateData":' + data + "}"
    assert json_depth(body.encode()) == MAX_JSON_DEPTH
    resp = client.simulate_post("/sign", body=body, headers={"Content-Type": "application/json"})
    assert resp.json == {"status": 400, "message": MISSING_OTT}

    deeper = '{"csr":"x","templateData":' + nested(MAX_JSON_DEPTH - 1, "{}") + "}"
    resp = client.simulate_post("/sign", body=deeper, headers={"Content-Type": "application/json"})
    assert resp.json == {"status": 400, "message": TOO_DEEP}


def test_brackets_in_strings_do_not_count(client: falcon.testing.TestClient) -> None:
    body = json.dumps({"csr": "x", "notBefore": "[" * 1000 + '\\"{' * 1000})
    resp = client.simulate_post("/sign", body=body, headers={"Content-Type": "application/json"})
    assert resp.json == {"status": 400, "message": MISSING_OTT}


def test_body_over_one_mib_is_a_400(client: falcon.testing.TestClient) -> None:
    body = b'{"csr":"' + b"a" * MAX_BODY + b'"}'
    resp = client.simulate_post("/sign", body=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json == {"status": 400, "message": TOO_LARGE}


def test_content_length_over_one_mib_is_refused_before_reading() -> None:
    stream = io.BytesIO(b"{}")
    req = SimpleNamespace(content_length=MAX_BODY + 1, bounded_stream=stream)
    with pytest.raises(CAError) as err:
        read_json(cast(falcon.Request, req))
    assert http_error(err.value) == (400, TOO_LARGE)
    assert stream.tell() == 0, "the body was read"


def test_body_longer_than_announced_is_refused() -> None:
    """Without a trustworthy Content-Length, the read itself stops at MAX_BODY + 1."""
    stream = io.BytesIO(b"[" * (MAX_BODY + 10))
    req = SimpleNamespace(content_length=None, bounded_stream=stream)
    with pytest.raises(CAError) as err:
        read_json(cast(falcon.Request, req))
    assert http_error(err.value) == (400, TOO_LARGE)
    assert stream.tell() == MAX_BODY + 1


@pytest.mark.parametrize("raw", [b"[NaN]", b"{\"a\":" + nested(MAX_JSON_DEPTH + 1).encode() + b"}"])
def test_limits_keep_step_ca_error_form(client: falcon.testing.TestClient, raw: bytes) -> None:
    resp = client.simulate_post("/1.0/sign", body=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    body = resp.json
    assert set(body) == {"status", "message"} and body["status"] == 400
    assert body["message"] in (DECODE_ERROR, TOO_DEEP)


