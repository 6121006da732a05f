"""Domain errors: what went wrong, in words any layer can raise without knowing HTTP.

An error has a kind (bad request, unauthorized, ...), an internal `reason` that only goes to the
log, and optionally a `public` text that is safe to show the caller. The server (`api.errors`)
turns the kind into an HTTP status and step-ca's text; nothing below `api` knows either.
"""

from __future__ import annotations

from enum import Enum


class ErrorKind(Enum):
    """What kind of failure an error is; `api.errors` maps each to an HTTP status."""

    BAD_REQUEST = "bad request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not found"
    METHOD_NOT_ALLOWED = "method not allowed"
    INTERNAL = "internal"
    NOT_IMPLEMENTED = "not implemented"
    UNAVAILABLE = "unavailable"


class CAError(Exception):
    """A refused or failed request: `reason` is for the log, `public` (if any) for the caller.

    `verbatim` shows `public` exactly as given; otherwise the server may frame it in step-ca's
    wording for the kind.
    """

    def __init__(
        self, kind: ErrorKind, reason: str, *, public: str | None = None, verbatim: bool = False
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.public = public
        self.verbatim = verbatim


def bad_request(message: str) -> CAError:
    """A malformed request whose text is shown to the client (step-ca's errs.BadRequest)."""
    return CAError(ErrorKind.BAD_REQUEST, message, public=message)


def forbidden(message: str) -> CAError:
    """A forbidden request whose text is shown to the client (step-ca's errs.Forbidden)."""
    return CAError(ErrorKind.FORBIDDEN, message, public=message)


def unauthorized(reason: str) -> CAError:
    """Not authorized, with the default text; the reason is logged only."""
    return CAError(ErrorKind.UNAUTHORIZED, reason)


def unauthorized_public(message: str) -> CAError:
    """Not authorized, text shown (step-ca builds a few with errs.New, e.g. expired certs)."""
    return CAError(ErrorKind.UNAUTHORIZED, message, public=message)


def not_found(reason: str) -> CAError:
    """Not found, with the default text."""
    return CAError(ErrorKind.NOT_FOUND, reason)


def not_implemented(reason: str) -> CAError:
    """Not implemented, with the default text."""
    return CAError(ErrorKind.NOT_IMPLEMENTED, reason)


def internal(reason: str) -> CAError:
    """An internal failure, with the default text; the reason is logged only."""
    return CAError(ErrorKind.INTERNAL, reason)


def unavailable(reason: str) -> CAError:
    """A dependency (database, HSM) is down; the client may retry."""
    return CAError(ErrorKind.UNAVAILABLE, reason)
