"""api/openapi.json and the falcon app agree; the document is served; JSON bodies are bounded.

In-process (falcon.testing, no gunicorn): the routes are read from the app itself with
falcon.inspect, so a route added without documenting it (or documented and never added) fails
here. The real appliance is fuzzed against the same document in tests/e2e/test_fuzz_api.py.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import falcon
import falcon.inspect
import falcon.testing
import pytest
import schemathesis

from api.render import read_json

DOCUMENT = Path(__file__).resolve().parents[2] / "api" / "openapi.json"
HTTP_METHODS = {"get", "head", "post", "put", "patch", "delete", "options", "trace"}
PREFIXES = ("", "/1.0")
#: ACME's own prefixes: not under /1.0 (as step-ca), errors as RFC 8555 problem documents.
ACME = ("/acme/", "/2.0/acme/")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DOCUMENT.read_text()))


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def served_routes(app: falcon.App[Any, Any]) -> set[tuple[str, str]]:
    """Every (route template, method) with a responder of ours; falcon's own defaults (the
    405 responders and OPTIONS) are `internal` and left out."""
    return {
        (route.path, method.method)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal
    }


# --- the document and the routes ----------------------------------------------------------


def test_document_is_valid_openapi_31(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document).validate()


def test_every_route_and_method_is_documented(
    app: falcon.App[Any, Any], document: dict[str, Any]
) -> None:
    missing = served_routes(app) - documented(document)
    assert not missing, f"served but not in api/openapi.json: {sorted(missing)}"


def test_every_documented_operation_is_served(
    app: falcon.App[Any, Any], document: dict[str, Any]
) -> None:
    routes = served_routes(app)
    sinks = [re.compile(s.prefix) for s in falcon.inspect.inspect_sinks(app)]
    assert sinks, "the OCSP GET sink is gone"
    for path, method in sorted(documented(document) - routes):
        # Not a route: a sink must take it (with its path parameter filled in) ...
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        assert any(s.match(concrete) for s in sinks), f"documented, not served: {method} {path}"
        # ... and answer the method with something other than a 404 or a 405.
        client = falcon.testing.TestClient(app)
        resp = client.simulate_request(method, concrete)
        assert resp.status_code not in (404, 405), (method, path, resp.status_code)


def test_sinks_are_documented(app: falcon.App[Any, Any], document: dict[str, Any]) -> None:
    for sink in falcon.inspect.inspect_sinks(app):
        pattern = re.compile(sink.prefix)
        covered = [p for p in document["paths"] if pattern.match(re.sub(r"\{[^}]+\}", "x", p))]
        assert {p.startswith("/1.0/") for p in covered} == {True, False}, sink.prefix


def test_every_path_is_documented_at_root_and_under_1_0(document: dict[str, Any]) -> None:
    paths = document["paths"]
    roots = {p for p in paths if not p.startswith(("/1.0/", *ACME))}
    assert {"/1.0" + p for p in roots} == {p for p in paths if p.startswith("/1.0/")}
    for path in roots:
        for method, op in paths[path].items():
            versioned = dict(paths["/1.0" + path][method])
            assert versioned.pop("operationId") == op["operationId"] + "V1"
            assert versioned == {k: v for k, v in op.items() if k != "operationId"}, path


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_operation_has_a_success_and_errors_in_step_ca_form(
    document: dict[str, Any],
) -> None:
    error = {"$ref": "#/components/schemas/Error"}
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ACMEProblem"}}}
    for path, item in document["paths"].items():
        for method, op in item.items():
            statuses = {int(s) for s in op["responses"]}
            assert any(200 <= s < 300 for s in statuses), (method, path)
            assert "default" not in op["responses"], "every status is listed"
            for status, response in op["responses"].items():
                content = _resolve(document, response).get("content", {})
                assert content, (method, path, status)
                if int(status) >= 400 and path.startswith(ACME):
                    assert content == problem, (path, status)
                elif int(status) >= 400:
                    assert content == {"application/json": {"schema": error}}, (path, status)
                else:
                    assert error not in [c.get("schema") for c in content.values()]


def test_no_route_is_documented_with_a_500_but_step_cas_renew_quirk(
    document: dict[str, Any],
) -> None:
    """A 500 is a bug, except the one step-ca gives for a renewal token with a wrong audience."""
    for path, item in document["paths"].items():
        for method, op in item.items():
            if (method, path.removeprefix("/1.0")) in (("post", "/renew"), ("post", "/re-sign")):
                assert op["responses"]["500"] == {
                    "$ref": "#/components/responses/RenewAudience500"
                }
            else:
                assert "500" not in op["responses"], (method, path)


# --- serving it ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_document_is_served(client: falcon.testing.TestClient, prefix: str) -> None:
    resp = client.simulate_get(f"{prefix}/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.content == DOCUMENT.read_bytes()
    head = client.simulate_head(f"{prefix}/openapi.json")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == "application/json"


# --- what the fuzzer found (tests/e2e/test_fuzz_api.py) -------------------------------------


@pytest.mark.parametrize(
    "limit", ["9223372036854775808", "-9223372036854775809", "9" * 5000, "1" + "0" * 19]
)
def test_provisioners_limit_beyond_int64_is_a_400(
    client: falcon.testing.TestClient, limit: str
) -> None:
    """Go's strconv.Atoi refuses what does not fit in an int64; 5000 digits were a 500."""
    resp = client.simulate_get("/provisioners", query_string=f"limit={limit}")
    assert resp.status_code == 400
    assert resp.json == {
        "status": 400,
        "message": f"The request could not be completed: limit '{limit}' is not an integer.",
    }


@pytest.mark.parametrize("limit", ["9223372036854775807", "-9223372036854775808", "%2B0005", ""])
def test_provisioners_limit_within_int64_is_accepted(
    client: falcon.testing.TestClient, limit: str
) -> None:
    resp = client.simulate_get("/provisioners", query_string=f"limit={limit}")
    assert resp.status_code == 200


def test_lone_surrogates_become_replacement_characters(
    client: falcon.testing.TestClient,
) -> None:
    """Go's decoder makes them U+FFFD; kept, they reached the database (a 500 on /revoke)."""
    stream = io.BytesIO(b'{"reason":"\\ud800x","\\udfff":["\\ud83d\\ude00"]}')
    req = SimpleNamespace(content_length=len(stream.getvalue()), bounded_stream=stream)
    assert read_json(cast(falcon.Request, req)) == {"reason": "\ufffdx", "\ufffd": ["\U0001f600"]}
