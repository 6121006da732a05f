"""One log format for the whole step-ca process: the appliance, the API and gunicorn.

JSON lines by default (`{"time","level","logger","msg", ...fields}`), so a log shipper needs
no parser; `text` for people, one line per record. Either way a record is exactly one line:
client input reaches the log (paths, token subjects, headers), and a newline in it must not be
able to start a line of its own. JSON escapes control characters by itself; the text format
escapes every part of the line.

Fields come from `extra=` and from the request id of the request being served
(`REQUEST_ID`, set by the API's middleware), so an error logged while serving a request can be
matched with its request line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from contextvars import ContextVar
from enum import StrEnum
from typing import Any, TextIO

__all__ = [
    "REQUEST_ID",
    "JSONFormatter",
    "LogFormat",
    "TextFormatter",
    "configure",
    "escape",
]

#: The id of the request this thread is serving, if any.
REQUEST_ID: ContextVar[str | None] = ContextVar("stepstone_request_id", default=None)


class LogFormat(StrEnum):
    """`step-ca --log-format`."""

    json = "json"
    text = "text"


# C0 and C1 controls, DEL, and the two Unicode line separators: all of them can end or rewrite a
# line in some terminal, pager or `splitlines()`.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES: dict[int, str] = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_NEEDS_QUOTES = re.compile(r'[\s"=]')

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def escape(text: str) -> str:
    """`text` with control characters written as `\\n`, `\\x00`...: it stays on one line."""
    return text.translate(_ESCAPES) if _CONTROL.search(text) else text


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC with milliseconds, as step-ca's logs have it."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra=` fields, in the order they were given."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JSONFormatter(logging.Formatter):
    """One JSON object per line; json.dumps escapes control characters and non-ASCII."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: msg key=value ...` on one line, every part escaped."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record),
            record.levelname,
            escape(record.name) + ":",
            escape(record.getMessage()),
        ]
        for key, value in _fields(record).items():
            parts.append(f"{escape(key)}={_text_value(value)}")
        if record.exc_info:
            parts.append("exc=" + _text_value(self.formatException(record.exc_info)))
        if record.stack_info:
            parts.append("stack=" + _text_value(self.formatStack(record.stack_info)))
        return " ".join(parts)


def _text_value(value: object) -> str:
    """A field value for the text format: `-` for none, quoted when it has blanks."""
    if value is None:
        return "-"
    text = escape(value if isinstance(value, str) else str(value))
    if not text or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


class _RequestIdFilter(logging.Filter):
    """Stamp records logged while a request is served with that request's id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


_FORMATTERS: dict[str, type[logging.Formatter]] = {
    LogFormat.json: JSONFormatter,
    LogFormat.text: TextFormatter,
}


def configure(
    fmt: str = LogFormat.json, quiet: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Send every logger of the process to one stderr handler in `fmt`; `quiet` = WARNING+.

    Replaces the handler of an earlier call (tests call this more than once). gunicorn joins
    through `api.server.GunicornLogger`; Python warnings go through the log as well, so
    nothing reaches stderr in another shape.
    """
    try:
        formatter = _FORMATTERS[fmt]()
    except KeyError:
        raise ValueError(f"unknown log format {fmt!r}: expected json or text") from None
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_stepstone", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    handler._stepstone = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    logging.captureWarnings(True)
    return handler
