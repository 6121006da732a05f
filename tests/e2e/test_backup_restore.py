"""`step-ca backup` of a running CA that keeps signing, then stop, wipe STEPPATH,
`step-ca restore`, start: the CA serves, signs, and its old serials are still known for
revocation (and what was revoked stays revoked)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import httpx

from tests.e2e.harness import (
    CA,
    PROVISIONER_PASSWORD,
    STEP_CA,
    CAFactory,
    clean_env,
    csr_pem,
    load_chain,
    make_csr,
    run_step,
)
from tests.e2e.tokens import TokenMaker


def _step_ca(ca: CA, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STEP_CA), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(ca.steppath),
        timeout=120,
        check=False,
    )


def _sign(http: httpx.Client, tokens: TokenMaker, name: str) -> int:
    csr = csr_pem(make_csr(name, [name]))
    resp = http.post("/1.0/sign", json={"csr": csr, "ott": tokens.token(name)})
    assert resp.status_code == 201, resp.text
    return load_chain(resp.json()["crt"])[0].serial_number


def _revoke(http: httpx.Client, tokens: TokenMaker, ca: CA, serial: int) -> httpx.Response:
    token = tokens.token(str(serial), aud=f"{ca.url}/1.0/revoke")
    return http.post(
        "/1.0/revoke", json={"serial": str(serial), "ott": token, "passive": True}
    )


class _Signer(threading.Thread):
    """Signs one certificate after another until told to stop; keeps every outcome."""

    def __init__(self, ca: CA, tokens: TokenMaker) -> None:
        super().__init__(daemon=True)
        self.ca, self.tokens = ca, tokens
        self.stop = threading.Event()
        self.first = threading.Event()
        self.serials: list[int] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with self.ca.http() as http:
            while not self.stop.is_set():
                try:
                    self.serials.append(_sign(http, self.tokens, f"busy{len(self.serials)}.test"))
                except (AssertionError, httpx.HTTPError) as exc:
                    self.failures.append(repr(exc))
                self.first.set()


def test_backup_while_signing_then_wipe_restore_and_revoke(
    ca_factory: CAFactory, tmp_path: Path
) -> None:
    ca = ca_factory("backup")
    with ca.http() as http:
        tokens = TokenMaker.fetch(http, PROVISIONER_PASSWORD, ca.fingerprint)
        old = [_sign(http, tokens, f"old{i}.test") for i in range(5)]
        assert _revoke(http, tokens, ca, old[0]).status_code == 200

    signer = _Signer(ca, tokens)
    signer.start()
    assert signer.first.wait(60), "no certificate signed"
    dest = tmp_path / "backup"
    try:
        made = _step_ca(ca, "backup", dest)
    finally:
        signer.stop.set()
        signer.join(60)
    assert made.returncode == 0, made.stderr
    assert signer.failures == [] and signer.serials
    assert f"✔ Backup: {dest}" in made.stderr
    assert "✔ Intermediate key: secrets/intermediate_ca_key (file, encrypted)" in made.stderr
    manifest = json.loads((dest / "manifest.json").read_text())
    database = manifest["database"]
    assert database["included"] and database["revoked"] == 1
    assert database["certificates"] >= len(old) + 1  # the CA's own TLS certificate too

    ca.stop()
    shutil.rmtree(ca.steppath)
    restored = _step_ca(ca, "restore", dest)
    assert restored.returncode == 0, restored.stderr
    assert f"✔ Restored: {ca.steppath} (files 0600, folders 0700)" in restored.stderr
    assert f"step-ca {ca.ca_json} --password-file FILE" in restored.stderr
    assert (ca.steppath / "secrets" / "intermediate_ca_key").stat().st_mode & 0o777 == 0o600

    ca.start()
    client = tmp_path / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], client)
    revoked = run_step(
        ["ca", "revoke", str(old[1]), "--password-file", ca.provisioner_password_file], client
    )
    assert f"Certificate with Serial Number {old[1]} has been revoked." in revoked.stderr
    with ca.http() as http:
        new = _sign(http, tokens, "new.test")
        assert new not in old
        for serial in (old[0], old[1]):
            again = _revoke(http, tokens, ca, serial)
            assert again.status_code == 400
            assert "is already revoked" in again.json()["message"]
        assert _revoke(http, tokens, ca, old[2]).status_code == 200
        assert _revoke(http, tokens, ca, 12345).status_code == 404  # unknown stays unknown


def test_a_tampered_backup_is_refused_in_one_line(ca_factory: CAFactory, tmp_path: Path) -> None:
    ca = ca_factory("backup-tamper", start=False)
    dest = tmp_path / "backup"
    assert _step_ca(ca, "backup", dest, "--json").returncode == 0
    crt = dest / "certs" / "root_ca.crt"
    crt.write_bytes(crt.read_bytes()[:-10])
    shutil.rmtree(ca.steppath)
    refused = _step_ca(ca, "restore", dest)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.splitlines()[-1] == (
        f"step-ca restore: {crt}: {crt.stat().st_size} bytes where the manifest says "
        f"{crt.stat().st_size + 10}: the backup is truncated or altered"
    )
    assert not ca.steppath.exists()
