"""Rendering and request parsing shared by every resource: JSON like Go's encoder, errors."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from keystores import KeyStoreError, KeyStoreUnavailableError
from provisioners.errors import CAError, bad_request

log = logging.getLogger("stepstone.api")

MAX_BODY = 1 << 20


def json_response(resp: falcon.Response, body: Any, status: int = 200) -> None:
    """A JSON body with a trailing newline, as step-ca's Go encoder writes it."""
    resp.status = status
    resp.content_type = "application/json"
    resp.text = json.dumps(body, separators=(",", ":")) + "\n"


def read_json(req: falcon.Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is step-ca's 400."""
    length = req.content_length
    if length is not None and length > MAX_BODY:
        raise bad_request("error decoding json: request body too large")
    raw = req.bounded_stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise bad_request("error decoding json: request body too large")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("error decoding json") from None
    if not isinstance(body, dict):
        raise bad_request("error decoding json")
    return body


def optional_string(body: dict[str, Any], key: str) -> str | None:
    """A field that must be a string when present."""
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request("error decoding json")
    return value


def handle_ca_error(req: falcon.Request, resp: falcon.Response, ex: CAError, _: Any) -> None:
    """Render a CAError as `{"status","message"}`; log the internal reason, never send it."""
    log.info("%s %s -> %d: %s", req.method, req.path, ex.status, ex.reason)
    json_response(resp, {"status": ex.status, "message": ex.message}, ex.status)


def handle_http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, _: Any
) -> None:
    """Falcon's own errors (unknown route, wrong method) in step-ca's error form."""
    status = ex.status_code
    err = CAError(status, ex.title or str(status))
    json_response(resp, {"status": status, "message": err.message}, status)
    if ex.headers:
        for name, value in dict(ex.headers).items():
            resp.set_header(name, value)


def handle_keystore_error(
    req: falcon.Request, resp: falcon.Response, ex: KeyStoreError, _: Any
) -> None:
    """The signing key's store failed: 503 when it is unavailable (HSM gone, session lost;
    the client may retry), 500 for anything else (a wrong PIN, a missing key)."""
    status = 503 if isinstance(ex, KeyStoreUnavailableError) else 500
    log.error("%s %s -> %d: key store error: %s", req.method, req.path, status, ex)
    err = CAError(status, str(ex))
    json_response(resp, {"status": status, "message": err.message}, status)
    if status == 503:
        resp.set_header("Retry-After", "5")


def handle_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    """Anything unforeseen is a 500 with the default text; the traceback stays in the log."""
    log.exception("%s %s -> 500", req.method, req.path)
    err = CAError(500, repr(ex))
    json_response(resp, {"status": 500, "message": err.message}, 500)


class GetResource:
    """Base for read-only resources: HEAD answers like GET (falcon drops the body)."""

    def on_head(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        getattr(self, "on_get")(req, resp, **params)  # noqa: B009
