"""The request log in-process (falcon's test client, no gunicorn): one line per request with its
id, route, status, duration and provisioner (subject and serial for issuance, serial for
revocation); client input never starts a line of its own."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest
from cryptography import x509

from api.app import create_app
from appliance.authority import Authority
from appliance.config import CAConfig
from appliance.logs import REQUEST_ID, configure
from appliance.pki import InitRequest, init_pki
from tests.appliance.conftest import TokenMaker, make_csr
from tests.logging_state import root_logging_restored

CA_PASSWORD = b"ca-pw"
PROV_PASSWORD = b"prov-pw"
FORGED = "/root/abc\n2020-01-01 FORGED-LINE"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    base = tmp_path_factory.mktemp("mw") / "step"
    mp = pytest.MonkeyPatch()
    mp.setenv("STEPPATH", str(base))
    try:
        init_pki(InitRequest(base, "Mw", ["ca.test", "127.0.0.1"], "127.0.0.1:9000",
                             "admin", CA_PASSWORD, PROV_PASSWORD))
        config = CAConfig.load(Path(base) / "config" / "ca.json")
        auth = Authority.open(config, password=CA_PASSWORD)
        auth.start_time -= 5  # tokens made right away must not look older than the CA
        yield auth
        auth.repository.engine.dispose()
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def client(authority: Authority) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(authority))


@pytest.fixture(scope="module")
def token(authority: Authority) -> TokenMaker:
    return TokenMaker(authority, PROV_PASSWORD)


class Captured:
    """What the process would write to stderr, configured like `step-ca` configures it."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def use(self, fmt: str = "json", quiet: bool = False) -> None:
        self.stream.seek(0)
        self.stream.truncate()
        configure(fmt, quiet, self.stream)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def request_lines(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["logger"] == "stepstone.request"]


@pytest.fixture
def logs() -> Iterator[Captured]:
    with root_logging_restored():
        captured = Captured()
        captured.use()
        yield captured


def test_request_id_is_generated_and_echoed(
    client: falcon.testing.TestClient, logs: Captured
) -> None:
    first = client.simulate_get("/health")
    second = client.simulate_get("/health")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]
    assert [r["request_id"] for r in logs.request_lines()] == ids
    assert REQUEST_ID.get() is None  # nothing left behind for the thread's next request


def test_client_request_id_is_kept(client: falcon.testing.TestClient, logs: Captured) -> None:
    given = "lb-7f3a.2024:01/ab+c=@_-"
    resp = client.simulate_get("/roots", headers={"X-Request-Id": given})
    assert resp.headers["x-request-id"] == given
    [line] = logs.request_lines()
    assert line["request_id"] == given


@pytest.mark.parametrize("given", ["x" * 129, "a b", "a\tb", "<script>", "é", '"q"'])
def test_insane_request_id_is_replaced(
    client: falcon.testing.TestClient, logs: Captured, given: str
) -> None:
    resp = client.simulate_get("/health", headers={"X-Request-Id": given})
    rid = resp.headers["x-request-id"]
    assert rid != given and re.fullmatch(r"[0-9a-f]{32}", rid)
    assert logs.request_lines()[0]["request_id"] == rid


def test_sign_line_has_every_field(
    client: falcon.testing.TestClient, logs: Captured, token: TokenMaker
) -> None:
    body = {"csr": make_csr("web.test", ["web.test"]), "ott": token("web.test")}
    resp = client.simulate_post("/1.0/sign", json=body, headers={"X-Request-Id": "sign-1"})
    assert resp.status_code == 201, resp.text
    cert = x509.load_pem_x509_certificate(resp.json["crt"].encode())
    [line] = logs.request_lines()
    assert line["msg"] == "request" and line["level"] == "info"
    assert {k: line[k] for k in ("request_id", "method", "path", "route", "status")} == {
        "request_id": "sign-1",
        "method": "POST",
        "path": "/1.0/sign",
        "route": "/1.0/sign",
        "status": 201,
    }
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["provisioner"] == "admin"
    assert line["subject"] == "web.test"
    assert line["serial"] == str(cert.serial_number)
    assert ott_free(logs, body["ott"])


def ott_free(logs: Captured, ott: str) -> bool:
    text = logs.stream.getvalue()
    return ott not in text and ott.split(".")[1] not in text and "eyJ" not in text


def test_refused_sign_is_one_request_line_and_errors_carry_its_id(
    client: falcon.testing.TestClient, logs: Captured, token: TokenMaker
) -> None:
    ott = token("web.test", aud="https://elsewhere.test/1.0/sign")
    body = {"csr": make_csr("web.test", ["web.test"]), "ott": ott}
    resp = client.simulate_post("/sign", json=body)
    assert resp.status_code == 401
    rid = resp.headers["x-request-id"]
    records = logs.records()
    [line] = [r for r in records if r["logger"] == "stepstone.request"]
    assert line["status"] == 401 and line["route"] == "/sign" and line["provisioner"] is None
    assert "subject" not in line and "serial" not in line
    assert all(r["request_id"] == rid for r in records)  # the API's own error line too
    assert ott_free(logs, ott)


def test_revoke_line_has_serial_and_provisioner(
    client: falcon.testing.TestClient, logs: Captured, token: TokenMaker
) -> None:
    body = {"csr": make_csr("gone.test", ["gone.test"]), "ott": token("gone.test")}
    crt = client.simulate_post("/1.0/sign", json=body).json["crt"]
    serial = x509.load_pem_x509_certificate(crt.encode()).serial_number
    logs.use()
    ott = token(str(serial), aud="https://ca.test/1.0/revoke", sans=None)
    resp = client.simulate_post(
        "/1.0/revoke", json={"serial": str(serial), "ott": ott, "passive": True}
    )
    assert resp.status_code == 200, resp.text
    [line] = logs.request_lines()
    assert line["route"] == "/1.0/revoke" and line["status"] == 200
    assert line["serial"] == str(serial) and line["provisioner"] == "admin"
    assert "subject" not in line
    assert ott_free(logs, ott)


@pytest.mark.parametrize(
    "path,route",
    [
        (f"/root/{'0' * 64}", "/root/{sha}"),
        (f"/1.0/root/{'0' * 64}", "/1.0/root/{sha}"),
        ("/provisioners/abc/encrypted-key", "/provisioners/{kid}/encrypted-key"),
        ("/nowhere", None),
        ("/ocsp/MEIwQDA-", "/ocsp/{request}"),
        ("/1.0/ocsp/MEIwQDA-", "/1.0/ocsp/{request}"),
    ],
)
def test_route_is_the_template(
    client: falcon.testing.TestClient, logs: Captured, path: str, route: str | None
) -> None:
    resp = client.simulate_get(path)
    [line] = logs.request_lines()
    assert (line["path"], line["route"], line["status"]) == (path, route, resp.status_code)


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("path", [FORGED, "/root/abc\x00def", "/root/\r\x1b[2J\u2028x"])
def test_client_input_cannot_start_a_line(
    client: falcon.testing.TestClient, logs: Captured, fmt: str, path: str
) -> None:
    logs.use(fmt)
    resp = client.simulate_get(path)
    assert resp.status_code == 404
    lines = logs.lines()
    # the request line and the API's "root not found": one line each, nothing else
    assert len(lines) == 2, lines
    assert all(TIMESTAMP.match(line) or line.startswith("{") for line in lines)
    if fmt == "json":
        assert [json.loads(line)["path"] for line in lines if "stepstone.request" in line] == [path]
    else:
        assert all(TIMESTAMP.match(line) for line in lines)
        assert not any(c in "".join(lines) for c in "\x00\r\x1b\u2028")
        assert sum("stepstone.request:" in line for line in lines) == 1


def test_text_request_line(client: falcon.testing.TestClient, logs: Captured) -> None:
    logs.use("text")
    client.simulate_get("/health", headers={"X-Request-Id": "t-1"})
    [line] = logs.lines()
    assert TIMESTAMP.match(line)
    assert " INFO stepstone.request: request request_id=t-1 method=GET path=/health " in line
    assert " route=/health status=200 duration_ms=" in line and line.endswith("provisioner=-")


def test_request_refused_before_the_middleware_ran_is_logged(
    client: falcon.testing.TestClient, logs: Captured
) -> None:
    resp = client.simulate_request("WEBSOCKET", "/health")  # falcon refuses it before middleware
    assert resp.status_code == 400
    [line] = logs.request_lines()
    assert line["request_id"] == resp.headers["x-request-id"]
    assert line["status"] == 400 and line["duration_ms"] is None


def test_quiet_logs_no_request_lines(client: falcon.testing.TestClient, logs: Captured) -> None:
    logs.use("json", quiet=True)
    assert client.simulate_get("/health").headers["x-request-id"]
    client.simulate_get(FORGED)
    assert logs.lines() == []
