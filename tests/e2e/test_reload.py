"""`kill -HUP` reloads ca.json without dropping requests; a bad ca.json is refused."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from pki.jose import public_jwk
from tests.e2e.harness import CA, CAFactory


def _names(ca: CA) -> list[str]:
    with ca.http() as http:
        return [p["name"] for p in http.get("/provisioners").json()["provisioners"]]


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_sighup_reloads_configuration_without_dropping_requests(ca_factory: CAFactory) -> None:
    ca = ca_factory("reload")
    errors: list[str] = []
    done = threading.Event()

    def hammer() -> None:
        with ca.http(timeout=30) as http:
            while not done.is_set():
                try:
                    resp = http.get("/provisioners")
                    if resp.status_code != 200:
                        errors.append(str(resp.status_code))
                except httpx.HTTPError as exc:
                    errors.append(f"{time.time():.4f} {exc!r}")

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        key = public_jwk(ec.generate_private_key(ec.SECP256R1()))

        def add(cfg: dict[str, Any]) -> None:
            cfg["authority"]["provisioners"].append({"type": "JWK", "name": "second", "key": key})

        ca.edit_config(add)
        os.kill(ca.pid, signal.SIGHUP)
        assert _wait_for(lambda: _names(ca) == ["admin", "second"], 30), _names(ca)

        # A broken ca.json is refused: the running configuration stays.
        good = json.loads(ca.ca_json.read_text())
        ca.ca_json.write_text("{ not json")
        os.kill(ca.pid, signal.SIGHUP)
        assert _wait_for(lambda: "keeping the running configuration" in ca.log_path.read_text(), 30)
        assert _names(ca) == ["admin", "second"]

        # So is one of the wrong shape, with every problem named.
        good["tls"]["minVersion"] = "abc"
        good["db"]["dataSource"] = 5
        good["authority"]["provisioners"].append({"type": "JWK", "name": "third", "key": key})
        ca.ca_json.write_text(json.dumps(good))
        os.kill(ca.pid, signal.SIGHUP)
        problems = (
            "db.dataSource: expected a string, got 5; "
            "tls.minVersion: expected a TLS version such as 1.2 or 1.3"
        )
        assert _wait_for(lambda: problems in ca.log_path.read_text(), 30)
        assert _names(ca) == ["admin", "second"]
    finally:
        done.set()
        thread.join()
    assert errors == []
