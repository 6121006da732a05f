"""Rendering and request parsing shared by every resource: JSON like Go's encoder, errors."""

from __future__ import annotations

import json
import logging
import re
from itertools import accumulate
from typing import Any

import falcon

from api.errors import http_error, status_message
from keystores import KeyStoreError, KeyStoreUnavailableError
from pki.errors import CAError, bad_request

log = logging.getLogger("stepstone.api")

MAX_BODY = 1 << 20
#: Deepest nesting of arrays and objects a request body may have. step-ca's bodies are at most
#: three levels deep (`/sign`'s `templateData`); 32 leaves room for any template data.
MAX_JSON_DEPTH = 32

# A JSON string, escapes included (an unterminated one does not match: json.loads refuses it).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = [1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256)]
# A \uD800-\uDFFF escape: perhaps a lone surrogate, which Python's json keeps and Go's makes U+FFFD.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def json_response(resp: falcon.Response, body: Any, status: int = 200) -> None:
    """A JSON body with a trailing newline, as step-ca's Go encoder writes it."""
    json_text_response(resp, json.dumps(body, separators=(",", ":")), status)


def json_text_response(resp: falcon.Response, text: str, status: int = 200) -> None:
    """`json_response` for a body already rendered as compact JSON text."""
    resp.status = status
    resp.content_type = "application/json"
    resp.text = text + "\n"


def json_depth(raw: bytes) -> int:
    """The deepest nesting of `[` and `{` in a JSON text, brackets inside strings ignored.

    Python's json module has no depth limit: it recurses once per level and a body nested
    100,000 deep ends in RecursionError (a 500), after costing a stack's worth of frames. So the
    depth is measured on the raw bytes before parsing. Every step runs in C (a regex drops the
    strings, `translate` keeps only the brackets, `accumulate` sums them) so a 1 MiB body costs
    milliseconds. Unbalanced brackets are left for json.loads to refuse.
    """
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


def read_json(req: falcon.Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is step-ca's 400.

    The size (Content-Length first, then what was read) and the nesting depth are checked
    before the body is parsed; lone surrogates become U+FFFD, as Go's decoder makes them.
    """
    length = req.content_length
    if length is not None and length > MAX_BODY:
        raise bad_request("error decoding json: request body too large")
    raw = req.bounded_stream.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise bad_request("error decoding json: request body too large")
    # Fewer opening brackets than the limit cannot nest deeper: most bodies skip the scan.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and json_depth(raw) > MAX_JSON_DEPTH:
        raise bad_request(f"error decoding json: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise bad_request("error decoding json") from None
    if not isinstance(body, dict):
        raise bad_request("error decoding json")
    if _SURROGATE_ESCAPE.search(raw):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in body.items()}
    return body


def _without_lone_surrogates(value: Any) -> Any:
    """Lone UTF-16 surrogates replaced by U+FFFD, as Go's decoder does: such text cannot be
    encoded (UTF-8, the database, a certificate) and must not reach what stores it."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


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
    status, message = http_error(ex)
    log.info("%s %s -> %d: %s", req.method, req.path, status, ex.reason)
    json_response(resp, {"status": status, "message": message}, status)


def handle_http_error(
    req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, _: Any
) -> None:
    """Falcon's own errors (unknown route, wrong method) in step-ca's error form."""
    status = ex.status_code
    json_response(resp, {"status": status, "message": status_message(status)}, status)
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
    json_response(resp, {"status": status, "message": status_message(status)}, status)
    if status == 503:
        resp.set_header("Retry-After", "5")


def handle_unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, _: Any) -> None:
    """Anything unforeseen is a 500 with the default text; the traceback stays in the log."""
    log.exception("%s %s -> 500", req.method, req.path)
    json_response(resp, {"status": 500, "message": status_message(500)}, 500)


class GetResource:
    """Base for read-only resources: HEAD answers like GET (falcon drops the body)."""

    def on_head(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        getattr(self, "on_get")(req, resp, **params)  # noqa: B009
