"""Two YubiKeys through the real PC/SC stack: pyscard -> libpcsclite -> a private pcscd -> vpcd
readers named like YubiKeys -> the project's PIV emulator (tests/pcscd.py, tests/vpcd_bridge.py).

`step ca init` puts the root on one key and the intermediate on the other (the ceremony that
used to fail with "Card was reset": discovery of the second key closed a second handle to the
first, and pyscard's default disconnect powers the card down). The appliance (2 workers) then
serves 200 concurrent signs while `ykman --device SERIAL piv info` runs against the
intermediate's key from another process (its disconnect resets the card under the workers'
handles: they reconnect, select PIV, verify the PIN again and retry). The root's key is
unplugged; `openssl verify -x509_strict` checks the chains; `step kms list` shows the keys;
the intermediate's key pulled out gives 503 with Retry-After.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from yubikit.piv import DEFAULT_MANAGEMENT_KEY

from keystores.yubikey import ENV_LOCK_DIR
from tests.e2e import harness
from tests.e2e.harness import (
    CA,
    HOST,
    OPENSSL,
    PROVISIONER,
    csr_pem,
    ec_key,
    free_port,
    load_chain,
    make_csr,
    run_step,
)
from tests.e2e.tokens import TokenMaker
from tests.pcscd import PrivatePcscd, private_pcscd, unavailable_reason
from tests.tools import missing

ROOT_SERIAL, INTERMEDIATE_SERIAL = 11111111, 22222222
REQUESTS, CLIENTS = 200, 16
YKMAN = str(Path(sys.executable).with_name("ykman"))

_reason = unavailable_reason()
if _reason is not None:
    missing(f"no private pcscd: {_reason}")


@pytest.fixture
def pcsc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivatePcscd]:
    """The private pcscd with both keys, seen by every `step`/`step-ca` child."""
    locks, shims = tmp_path / "locks", tmp_path / "bin"
    locks.mkdir()
    shims.mkdir()
    # ykman kills scdaemon when it cannot connect at all: never another program's here.
    (shims / "pkill").write_text("#!/bin/sh\nexit 1\n")
    (shims / "pkill").chmod(0o755)
    with private_pcscd(tmp_path / "pcsc", [ROOT_SERIAL, INTERMEDIATE_SERIAL]) as server:
        original = harness.clean_env

        def clean_env(steppath: Path, home: Path | None = None) -> dict[str, str]:
            env = original(steppath, home)
            env.update(server.env)
            env[ENV_LOCK_DIR] = str(locks)
            env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
            return env

        monkeypatch.setattr(harness, "clean_env", clean_env)
        yield server


def _uri(serial: int, slot: str, secrets: Path, *extra: str) -> str:
    path = ";".join([f"serial={serial}", f"slot-id={slot}", *extra])
    return f"yubikey:{path};management-key-source={secrets / 'mgm'}?pin-source={secrets / 'pin'}"


def _ykman(serial: int, *args: str, steppath: Path) -> subprocess.CompletedProcess[str]:
    """ykman, run again (up to 3 times) when *its* connect finds the card powered down: ykman
    disconnects with SCARD_UNPOWER_CARD, and a run that starts before the card is powered up
    again fails in ykman itself (pyscard's "Card is unpowered"), whatever the CA does. Any
    other failure is returned as it is."""
    for attempt in range(3):
        proc = subprocess.run(
            [YKMAN, "--device", str(serial), *args],
            capture_output=True, text=True, env=harness.clean_env(steppath), timeout=120,
            check=False,
        )  # fmt: skip
        if proc.returncode == 0 or "Card is unpowered" not in proc.stderr or attempt == 2:
            return proc
        time.sleep(0.5)
    raise AssertionError("unreachable")


def _body(tokens: TokenMaker, name: str) -> dict[str, str]:
    return {"csr": csr_pem(make_csr(name, [name], ec_key())), "ott": tokens.token(name)}


def _verify(ca: CA, chain_pem: str, path: Path) -> None:
    path.write_text(chain_pem)
    result = subprocess.run(
        [OPENSSL, "verify", "-x509_strict", "-CAfile", str(ca.root_path),
         "-untrusted", str(path), str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_yubikeys_through_pcscd(pcsc: PrivatePcscd, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pin").write_text("123456\n")
    (secrets / "mgm").write_text(DEFAULT_MANAGEMENT_KEY.hex() + "\n")

    ca = CA(base=tmp_path / "ca", port=free_port(), name="Y")
    ca.base.mkdir()
    ca.password_file.write_text(harness.CA_PASSWORD + "\n")
    ca.provisioner_password_file.write_text(harness.PROVISIONER_PASSWORD + "\n")
    run_step(
        [
            "ca", "init", "--name", ca.name, "--dns", HOST, "--address", f"{HOST}:{ca.port}",
            "--provisioner", PROVISIONER, "--password-file", ca.password_file,
            "--provisioner-password-file", ca.provisioner_password_file,
            "--root-kms", _uri(ROOT_SERIAL, "9c", secrets),
            "--kms", _uri(INTERMEDIATE_SERIAL, "9a", secrets, "pin-policy=once"),
        ],
        ca.steppath,
    )  # fmt: skip
    assert f"serial={INTERMEDIATE_SERIAL}" in ca.config()["kms"]["uri"]

    # `step kms list yubikey:`: both keys and their slots.
    listed = json.loads(run_step(["kms", "list", "--json", "yubikey:"], ca.steppath).stdout)
    by_uri = {row["uri"]: row for row in listed}
    root_row = by_uri[f"yubikey:serial={ROOT_SERIAL};slot-id=9c"]
    inter_row = by_uri[f"yubikey:serial={INTERMEDIATE_SERIAL};slot-id=9a"]
    assert root_row["firmware"] == "5.7.2" and root_row["generated"] == "true"
    assert inter_row["pinPolicy"] == "once" and inter_row["touchPolicy"] == "never"
    assert inter_row["type"] == "ECCP256" and "subject" in inter_row  # step stores no certificate
    text = run_step(["kms", "list", f"yubikey:serial={ROOT_SERIAL}"], ca.steppath).stdout
    assert f"YubiKey {ROOT_SERIAL}" in text and str(INTERMEDIATE_SERIAL) not in text

    ca.start()
    try:
        with ca.http() as http:
            tokens = TokenMaker.fetch(http, harness.PROVISIONER_PASSWORD, ca.fingerprint)
        bodies = [_body(tokens, f"n{i}.yk.test") for i in range(REQUESTS)]

        def post(body: dict[str, str]) -> httpx.Response:
            with ca.http(timeout=120) as client:
                return client.post("/1.0/sign", json=body)

        # ykman against the intermediate's key, from another process, while the signs run.
        done = threading.Event()
        ykman_runs: list[subprocess.CompletedProcess[str]] = []

        def ykman_loop() -> None:
            while not done.is_set() or not ykman_runs:
                ykman_runs.append(_ykman(INTERMEDIATE_SERIAL, "piv", "info", steppath=ca.steppath))

        side = threading.Thread(target=ykman_loop)
        side.start()
        try:
            with ThreadPoolExecutor(CLIENTS) as pool:
                responses = list(pool.map(post, bodies))
        finally:
            done.set()
            side.join()
        for run in ykman_runs:
            assert run.returncode == 0, run.stderr
            assert "PIV version:" in run.stdout and "5.7.2" in run.stdout
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {201, 503}, [r.text for r in responses if r.status_code >= 400]
        assert statuses.count(201) > REQUESTS // 2, statuses
        for r in responses:
            if r.status_code == 503:
                assert r.headers["retry-after"] and r.json()["status"] == 503

        # One more ykman run, then signs: each worker finds its card reset, reconnects,
        # selects PIV, verifies the PIN once more and answers.
        assert _ykman(INTERMEDIATE_SERIAL, "piv", "info", steppath=ca.steppath).returncode == 0
        with ca.http() as http:
            for i in range(6):
                resp = http.post("/1.0/sign", json=_body(tokens, f"after{i}.yk.test"))
                assert resp.status_code == 201, resp.text
        log = ca.log_path.read_text()
        assert f"YubiKey {INTERMEDIATE_SERIAL} was reset by another program; retried" in log
        assert "Traceback" not in log

        # The root's key goes back to the safe: the appliance does not need it.
        pcsc.unplug(ROOT_SERIAL)
        with ca.http() as http:
            resp = http.post("/1.0/sign", json=_body(tokens, "unplugged.yk.test"))
        assert resp.status_code == 201, resp.text
        issued = [r for r in responses if r.status_code == 201]
        for i, r in enumerate([*issued[:3], resp]):
            chain = "".join(r.json()["certChain"])
            _verify(ca, chain, tmp_path / f"chain{i}.pem")
            assert load_chain(chain.encode())[1] == ca.intermediate

        missing = run_step(["kms", "list", f"yubikey:serial={ROOT_SERIAL}"], ca.steppath,
                           check=False)  # fmt: skip
        assert missing.returncode != 0
        assert missing.stderr.strip().endswith(
            f"no YubiKey with serial {ROOT_SERIAL} is connected (found: {INTERMEDIATE_SERIAL})"
        ), missing.stderr
        assert "Traceback" not in missing.stderr

        # The intermediate's key pulled out: 503 with Retry-After, a line in the log.
        pcsc.unplug(INTERMEDIATE_SERIAL)
        with ca.http() as http:
            gone = http.post("/1.0/sign", json=_body(tokens, "gone.yk.test"))
        assert gone.status_code == 503, gone.text
        assert gone.headers["retry-after"]
        absent = f"no YubiKey with serial {INTERMEDIATE_SERIAL} is connected (found: none)"
        assert absent in ca.log_path.read_text()
        assert ca.proc is not None and ca.proc.poll() is None
    finally:
        ca.stop()
