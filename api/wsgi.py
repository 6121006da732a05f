"""The WSGI side of the worker (api/worker.py): run the app on a whole request, and frame its
answer as HTTP/1.1 bytes ourselves.

Framing here rather than through h11 (which still parses every request) was measured: h11's
response side cost about 45 µs of CPU per request, a quarter of the front's own. The app's answer is
whole, so it always goes out with Content-Length; the app's own framing and hop-by-hop headers
are replaced, and a status or header that would break the framing (a line break, a NUL) is
refused rather than sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any

INTERNAL = (
    "The certificate authority encountered an Internal Server Error. "
    "Please see the certificate authority logs for more info."
)
Headers = list[tuple[str, str]]
Response = tuple[str, Headers, bytes]
"""The app's answer as WSGI gives it: status line ("201 Created"), headers, whole body."""

# Framing is ours: the app's own framing and hop-by-hop headers are dropped and replaced.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "date"})
_NO_BODY = (204, 304)
_REASONS = {
    400: "Bad Request",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def json_error(status: int, message: str) -> Response:
    """An error answer in step-ca's form, for what the worker refuses or the app botched."""
    body = b'{"status":%d,"message":"%s"}\n' % (status, message.encode())
    reason = _REASONS.get(status, "Internal Server Error" if status == 500 else "Error")
    return f"{status} {reason}", [("Content-Type", "application/json")], body


def call_app(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> Response:
    """Run the WSGI app on a complete request (in an app thread); the whole response body."""
    started: list[Any] = []

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Any:
        started[:] = [status, headers]
        return lambda _data: None  # the legacy write() callable; falcon never uses it

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return status, headers, body


def frame_response(
    status: str, headers: Headers, body: bytes, *, head: bool, close: bool, date: str
) -> bytes:
    """The bytes of a whole HTTP/1.1 response: the app's headers minus its framing, then
    Content-Length (a HEAD answer keeps the app's, as GET would have sent it), Date and,
    when the connection ends after it, `Connection: close`.

    ValueError when the app's status or headers would break the framing (a line break or
    NUL in them); UnicodeEncodeError for a character outside latin-1 (WSGI's rule)."""
    code = int(status[:3]) if status[:3].isdigit() else 0
    if not 200 <= code <= 599 or status[3:4] not in ("", " "):
        raise ValueError(f"bad status line {status!r}")
    parts = ["HTTP/1.1 ", status, "\r\n"]
    lines = 1
    length: str | None = None
    for name, value in headers:
        lower = name.lower()
        if lower in _FRAMING:
            if lower == "content-length":
                length = value
            continue
        parts += (name, ": ", value, "\r\n")
        lines += 1
    if code in _NO_BODY:
        body = b""
    elif head:
        if length is not None and length.isdigit():
            parts += ("Content-Length: ", length, "\r\n")
            lines += 1
        body = b""
    else:
        parts += ("Content-Length: ", str(len(body)), "\r\n")
        lines += 1
    text = "".join(parts)
    # Each line we wrote ends in one CRLF; any other CR, LF or NUL came from the app.
    if text.count("\n") != lines or text.count("\r") != lines or "\0" in text:
        raise ValueError("a line break or NUL in the response status or headers")
    text += f"Date: {date}\r\nConnection: close\r\n\r\n" if close else f"Date: {date}\r\n\r\n"
    return text.encode("latin-1") + body


class DateHeader:
    """The Date header, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")

    def get(self) -> str:
        now = int(time.time())
        second, value = self._cached
        if now != second:
            value = formatdate(now, usegmt=True)
            self._cached = (now, value)
        return value
