"""The audit log through the real server: a sign, a renew, a revoke and a reload that adds a
provisioner (`step ca provisioner add`) all appear in `step-ca audit list`, and the chain
verifies."""

from __future__ import annotations

import getpass
import json
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509

from tests.e2e.harness import CA, STEP_CA, CAFactory, clean_env, load_chain, run_step
from tests.e2e.test_provisioner_admin import admin, reload


def _step_ca(ca: CA, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STEP_CA), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(ca.steppath),
        timeout=120,
        check=False,
    )


def _serial(path: Path) -> str:
    cert: x509.Certificate = load_chain(path.read_bytes())[0]
    return str(cert.serial_number)


def test_sign_renew_revoke_and_reload_are_in_the_audit_log(
    ca_factory: CAFactory, tmp_path: Path
) -> None:
    ca = ca_factory("audit")
    client = tmp_path / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], client)

    def step(*args: str) -> None:
        run_step(list(args), client, cwd=tmp_path)

    ppw = str(ca.provisioner_password_file)
    step("ca", "certificate", "a.test", "a.crt", "a.key", "--password-file", ppw)
    signed = _serial(tmp_path / "a.crt")
    step("ca", "renew", "a.crt", "a.key", "--force")
    renewed = _serial(tmp_path / "a.crt")
    step("ca", "revoke", "--cert", "a.crt", "--key", "a.key", "--reason", "retired")
    admin(ca, "add", "second", "--type", "JWK", "--create", "--password-file", ppw)
    reload(ca, "second")

    listed = _step_ca(ca, "audit", "list", str(ca.ca_json), "--format", "json")
    assert listed.returncode == 0, listed.stderr
    items: list[dict[str, Any]] = json.loads(listed.stdout)
    got = [(i["kind"], i["serial"], i["subject"]) for i in items]
    init, items = items[0], items[1:]  # `step ca init` made the schema and its entry
    assert (init["kind"], init["actor"]) == ("ceremony.init", f"local:{getpass.getuser()}")
    assert got[1:] == [
        ("certificate.sign", signed, "CN=a.test"),
        ("certificate.renew", renewed, "CN=a.test"),
        ("certificate.revoke", renewed, "CN=a.test"),
        ("config.reload", "", ""),
        ("provisioner.add", "", "second"),
    ], got
    assert items[0]["actor"] == "admin:a.test"
    assert items[1]["details"]["from_serial"] == signed
    assert items[2]["details"]["reason"] == "retired" and items[2]["details"]["mtls"] is True
    assert all(len(i["request_id"]) >= 16 for i in items[:3])  # the request ids of the log
    assert items[3]["actor"].startswith("local:")
    logged = ca.log_path.read_text()
    assert f'"request_id":"{items[0]["request_id"]}"' in logged  # the request line's id

    table = _step_ca(ca, "audit", "list", str(ca.ca_json), "--kind", "certificate")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 4

    verified = _step_ca(ca, "audit", "verify", str(ca.ca_json))
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.splitlines()[0] == "6 entries, chain intact"
    assert verified.stdout.splitlines()[1] == f"Head: 6:{items[4]['hash']}"
