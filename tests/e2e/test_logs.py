"""What `step-ca` writes to its log, read from the real server's output: one format for the
appliance and gunicorn (JSON lines, or `--log-format text`), a request id echoed to the client,
client input that cannot forge a line, `--quiet`, and no secret ever written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    CA,
    CA_PASSWORD,
    HOST,
    PROVISIONER,
    PROVISIONER_PASSWORD,
    STEP_CA,
    CAFactory,
    clean_env,
    csr_pem,
    ec_key,
    free_port,
    load_chain,
    make_csr,
    run_step,
)
from tests.e2e.tokens import TokenMaker

FORGED = "/root/abc%0a2020-01-01 FORGED-LINE"
FORGED_PATH = "/root/abc\n2020-01-01 FORGED-LINE"
NUL = "/root/abc%00def"
TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
)
GUNICORN_START = ("Starting gunicorn", "Listening at", "Booting worker")
PIN = "pin-5e1f9a3c7d"


@pytest.fixture(scope="module")
def log_ca(ca_factory: CAFactory) -> CA:
    """A CA of its own, started by each test with the flags it tests."""
    return ca_factory("logs", start=False)


@pytest.fixture
def running(log_ca: CA) -> Iterator[CA]:
    """log_ca after the test started it; stopped (its log complete) whatever happens."""
    try:
        yield log_ca
    finally:
        log_ca.stop()


def server_log(ca: CA) -> str:
    """The whole output of the server's last run (stop it first: the log is then complete)."""
    assert ca.proc is None, "stop the server first"
    return ca.log_path.read_text(errors="replace")


def json_records(text: str) -> list[dict[str, Any]]:
    """Every line as JSON: a line that is not one object fails the test."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(
                f"not a JSON line (is gunicorn's logger_class api.server.GunicornLogger?): "
                f"{line!r}"
            ) from None
        assert isinstance(record, dict) and {"time", "level", "logger", "msg"} <= set(record)
        records.append(record)
    return records


def request_lines(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["logger"] == "stepstone.request"]


def _step(ca: CA, work: Path) -> Any:
    """`step` bound to a client STEPPATH bootstrapped against `ca`, run in `work`."""
    steppath = work / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], steppath)

    def step(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_step(list(args), steppath, cwd=work, check=check)

    return step


def test_json_lines_for_everything_with_request_ids(running: CA) -> None:
    ca = running
    ca.start()
    with ca.http() as http:
        given = http.get("/health", headers={"X-Request-Id": "edge-42.a"})
        made = http.get("/roots")
        forged = http.get(FORGED)
        nul = http.get(NUL)
    assert given.headers["x-request-id"] == "edge-42.a"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert forged.status_code == nul.status_code == 404
    ca.stop()
    text = server_log(ca)
    records = json_records(text)  # every line, gunicorn's included, is one JSON object
    gunicorn = [r["msg"] for r in records if r["logger"] == "gunicorn.error"]
    for start in GUNICORN_START:
        assert any(m.startswith(start) for m in gunicorn), gunicorn
    assert not [r for r in records if r["logger"].startswith("alembic")]
    lines = request_lines(records)
    by_id = {r["request_id"]: r for r in lines}
    assert by_id["edge-42.a"]["route"] == "/health"
    assert by_id[made.headers["x-request-id"]]["route"] == "/roots"
    assert [r["path"] for r in lines if r["path"].startswith("/root/")] == [
        FORGED_PATH,
        "/root/abc\x00def",
    ]
    assert not any(line.startswith("2020-01-01") for line in text.splitlines())
    assert "\x00" not in text
    forged_id = forged.headers["x-request-id"]
    assert len([r for r in records if r.get("request_id") == forged_id]) == 2  # line + reason


def test_text_format_is_one_escaped_line_per_record(running: CA) -> None:
    ca = running
    ca.start("--log-format", "text")
    with ca.http() as http:
        assert http.get(FORGED).status_code == 404
        assert http.get(NUL).status_code == 404
        resp = http.get("/health", headers={"X-Request-Id": "t-1"})
        assert resp.headers["x-request-id"] == "t-1"
    ca.stop()
    lines = server_log(ca).splitlines()
    assert all(TIMESTAMP.match(line) for line in lines), lines
    assert any(" INFO gunicorn.error: Starting gunicorn " in line for line in lines)
    requests = [line for line in lines if " stepstone.request: " in line]
    assert sum('path="/root/abc\\n2020-01-01 FORGED-LINE"' in line for line in requests) == 1
    assert sum("path=/root/abc\\x00def" in line for line in requests) == 1
    assert any("request_id=t-1 method=GET path=/health route=/health status=200" in line
               for line in requests)


def test_quiet_means_warnings_and_errors_only(running: CA) -> None:
    ca = running
    ca.start("--quiet")
    with ca.http() as http:
        assert http.get("/health").status_code == 200
        assert http.get(FORGED).status_code == 404
    original = ca.ca_json.read_text()
    try:
        ca.ca_json.write_text("{not json")
        os.kill(ca.pid, signal.SIGHUP)  # a bad reload is an ERROR: the one line we expect
        deadline = time.monotonic() + 20
        while "keeping the running configuration" not in ca.log_path.read_text():
            assert time.monotonic() < deadline, ca.log_tail()
            time.sleep(0.1)
    finally:
        ca.ca_json.write_text(original)
    ca.stop()
    records = json_records(server_log(ca))
    assert records, "the failed reload must still be logged"
    assert {r["level"] for r in records} <= {"warning", "error", "critical"}, records
    assert any("keeping the running configuration" in r["msg"] for r in records)


def test_walkthrough_never_logs_a_secret(running: CA, tmp_path: Path) -> None:
    """Token, certificate, renew, rekey, revoke (token and mTLS), a replayed token, a garbage
    token, a wrong provisioner password, a wrong CA password: then grep everything logged."""
    ca = running
    wrong = tmp_path / "wrong-password"
    wrong.write_text("wrong-password-9d2c41\n")
    ppw = ["--password-file", str(ca.provisioner_password_file)]
    ca.start()
    step = _step(ca, tmp_path)
    token = step("ca", "token", "web.test", *ppw).stdout.strip()
    step("ca", "certificate", "web.test", "web.crt", "web.key", "--token", token)
    issued = load_chain((tmp_path / "web.crt").read_bytes())[0]
    replayed = step("ca", "certificate", "web.test", "x.crt", "x.key", "--token", token,
                    check=False)
    assert replayed.returncode != 0
    step("ca", "renew", "web.crt", "web.key", "--force")
    renewed = load_chain((tmp_path / "web.crt").read_bytes())[0]
    step("ca", "rekey", "web.crt", "web.key", "--force")
    rekeyed = load_chain((tmp_path / "web.crt").read_bytes())[0]
    revoke_token = step("ca", "token", str(rekeyed.serial_number), "--revoke", *ppw).stdout.strip()
    step("ca", "revoke", str(rekeyed.serial_number), "--token", revoke_token)
    step("ca", "certificate", "m.test", "m.crt", "m.key", *ppw)
    mtls = load_chain((tmp_path / "m.crt").read_bytes())[0]
    step("ca", "revoke", str(mtls.serial_number), "--cert", "m.crt", "--key", "m.key")
    bad = step("ca", "token", "x.test", "--password-file", wrong, check=False)
    assert bad.returncode != 0
    garbage = "eyJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    with ca.http() as http:
        body = {"csr": csr_pem(make_csr("g.test", ["g.test"])), "ott": garbage}
        assert http.post("/1.0/sign", json=body).status_code == 401
        assert http.post("/1.0/renew", headers={"Authorization": f"Bearer {garbage}"}
                         ).status_code == 401
    ca.stop()
    wrong_ca = subprocess.run(
        [str(STEP_CA), str(ca.ca_json), "--password-file", str(wrong)],
        capture_output=True, text=True, env=clean_env(ca.steppath), timeout=120,
    )
    assert wrong_ca.returncode != 0

    text = server_log(ca) + wrong_ca.stdout + wrong_ca.stderr
    secrets = [CA_PASSWORD, PROVISIONER_PASSWORD, "wrong-password-9d2c41", "eyJ", "PRIVATE KEY"]
    for t in (token, revoke_token, garbage):
        secrets += [t, *t.split(".")]
    for name in ("web.key", "m.key"):
        secrets += _pem_body_lines(tmp_path / name)
    leaked = [s for s in secrets if s in text]
    assert leaked == [], leaked

    lines = request_lines(json_records(server_log(ca)))
    issued_lines = {r["serial"]: r for r in lines if r["status"] == 201}
    for route, cert in (("/1.0/sign", issued), ("/1.0/renew", renewed), ("/1.0/rekey", rekeyed)):
        line = issued_lines[str(cert.serial_number)]
        assert (line["route"], line["provisioner"], line["subject"]) == (
            route, PROVISIONER, "web.test")
    revokes = {r["serial"]: r for r in lines if r["route"] == "/1.0/revoke"}
    for cert in (rekeyed, mtls):
        assert revokes[str(cert.serial_number)]["provisioner"] == PROVISIONER
        assert revokes[str(cert.serial_number)]["status"] == 200
    refused = [r for r in lines if r["route"] in ("/1.0/sign", "/1.0/renew") and r["status"] == 401]
    assert len(refused) == 3 and all(r["provisioner"] is None for r in refused)
    assert all(isinstance(r["duration_ms"], float) for r in lines)


def _pem_body_lines(path: Path) -> list[str]:
    """The base64 lines of a PEM file (a private key must not appear, even in pieces)."""
    return [line for line in path.read_text().splitlines() if line and "-----" not in line]


def test_hsm_pin_never_logged(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The intermediate in a SoftHSM2 token, its PIN in ca.json (`pin-value`); the token is
    pulled out under the running server (errors that describe the key store) and put back."""
    from tests.softhsm import MODULE, softhsm_session

    base = tmp_path_factory.mktemp("logs-hsm")
    with softhsm_session(base / "softhsm") as hsm:
        token = hsm.init_token(pin=PIN)
        ca = CA(base=base / "ca", port=free_port(), name="LogHSM")
        ca.base.mkdir()
        ca.password_file.write_text(CA_PASSWORD + "\n")
        ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")

        def uri(key_id: str, label: str) -> str:
            return (f"pkcs11:module-path={MODULE};token={token.label};id={key_id};"
                    f"object={label}?pin-value={PIN}")

        run_step(
            ["ca", "init", "--name", "LogHSM", "--dns", f"{HOST},localhost",
             "--address", f"{HOST}:{ca.port}", "--provisioner", PROVISIONER,
             "--password-file", ca.password_file,
             "--provisioner-password-file", ca.provisioner_password_file,
             "--root-kms", uri("7330", "root"), "--kms", uri("7331", "inter")],
            ca.steppath,
        )
        assert PIN in ca.ca_json.read_text()  # the secret the server holds
        ca.start()
        try:
            with ca.http() as http:
                tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)

                def sign(name: str) -> int:
                    body = {"csr": csr_pem(make_csr(name, [name], ec_key())),
                            "ott": tokens.token(name)}
                    return http.post("/1.0/sign", json=body).status_code

                assert sign("ok.hsm.test") == 201
                hsm.remove_token(token)
                try:
                    assert {sign(f"gone{i}.hsm.test") for i in range(4)} <= {201, 503}
                finally:
                    hsm.restore_token(token)
        finally:
            ca.stop()
        text = server_log(ca)
        assert PIN not in text and "pin-value" not in text, text
        assert "eyJ" not in text and "PRIVATE KEY" not in text
        cert_lines = [r for r in request_lines(json_records(text)) if r["status"] == 201]
        assert cert_lines and all(r["serial"].isdigit() for r in cert_lines)
