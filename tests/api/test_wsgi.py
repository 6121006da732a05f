"""api.wsgi: the bridge to the app (the whole body, the result closed) and our framing of its
answer (Content-Length, Date, close; nothing the app sends can break a frame)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api.wsgi import call_app, frame_response


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
        "201 Created",
        [("Content-Type", "application/json")],
        b'{"status":"ok"}',
    )
    assert body.closed and seen["PATH_INFO"] == "/sign"


def test_call_app_lets_an_app_failure_through() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        call_app(app, {})


def test_frame_response_sets_our_framing_after_the_apps_headers() -> None:
    out = frame_response(
        "201 Created",
        [("Content-Type", "text/plain"), ("content-length", "99"), ("Connection", "x"),
         ("Transfer-Encoding", "chunked"), ("X-Request-Id", "abc")],
        b"hello",
        head=False,
        close=False,
        date="Thu, 01 Jan 2026 00:00:00 GMT",
    )
    assert out == (
        b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-Request-Id: abc\r\n"
        b"Content-Length: 5\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n\r\nhello"
    )


def test_frame_response_head_keeps_the_apps_length_and_sends_no_body() -> None:
    out = frame_response("200 OK", [("Content-Length", "42")], b"ignored", head=True,
                         close=True, date="D")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nDate: D\r\nConnection: close\r\n\r\n"
    no_content = frame_response("204 No Content", [], b"x", head=False, close=False, date="D")
    assert no_content == b"HTTP/1.1 204 No Content\r\nDate: D\r\n\r\n"


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("200 OK", [("X-Evil", "a\r\nSet-Cookie: x")]),
        ("200 OK", [("X-Evil", "a\nb")]),
        ("200 OK", [("X-Evil", "a\rb")]),
        ("200 OK", [("X-Evil\r\nInjected", "b")]),
        ("200 OK", [("X-Evil", "a\0b")]),
        ("200 OK\r\nInjected: yes", []),
        ("2000", []),
        ("OK", []),
        ("99 Low", []),
    ],
)
def test_frame_response_refuses_what_would_break_the_framing(
    status: str, headers: list[tuple[str, str]]
) -> None:
    with pytest.raises(ValueError):
        frame_response(status, headers, b"", head=False, close=False, date="D")
