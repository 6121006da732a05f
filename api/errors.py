"""Domain errors as HTTP: the status of each error kind and step-ca's text for it.

step-ca shows the caller a fixed text per status unless the error was built with a specific,
safe message (framed with a per-status prefix, or verbatim); the internal reason only goes to
the log.
"""

from __future__ import annotations

from http import HTTPStatus

from pki.errors import CAError, ErrorKind

STATUS: dict[ErrorKind, int] = {
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.METHOD_NOT_ALLOWED: 405,
    ErrorKind.INTERNAL: 500,
    ErrorKind.NOT_IMPLEMENTED: 501,
    ErrorKind.UNAVAILABLE: 503,
}

DEFAULT_MESSAGES: dict[int, str] = {
    400: "The request could not be completed; malformed or missing data. "
    "Please see the certificate authority logs for more info.",
    401: "The request lacked necessary authorization to be completed. "
    "Please see the certificate authority logs for more info.",
    403: "The request was forbidden by the certificate authority. "
    "Please see the certificate authority logs for more info.",
    404: "The requested resource could not be found. "
    "Please see the certificate authority logs for more info.",
    500: "The certificate authority encountered an Internal Server Error. "
    "Please see the certificate authority logs for more info.",
    501: "The requested method is not implemented by the certificate authority. "
    "Please see the certificate authority logs for more info.",
    503: "The certificate authority is temporarily unavailable. "
    "Please see the certificate authority logs for more info.",
}

SPECIFIC_PREFIX: dict[int, str] = {
    400: "The request could not be completed: ",
    401: "The request lacked necessary authorization to be completed: ",
    403: "The request was forbidden by the certificate authority: ",
}


def status_message(status: int, public: str | None = None, *, verbatim: bool = False) -> str:
    """The text step-ca shows for `status`: `public` (prefixed or verbatim) or the default."""
    if public is not None and verbatim:
        return public
    if public is not None:
        prefix = SPECIFIC_PREFIX.get(status)
        return public if prefix is None else f"{prefix}{public}."
    default = DEFAULT_MESSAGES.get(status)
    if default is not None:
        return default
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return DEFAULT_MESSAGES[500]


def http_error(err: CAError) -> tuple[int, str]:
    """The HTTP status and client text of a domain error."""
    status = STATUS[err.kind]
    return status, status_message(status, err.public, verbatim=err.verbatim)
