"""The appliance with its intermediate in a SoftHSM2 token and its root in another token
that is taken away: 2 workers serve 500 concurrent requests; the token vanishing under the
running server gives 503s and a clear log line; putting it back restores service."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import (
    CA,
    CA_PASSWORD,
    HOST,
    OPENSSL,
    PROVISIONER,
    PROVISIONER_PASSWORD,
    csr_pem,
    ec_key,
    free_port,
    load_chain,
    make_csr,
    run_step,
)
from tests.e2e.tokens import TokenMaker
from tests.softhsm import MODULE, SoftHSM, softhsm_session

REQUESTS = 500
CLIENTS = 20


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHSM]:
    with softhsm_session(tmp_path_factory.mktemp("softhsm")) as hsm:
        yield hsm


@pytest.fixture(scope="module")
def hsm_ca(hsm: SoftHSM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CA, str]]:
    """`step ca init` with the root in token A and the intermediate in token B; A removed."""
    base = tmp_path_factory.mktemp("hsm-ca")
    ca = CA(base=base, port=free_port(), name="HSM")
    ca.password_file.write_text(CA_PASSWORD + "\n")
    ca.provisioner_password_file.write_text(PROVISIONER_PASSWORD + "\n")
    token_a, token_b = hsm.init_token(), hsm.init_token()
    pins = base / "pins"
    pins.mkdir()
    (pins / "a").write_text(token_a.pin)
    (pins / "b").write_text(token_b.pin)
    root_uri = (
        f"pkcs11:module-path={MODULE};token={token_a.label};id=7330;object=root"
        f"?pin-source={pins / 'a'}"
    )
    inter_uri = (
        f"pkcs11:module-path={MODULE};token={token_b.label};id=7331;object=inter"
        f"?pin-source={pins / 'b'}"
    )
    run_step(
        [
            "ca",
            "init",
            "--name",
            "HSM",
            "--dns",
            f"{HOST},localhost",
            "--address",
            f"{HOST}:{ca.port}",
            "--provisioner",
            PROVISIONER,
            "--password-file",
            ca.password_file,
            "--provisioner-password-file",
            ca.provisioner_password_file,
            "--root-kms",
            root_uri,
            "--kms",
            inter_uri,
        ],
        ca.steppath,
    )
    hsm.remove_token(token_a)  # the root goes back to the safe
    ca.start()
    try:
        yield ca, token_b.label
    finally:
        ca.stop()
        hsm.restore_token(token_a)


def _sign(http: httpx.Client, tokens: TokenMaker, name: str) -> httpx.Response:
    body = {"csr": csr_pem(make_csr(name, [name], ec_key())), "ott": tokens.token(name)}
    return http.post("/1.0/sign", json=body)


def test_hsm_appliance_serves_concurrently(hsm_ca: tuple[CA, str], tmp_path: Path) -> None:
    ca, _ = hsm_ca
    with ca.http() as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
        bodies = []
        for i in range(REQUESTS):
            name = f"n{i}.hsm.test"
            bodies.append(
                {"csr": csr_pem(make_csr(name, [name], ec_key())), "ott": tokens.token(name)}
            )

    def post(body: dict[str, str]) -> tuple[int, str]:
        with ca.http(timeout=120) as client:
            resp = client.post("/1.0/sign", json=body)
            return resp.status_code, resp.text

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(post, bodies))
    failures = [r for r in results if r[0] != 201]
    assert failures == [], failures[:3]
    pids = {
        line.split("pid: ")[1].rstrip(")")
        for line in ca.log_path.read_text().splitlines()
        if "Booting worker with pid" in line
    }
    assert len(pids) >= 2, "two gunicorn workers"
    chain = tmp_path / "chain.pem"
    chain.write_text("".join(json.loads(results[0][1])["certChain"]))
    verify = subprocess.run(
        [
            OPENSSL,
            "verify",
            "-x509_strict",
            "-CAfile",
            str(ca.root_path),
            "-untrusted",
            str(chain),
            str(chain),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr
    assert load_chain(chain.read_bytes())[1] == ca.intermediate


def test_token_vanishing_gives_503_and_coming_back_restores(
    hsm: SoftHSM, hsm_ca: tuple[CA, str]
) -> None:
    ca, label = hsm_ca
    token_b = hsm.tokens[label]
    with ca.http() as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
        assert _sign(http, tokens, "before.hsm.test").status_code == 201
        hsm.remove_token(token_b)
        try:
            statuses = []
            for i in range(20):  # both workers must notice; each request is answered
                resp = _sign(http, tokens, f"gone{i}.hsm.test")
                statuses.append(resp.status_code)
                if resp.status_code == 503:
                    assert resp.json()["status"] == 503
                    assert resp.headers["retry-after"]
            assert 503 in statuses and set(statuses) <= {201, 503}, statuses
            assert "PKCS#11 session lost" in ca.log_path.read_text()
        finally:
            hsm.restore_token(token_b)
        deadline = time.monotonic() + 30
        ok = 0
        while time.monotonic() < deadline and ok < 4:  # every worker reconnects
            ok = ok + 1 if _sign(http, tokens, f"back{ok}.hsm.test").status_code == 201 else 0
        assert ok >= 4, ca.log_tail()
        assert ca.proc is not None and ca.proc.poll() is None  # never restarted
