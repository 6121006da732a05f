"""`step-ca`: a first argument naming an operator command runs it; anything else is a CONFIG.

`step-ca --check CONFIG`: a summary and status 0, or one line per problem and status 1.
Secrets from systemd credentials: a file-store CA served with its password from
$CREDENTIALS_DIRECTORY/ca-password, a SoftHSM2 CA with its PIN from .../kms-pin.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.config import CAConfig
from appliance.db.schema import upgrade
from appliance.pki import InitRequest, init_pki
from cli.stepca import command_names, main
from tests.e2e.harness import (
    CA,
    CA_PASSWORD,
    HOST,
    PROVISIONER,
    PROVISIONER_PASSWORD,
    START_TIMEOUT,
    STEP_CA,
    clean_env,
    csr_pem,
    ec_key,
    free_port,
    make_csr,
    run_step,
)
from tests.e2e.tokens import TokenMaker
from tests.logging_state import root_logging_restored
from tests.softhsm import MODULE, SoftHSM, softhsm_session

PASSWORD = b"ca-password"


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    """`step-ca` sets up process-wide logging (to a stderr capsys closes after the test)."""
    with root_logging_restored():
        yield


def test_version_is_an_operator_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("Stepstone step-ca/")
    assert "version" in command_names()


def test_any_other_first_argument_is_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["no-such-ca.json"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "step-ca: open no-such-ca.json: no such file or directory"
    )


# --- step-ca --check -------------------------------------------------------------------------


@pytest.fixture
def ca_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CA made by init_pki (file keys, SQLite, its schema made as `step ca init` does); no
    credentials directory in sight."""
    steppath = tmp_path / "step"
    monkeypatch.setenv("STEPPATH", str(steppath))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    init_pki(InitRequest(steppath, "Test", ["ca.test"], "127.0.0.1:9000", "admin", PASSWORD, b"p"))
    (tmp_path / "pw").write_bytes(PASSWORD + b"\n")
    upgrade(CAConfig.load(steppath / "config" / "ca.json"))
    return steppath / "config" / "ca.json"


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    code = exit_info.value.code
    assert isinstance(code, int)
    return code, out, err


def test_check_good_config_prints_the_summary(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pw = ca_json.parents[2] / "pw"
    db = ca_json.parents[1] / "db"
    before = [(p.name, p.stat().st_mtime_ns) for p in sorted(db.iterdir())]
    code, out, err = _run([str(ca_json), "--check", "--password-file", str(pw)], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{ca_json}: OK"
    labels = [line.split()[0] for line in lines[1:]]
    assert labels == ["CA", "root", "intermediate", "key", "secrets", "provisioner", "database"]
    assert "Test Intermediate CA" in lines[1]
    assert "key store     file: " in out
    assert "provisioner   admin (JWK)" in out
    assert "sqlite+pysqlite" in out and " (current)" in out
    assert len(lines) < 24  # one screen
    assert [(p.name, p.stat().st_mtime_ns) for p in sorted(db.iterdir())] == before  # no write


def test_check_names_the_upgrade_of_a_schema_behind(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(ca_json.parents[1] / "db" / "stepstone.db") as con:
        con.execute("UPDATE alembic_version SET version_num = '0001'")
    pw = ca_json.parents[2] / "pw"
    code, out, err = _run([str(ca_json), "--check", "--password-file", str(pw)], capsys)
    assert (code, out) == (1, "")
    assert err.startswith(
        "step-ca: database: the database schema is at 0001 but this step-ca needs "
    )
    assert err.endswith(f": run 'step-ca db upgrade {ca_json}'\n") and err.count("\n") == 1


def test_check_lists_one_line_per_problem(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steppath = ca_json.parents[1]
    (steppath / "certs" / "root_ca.crt").unlink()
    raw = json.loads(ca_json.read_text())
    raw["authority"]["provisioners"].append({"type": "AWS", "name": "aws", "iidRoots": "/none"})
    ca_json.write_text(json.dumps(raw))
    code, out, err = _run([str(ca_json), "--check"], capsys)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 3, err
    assert all(line.startswith("step-ca: ") for line in lines)
    assert lines[0].startswith("step-ca: root: error reading ")
    assert lines[1].startswith(f"step-ca: key {steppath / 'secrets' / 'intermediate_ca_key'}: ")
    assert lines[2] == (
        "step-ca: provisioner 'aws' failed to initialise: error reading /none: "
        "No such file or directory"
    )


def test_check_schema_problems_one_per_line(
    ca_json: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = json.loads(ca_json.read_text())
    raw["tls"] = {"minVersion": "abc"}
    raw["db"]["dataSource"] = 5
    ca_json.write_text(json.dumps(raw))
    code, out, err = _run([str(ca_json), "--check"], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"step-ca: {ca_json}: db.dataSource: expected a string, got 5",
        f'step-ca: {ca_json}: tls.minVersion: expected a TLS version such as 1.2 or 1.3, got "abc"',
    ]


def test_check_json(ca_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pw = ca_json.parents[2] / "pw"
    code, out, err = _run([str(ca_json), "--check", "--json", "--password-file", str(pw)], capsys)
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["ok"] is True and report["problems"] == []
    assert report["name"] == "Test Intermediate CA"
    assert report["keyStore"]["type"] == "file"
    assert report["provisioners"] == [{"name": "admin", "type": "JWK"}]
    assert report["database"]["driver"] == "sqlite+pysqlite"
    assert report["roots"][0]["subject"] == "Test Root CA"

    code, out, err = _run([str(ca_json), "--check", "--json"], capsys)  # no password
    assert (code, err) == (1, "")
    report = json.loads(out)
    assert report["ok"] is False and len(report["problems"]) == 1


def test_json_goes_with_check(ca_json: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([str(ca_json), "--json"], capsys)
    assert (code, out, err) == (1, "", "step-ca: '--json' goes with '--check'\n")


def test_check_reads_the_password_credential(
    ca_json: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "ca-password").write_bytes(PASSWORD)
    (creds / "ca-password").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    code, out, err = _run([str(ca_json), "--check"], capsys)
    assert (code, err) == (0, "")
    assert "secrets       password from credential ca-password" in out

    (creds / "ca-password").chmod(0o644)
    code, out, err = _run([str(ca_json), "--check"], capsys)
    assert code == 1
    assert err.splitlines()[0] == (
        f"step-ca: credential {creds / 'ca-password'} is mode 0644: it must be readable by "
        "the service only (0400, as systemd makes it)"
    )


# --- serving with credentials ----------------------------------------------------------------


def _serve(ca: CA, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`step-ca CONFIG ARGS` with `env` (no --password-file), once /health answers."""
    log = open(ca.log_path, "wb")  # noqa: SIM115 - the child holds it; closed below
    proc = subprocess.Popen(
        [str(STEP_CA), str(ca.ca_json), *args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    log.close()
    ca.proc = proc
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            ca.proc = None
            raise AssertionError(f"step-ca exited {proc.returncode}:\n{ca.log_tail()}")
        try:
            with ca.http(timeout=2.0) as client:
                if client.get("/health").status_code == 200:
                    return proc
        except (httpx.HTTPError, ssl.SSLError, OSError):
            pass
        time.sleep(0.1)
    ca.stop()
    raise AssertionError(f"step-ca did not come up:\n{ca.log_tail()}")


def _sign(ca: CA, name: str) -> httpx.Response:
    with ca.http() as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
        body = {"csr": csr_pem(make_csr(name, [name], ec_key())), "ott": tokens.token(name)}
        return http.post("/1.0/sign", json=body)


def _credentials(base: Path, **files: str) -> Path:
    directory = base / "credentials"
    directory.mkdir(mode=0o500, exist_ok=True)
    directory.chmod(0o700)
    for name, value in files.items():
        path = directory / name.replace("_", "-")
        path.write_text(value + "\n")
        path.chmod(0o400)
    directory.chmod(0o500)
    return directory


def test_serve_with_the_password_credential(tmp_path: Path) -> None:
    ca = CA.init(tmp_path / "ca")
    env = clean_env(ca.steppath)
    try:
        env["CREDENTIALS_DIRECTORY"] = str(_credentials(tmp_path, ca_password=CA_PASSWORD))
        _serve(ca, env)
        assert _sign(ca, "cred.test").status_code == 201
    finally:
        ca.stop()

    # A password in the environment is not a credential: refused at start, one line.
    env = clean_env(ca.steppath) | {"CA_PASSWORD": CA_PASSWORD, "STEP_CA_PASSWORD": CA_PASSWORD}
    done = subprocess.run(
        [str(STEP_CA), str(ca.ca_json)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "no password was given" in done.stderr


def test_serve_refuses_a_world_readable_credential(tmp_path: Path) -> None:
    ca = CA.init(tmp_path / "ca")
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "ca-password").write_text(CA_PASSWORD)
    (creds / "ca-password").chmod(0o644)
    env = clean_env(ca.steppath) | {"CREDENTIALS_DIRECTORY": str(creds)}
    done = subprocess.run(
        [str(STEP_CA), str(ca.ca_json)], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"step-ca: credential {creds / 'ca-password'} is mode 0644: it must be readable by the "
        "service only (0400, as systemd makes it)\n"
    )


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


@pytest.fixture
def hsm_ca(hsm: SoftHSM, tmp_path: Path) -> Iterator[tuple[CA, str]]:
    """`step ca init --kms` into a SoftHSM2 token, then the PIN taken out of ca.json."""
    ca = CA(base=tmp_path / "hsm-ca", port=free_port(), name="HSM")
    ca.base.mkdir()
    ca.password_file.write_text(CA_PASSWORD + "\n")
    ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")
    token = hsm.init_token()
    pin = tmp_path / "pin"
    pin.write_text(token.pin)
    kms = f"pkcs11:module-path={MODULE};token={token.label};id=7331;object=ca?pin-source={pin}"
    run_step(
        [
            "ca", "init", "--name", "HSM", "--dns", f"{HOST},localhost",
            "--address", f"{HOST}:{ca.port}", "--provisioner", PROVISIONER,
            "--password-file", ca.password_file,
            "--provisioner-password-file", ca.provisioner_password_file, "--kms", kms,
        ],
        ca.steppath,
    )  # fmt: skip
    pin.unlink()

    def no_pin(cfg: dict[str, Any]) -> None:
        cfg["kms"]["uri"] = cfg["kms"]["uri"].partition("?")[0]

    ca.edit_config(no_pin)
    try:
        yield ca, token.pin
    finally:
        ca.stop()


def test_serve_and_check_with_the_pin_credential(
    hsm: SoftHSM, hsm_ca: tuple[CA, str], tmp_path: Path
) -> None:
    ca, pin = hsm_ca
    env = clean_env(ca.steppath) | {"SOFTHSM2_CONF": str(hsm.conf)}
    check = [str(STEP_CA), "--check", str(ca.ca_json)]
    done = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "no PIN given" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1

    env["CREDENTIALS_DIRECTORY"] = str(_credentials(tmp_path, kms_pin=pin))
    done = subprocess.run(check, env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "secrets       PIN from credential kms-pin" in done.stdout
    assert pin not in done.stdout

    _serve(ca, env)
    assert _sign(ca, "pin.test").status_code == 201
    assert "pin-value" not in json.dumps(ca.config())  # ca.json unchanged
    assert pin not in ca.log_path.read_text()


def test_reload_keeps_the_pin_credential(
    hsm: SoftHSM, hsm_ca: tuple[CA, str], tmp_path: Path
) -> None:
    ca, pin = hsm_ca
    env = clean_env(ca.steppath) | {"SOFTHSM2_CONF": str(hsm.conf)}
    env["CREDENTIALS_DIRECTORY"] = str(_credentials(tmp_path, kms_pin=pin))
    _serve(ca, env)
    ca.edit_config(lambda cfg: cfg["authority"].update(claims={"defaultTLSCertDuration": "2h"}))
    os.kill(ca.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "configuration reloaded" not in ca.log_path.read_text():
        assert "keeping the running configuration" not in ca.log_path.read_text(), ca.log_tail()
        assert time.monotonic() < deadline, ca.log_tail()
        time.sleep(0.1)
    assert _sign(ca, "after.test").status_code == 201
