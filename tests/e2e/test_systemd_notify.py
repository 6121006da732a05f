"""systemd readiness against the real server: this test's datagram socket plays systemd.

READY=1 arrives only once a worker serves (one /health right after it succeeds), never at
gunicorn's boot; SIGHUP is RELOADING=1 then READY=1, a refused reload too (its STATUS says
so); SIGTERM is STOPPING=1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import CA, STEP_CA, CAFactory, clean_env

WAIT = 60.0


class FakeSystemd:
    """The notify socket: every datagram the service sends, as {KEY: value}."""

    def __init__(self, address: str, bind_to: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.settimeout(WAIT)
        self.seen: list[dict[str, str]] = []

    def next(self) -> dict[str, str]:
        data = self.sock.recv(65536).decode()
        message = dict(line.split("=", 1) for line in data.split("\n"))
        self.seen.append(message)
        return message

    def until(self, key: str) -> tuple[list[dict[str, str]], dict[str, str]]:
        """Messages up to (not including) the first with `key`, and that message."""
        before = []
        while True:
            message = self.next()
            if key in message:
                return before, message
            before.append(message)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(str(tmp_path / "notify"), str(tmp_path / "notify"))
    try:
        yield fake
    finally:
        fake.sock.close()


def start_notified(ca: CA, notify_socket: str) -> None:
    """`step-ca` with $NOTIFY_SOCKET set, not waited for: the socket says when it is ready.
    Stopped by the factory (ca.proc) at the end of the session."""
    env = clean_env(ca.steppath)
    env["NOTIFY_SOCKET"] = notify_socket
    ca.starts += 1
    log = ca.log_path.open("wb")
    ca._log_handles.append(log)
    ca.proc = subprocess.Popen(
        [str(STEP_CA), str(ca.ca_json), "--password-file", str(ca.password_file)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def test_ready_reloading_stopping(ca_factory: CAFactory, systemd: FakeSystemd) -> None:
    ca = ca_factory("notify", start=False)
    start_notified(ca, systemd.address)
    serving = f"serving on https://127.0.0.1:{ca.port}"

    before, ready = systemd.until("READY")
    # gunicorn's own "READY=1 / Gunicorn arbiter booted" never went out.
    assert before == [{"STATUS": "starting 2 workers"}]
    assert ready == {"READY": "1", "STATUS": serving}
    with ca.http() as http:  # once: READY=1 means it answers now
        assert http.get("/health").json() == {"status": "ok"}
    _, second = systemd.until("READY")  # the other worker
    assert second["READY"] == "1"

    os.kill(ca.pid, signal.SIGHUP)
    _, reloading = systemd.until("RELOADING")
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    assert reloading["STATUS"] == f"reloading {ca.ca_json}"
    for _ in range(2):  # each worker of the new generation, before the next reload
        _, ready = systemd.until("READY")
        assert ready["STATUS"] == serving
    with ca.http() as http:
        assert http.get("/health").status_code == 200

    # A broken ca.json: the reload is refused, the CA serves on and says so.
    good = ca.ca_json.read_text()
    ca.ca_json.write_text("{ not json")
    try:
        os.kill(ca.pid, signal.SIGHUP)
        systemd.until("RELOADING")
        _, ready = systemd.until("READY")
        assert ready["STATUS"].startswith(f"{serving}; the last reload failed: ")
    finally:
        ca.ca_json.write_text(good)

    os.kill(ca.pid, signal.SIGTERM)
    _, stopping = systemd.until("STOPPING")
    assert stopping["STOPPING"] == "1"
    assert ca.proc.wait(timeout=WAIT) == 0


def test_abstract_socket_name(ca_factory: CAFactory) -> None:
    name = f"stepstone-e2e-{os.getpid()}-{os.urandom(4).hex()}"
    systemd = FakeSystemd("@" + name, "\0" + name)
    try:
        ca = ca_factory("notify-abstract", start=False)
        start_notified(ca, systemd.address)
        systemd.until("READY")
        with ca.http() as http:
            assert http.get("/health").status_code == 200
    finally:
        systemd.sock.close()
