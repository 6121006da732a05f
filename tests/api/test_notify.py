"""api.notify: sd_notify datagrams on a real AF_UNIX socket, by path and abstract name."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.notify import ENVIRONMENT, Notifier, status_field


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's notify socket, and its $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        yield sock, str(path)


def test_ready_reaches_the_socket(systemd: tuple[socket.socket, str]) -> None:
    sock, address = systemd
    assert Notifier(address).ready("serving on https://127.0.0.1:9000")
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving on https://127.0.0.1:9000"


def test_abstract_socket_names() -> None:
    name = f"stepstone-test-{os.getpid()}-{os.urandom(4).hex()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert Notifier("@" + name).stopping("stopping")
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_reloading_carries_the_monotonic_time(systemd: tuple[socket.socket, str]) -> None:
    sock, address = systemd
    Notifier(address).reloading("reloading /etc/stepstone/ca.json")
    fields = sock.recv(4096).decode().split("\n")
    assert fields[0] == "RELOADING=1"
    key, value = fields[1].split("=")
    assert key == "MONOTONIC_USEC" and int(value) > 0
    assert fields[2] == "STATUS=reloading /etc/stepstone/ca.json"


def test_status_stays_one_field(systemd: tuple[socket.socket, str]) -> None:
    """A newline in a status (say, from an error message) cannot add a field such as READY=1."""
    sock, address = systemd
    Notifier(address).status("reload failed:\nREADY=1")
    assert sock.recv(4096) == b"STATUS=reload failed: READY=1"
    assert status_field("a\r\n\tb") == "STATUS=a b"


def test_taken_out_of_the_environment(
    systemd: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Children (and gunicorn's own early READY=1) never see the socket; this object keeps it."""
    _, address = systemd
    monkeypatch.setenv(ENVIRONMENT, address)
    notifier = Notifier.from_environment()
    assert ENVIRONMENT not in os.environ
    assert notifier.address == address


def test_without_a_socket_nothing_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENVIRONMENT, raising=False)
    assert not Notifier.from_environment().ready("serving")
    assert not Notifier("").ready("serving")
    # A socket that went away is not the CA's problem: nothing raised, False returned.
    assert not Notifier(str(tmp_path / "gone")).ready("serving")
