"""api.server: gunicorn's own lines in our format and level; a bind failure is one line."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator

import pytest
from gunicorn.config import Config

from api.server import GunicornLogger, ListenError, check_listen
from appliance.logs import configure
from tests.logging_state import root_logging_restored


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    with root_logging_restored():
        yield io.StringIO()


@pytest.mark.parametrize("quiet", [False, True])
def test_gunicorn_logs_in_our_format_and_level(out: io.StringIO, quiet: bool) -> None:
    configure("json", quiet=quiet, stream=out)
    cfg = Config()
    cfg.set("loglevel", "debug")  # ignored: configure() decides
    glog = GunicornLogger(cfg)
    glog.info("Starting gunicorn %s", "27")
    glog.info("Booting worker with pid: %s", 42)
    glog.error("Invalid request from ip=%s: %s", "127.0.0.1", "bad\nline")
    glog.access(None, None, {}, None)
    assert not glog.access_log_enabled
    glog.setup(cfg)  # gunicorn's reload runs setup again: still one handler, still ours
    glog.warning("after reload")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    levels = [r["level"] for r in records]
    assert levels == (["error", "warning"] if quiet else ["info", "info", "error", "warning"])
    assert {r["logger"] for r in records} == {"gunicorn.error"}
    assert records[-2]["msg"].endswith("bad\nline")
    assert logging.getLogger("gunicorn.error").handlers == []
    assert logging.getLogger("gunicorn.access").handlers == []


def test_check_listen_names_the_address_and_the_reason() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ListenError) as info:
            check_listen("127.0.0.1", port)
    assert str(info.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"


def test_check_listen_accepts_a_free_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_listen("127.0.0.1", port)  # nothing raised; the port is left free
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


def test_check_listen_ipv6_is_bracketed() -> None:
    with pytest.raises(ListenError, match=r"^cannot listen on \[2001:db8::1\]:9443: "):
        check_listen("2001:db8::1", 9443)
