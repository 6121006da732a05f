"""api.connection: the limits read from ca.json, and the WSGI bridge to the app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.connection import Limits, call_app
from appliance.config_schema import ServerLimitsSchema


def test_limits_default_when_absent() -> None:
    assert Limits.from_config(None) == Limits()
    assert Limits.from_config(ServerLimitsSchema()) == Limits()
    # null and "" mean the default, as in Go.
    unset = ServerLimitsSchema.model_validate({"requestTimeout": "", "maxConnections": None})
    assert Limits.from_config(unset) == Limits()


def test_limits_from_go_durations() -> None:
    limits = Limits.from_config(
        ServerLimitsSchema.model_validate(
            {"requestTimeout": "1m30s", "handshakeTimeout": "500ms", "keepAliveTimeout": "2s",
             "maxConnections": 7}
        )
    )
    assert (limits.request_timeout, limits.handshake_timeout, limits.keepalive_timeout) == (
        90.0,
        0.5,
        2.0,
    )
    assert limits.max_connections == 7
    assert limits.max_body == Limits().max_body


class _Body:
    """A WSGI result with close(), which the bridge must call."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b'{"status":'
        yield b'"ok"}'

    def close(self) -> None:
        self.closed = True


def test_call_app_joins_the_body_and_closes_it() -> None:
    body = _Body()
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> _Body:
        seen.update(environ)
        start_response("201 Created", [("Content-Type", "application/json")])
        return body

    status, headers, data = call_app(app, {"PATH_INFO": "/sign"})
    assert (status, headers, data) == (
        201,
        [(b"Content-Type", b"application/json")],
        b'{"status":"ok"}',
    )
    assert body.closed and seen["PATH_INFO"] == "/sign"


def test_call_app_lets_an_app_failure_through() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        call_app(app, {})
