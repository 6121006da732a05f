"""Root rotation, end to end: a new root and intermediate, both roots served during the
overlap, clients picking up the bundle, old leaves still renewing, the old root retired."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.serialization import Encoding

from appliance.profiles import build_intermediate, build_root
from keystores import KeySpec, open_keystore
from tests.e2e.harness import (
    CA_PASSWORD,
    OPENSSL,
    CAFactory,
    cert_fingerprint,
    load_chain,
    run_step,
)


def _reload(ca: Any, until: Any) -> None:
    os.kill(ca.pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if until():
                return
        except Exception:  # the new workers may still be starting
            pass
        time.sleep(0.3)
    raise AssertionError(f"reload did not take effect:\n{ca.log_tail()}")


def _verify(bundle: Path, chain_file: Path) -> bool:
    res = subprocess.run(
        [
            OPENSSL,
            "verify",
            "-x509_strict",
            "-CAfile",
            str(bundle),
            "-untrusted",
            str(chain_file),
            str(chain_file),
        ],
        capture_output=True,
        text=True,
    )
    return res.returncode == 0


def test_root_rotation(ca_factory: CAFactory, tmp_path: Path) -> None:
    ca = ca_factory("rotation")
    client = tmp_path / "client"
    run_step(["ca", "bootstrap", "--ca-url", ca.url, "--fingerprint", ca.fingerprint], client)
    ppw = ["--password-file", str(ca.provisioner_password_file)]
    run_step(["ca", "certificate", "old.test", "old.crt", "old.key", *ppw], client, cwd=tmp_path)

    # 1. The ceremony: a new root and a new intermediate (keys encrypted like init's).
    certs, secrets = ca.steppath / "certs", ca.steppath / "secrets"
    store = open_keystore("file:", password=CA_PASSWORD.encode())
    now = datetime.now(UTC).replace(microsecond=0)
    root_key_path, inter_key_path = secrets / "root_ca_2_key", secrets / "intermediate_ca_2_key"
    store.create_key(str(root_key_path), KeySpec())
    store.create_key(str(inter_key_path), KeySpec())
    root2 = build_root("Test 2", store.signer(str(root_key_path)), now)
    inter2 = build_intermediate(
        "Test 2",
        store.public_key(str(inter_key_path)),
        root2,
        store.signer(str(root_key_path)),
        now,
    )
    (certs / "root_ca_2.crt").write_bytes(root2.public_bytes(Encoding.PEM))
    (certs / "intermediate_ca_2.crt").write_bytes(inter2.public_bytes(Encoding.PEM))

    # 2. Overlap: both roots served; clients fetch the bundle.
    old_root = str(ca.root_path)

    def both_roots(cfg: dict[str, Any]) -> None:
        cfg["root"] = [old_root, str(certs / "root_ca_2.crt")]

    ca.edit_config(both_roots)
    _reload(ca, lambda: len(ca.http().get("/roots").json()["crts"]) == 2)
    run_step(["ca", "roots", "roots.pem"], client, cwd=tmp_path)
    bundle = tmp_path / "roots.pem"
    assert {cert_fingerprint(c) for c in load_chain(bundle.read_bytes())} == {
        ca.fingerprint,
        cert_fingerprint(root2),
    }
    with ca.http() as http:
        assert http.get(f"/root/{cert_fingerprint(root2)}").status_code == 200

    # 3. Switch issuing to the new intermediate; the CA's own TLS chain follows.
    def new_intermediate(cfg: dict[str, Any]) -> None:
        cfg["crt"] = str(certs / "intermediate_ca_2.crt")
        cfg["key"] = str(inter_key_path)

    ca.edit_config(new_intermediate)
    _reload(
        ca,
        lambda: (
            _get(ca, bundle, "/intermediates")["crts"][0]
            == inter2.public_bytes(Encoding.PEM).decode()
        ),
    )
    on_bundle = ["--root", str(bundle)]
    run_step(
        ["ca", "certificate", "new.test", "new.crt", "new.key", *ppw, *on_bundle],
        client,
        cwd=tmp_path,
    )
    assert load_chain((tmp_path / "new.crt").read_bytes())[1] == inter2
    assert _verify(bundle, tmp_path / "new.crt") and _verify(bundle, tmp_path / "old.crt")
    # A leaf of the old intermediate still renews (mTLS), now under the new intermediate.
    run_step(["ca", "renew", "old.crt", "old.key", "--force", *on_bundle], client, cwd=tmp_path)
    assert load_chain((tmp_path / "old.crt").read_bytes())[1] == inter2

    # 4. Retire the old root.
    def retire(cfg: dict[str, Any]) -> None:
        cfg["root"] = str(certs / "root_ca_2.crt")

    ca.edit_config(retire)
    _reload(ca, lambda: len(_get(ca, bundle, "/roots")["crts"]) == 1)
    served = [load_chain(p.encode())[0] for p in _get(ca, bundle, "/roots")["crts"]]
    assert [cert_fingerprint(c) for c in served] == [cert_fingerprint(root2)]


def _get(ca: Any, bundle: Path, path: str) -> Any:
    """GET over TLS verified with the client's root bundle (the CA now chains to root 2)."""
    ctx = ssl.create_default_context(cafile=str(bundle))
    with httpx.Client(base_url=ca.url, verify=ctx) as http:
        return http.get(path).json()
