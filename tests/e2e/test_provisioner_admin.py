"""`step ca provisioner add|update|remove` on a real CA: ca.json round-trips, the running
server picks the change up on SIGHUP, a refused edit leaves ca.json alone."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.e2e.harness import (
    CA,
    DEFAULT_401,
    CAFactory,
    csr_pem,
    load_chain,
    make_csr,
    run_step,
)
from tests.e2e.test_x5c import flow_token, write_credential
from tests.provisioners.test_x5c import X5CPKI

RELOADED = "Success! Your `step-ca` config has been updated."


@pytest.fixture
def ca(ca_factory: CAFactory) -> CA:
    return ca_factory("admin-cmds")


def admin(ca: CA, *args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`step ca provisioner ...` on the CA's own STEPPATH (default --ca-config)."""
    return run_step(["ca", "provisioner", *map(str, args)], ca.steppath, check=check)


def names(ca: CA) -> list[str]:
    with ca.http() as http:
        items = http.get("/provisioners", params={"limit": "100"}).json()["provisioners"]
    return [str(p["name"]) for p in items]


def reload(ca: CA, expect: str, present: bool = True, timeout: float = 30.0) -> None:
    """SIGHUP the server and wait until provisioner `expect` is (or is no longer) listed."""
    os.kill(ca.pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (expect in names(ca)) == present:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"provisioner {expect!r} present={present} not seen:\n{ca.log_tail()}")


def one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_x5c_round_trip(ca: CA, tmp_path: Path) -> None:
    pki = X5CPKI.make("Admin E2E")
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pki.root.public_bytes(Encoding.PEM))
    mode = stat.S_IMODE(ca.ca_json.stat().st_mode)
    original = ca.ca_json.read_bytes()

    proc = admin(ca, "add", "x5c", "--type", "X5C", "--x5c-roots", roots)
    assert RELOADED in proc.stderr
    backup = ca.ca_json.with_name("ca.json.bak")
    assert backup.read_bytes() == original
    assert stat.S_IMODE(backup.stat().st_mode) == mode
    assert stat.S_IMODE(ca.ca_json.stat().st_mode) == mode
    assert "\n\t" in ca.ca_json.read_text()
    raw = json.loads(ca.ca_json.read_text())
    assert raw["authority"]["provisioners"][-1] == {
        "type": "X5C",
        "name": "x5c",
        "roots": pki.roots_value,
        "claims": {
            "disableRenewal": False,
            "allowRenewalAfterExpiry": False,
            "disableSmallstepExtensions": False,
        },
    }

    reload(ca, "x5c")
    crt, key = write_credential(pki, tmp_path)
    token = flow_token(ca, "x5c", crt, key, "svc.test")
    run_step(
        ["ca", "certificate", "svc.test", tmp_path / "svc.crt", tmp_path / "svc.key",
         "--token", token, "--ca-url", ca.url, "--root", ca.root_path],
        ca.steppath,
    )  # fmt: skip
    assert load_chain((tmp_path / "svc.crt").read_bytes())[0].issuer == ca.intermediate.subject

    # A bad edit is refused by validation: ca.json and its backup stay as they were.
    before, backup_before = ca.ca_json.read_bytes(), backup.read_bytes()
    one_line_error(admin(ca, "update", "x5c", "--x509-min-dur", "48h", check=False), "claims")
    one_line_error(
        admin(ca, "add", "x5c", "--type", "X5C", "--x5c-roots", roots, check=False),
        "already exists",
    )
    assert ca.ca_json.read_bytes() == before and backup.read_bytes() == backup_before

    # Remove: the next token of that provisioner is refused once the CA reloads.
    admin(ca, "remove", "x5c")
    reload(ca, "x5c", present=False)
    token = stale_x5c_token(ca, pki)
    with ca.http() as http:
        resp = http.post("/1.0/sign", json={"csr": csr_pem(make_csr("svc.test")), "ott": token})
    assert resp.status_code == 401 and resp.json()["message"] == DEFAULT_401
    one_line_error(admin(ca, "remove", "x5c", check=False), "not found")


def stale_x5c_token(ca: CA, pki: X5CPKI) -> str:
    """An X5C token for a provisioner the CA no longer lists (so not made by the flow)."""
    chain, key = pki.leaf("late")
    now = int(time.time())
    claims = {
        "iss": "x5c",
        "aud": f"{ca.url}/1.0/sign#x5c/x5c",
        "sub": "svc.test",
        "sans": ["svc.test"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(32),
    }
    x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in chain]
    return jwt.encode(claims, key, algorithm="ES256", headers={"x5c": x5c})


def test_jwk_create_then_issue(ca: CA, tmp_path: Path) -> None:
    password = tmp_path / "cicd-password"
    password.write_text("cicd-password\n")
    admin(
        ca, "add", "cicd", "--type", "JWK", "--create", "--password-file", password,
        "--x509-default-dur", "2h", "--ca-config", ca.ca_json,
    )  # fmt: skip
    reload(ca, "cicd")
    client = tmp_path / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], client)
    run_step(
        ["ca", "certificate", "ci.test", "ci.crt", "ci.key", "--provisioner", "cicd",
         "--password-file", password],
        client,
        cwd=tmp_path,
    )  # fmt: skip
    cert = load_chain((tmp_path / "ci.crt").read_bytes())[0]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 2 * 3600 <= lifetime.total_seconds() <= 2 * 3600 + 61
