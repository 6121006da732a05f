"""`step-ca` start-up failures an operator can cause end in one line and a non-zero exit."""

from __future__ import annotations

import socket
import subprocess
from typing import Any

from tests.e2e.harness import CA, HOST, STEP_CA, CAFactory, clean_env


def _serve(ca: CA) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STEP_CA), str(ca.ca_json), "--password-file", str(ca.password_file)],
        capture_output=True,
        text=True,
        env=clean_env(ca.steppath),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_port_in_use_is_one_line(ca_factory: CAFactory) -> None:
    ca = ca_factory("port-in-use", start=False)
    with socket.socket() as busy:
        busy.bind((HOST, ca.port))
        busy.listen()
        proc = _serve(ca)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"step-ca: cannot listen on {HOST}:{ca.port}: address already in use"
    ], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_address_that_cannot_be_bound_is_one_line(ca_factory: CAFactory) -> None:
    """192.0.2.1 (TEST-NET-1) is never an address of this machine; nothing is sent to it."""

    def edit(config: dict[str, Any]) -> None:
        config["address"] = "192.0.2.1:9443"

    ca = ca_factory("unbindable", edit, start=False)
    proc = _serve(ca)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "step-ca: cannot listen on 192.0.2.1:9443: cannot assign requested address"
    ], proc.stderr
