"""Errors that carry an HTTP status and step-ca's public message.

step-ca shows the caller a fixed text per status unless the error was built with a specific,
safe message; the internal reason only goes to the log. Keeping both on one exception lets the
lower layers say why without ever leaking it.
"""

from __future__ import annotations

from http import HTTPStatus

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

_SPECIFIC_PREFIX: dict[int, str] = {
    400: "The request could not be completed: ",
    401: "The request lacked necessary authorization to be completed: ",
    403: "The request was forbidden by the certificate authority: ",
}


class CAError(Exception):
    """An error with an HTTP status; `reason` is for the log, `message` for the client."""

    def __init__(
        self, status: int, reason: str, *, public: str | None = None, verbatim: bool = False
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self._public = public
        self._verbatim = verbatim

    @property
    def message(self) -> str:
        """The text step-ca would show the client."""
        if self._public is not None and self._verbatim:
            return self._public
        if self._public is not None:
            prefix = _SPECIFIC_PREFIX.get(self.status)
            if prefix is not None:
                return f"{prefix}{self._public}."
            return self._public
        default = DEFAULT_MESSAGES.get(self.status)
        if default is None:
            try:
                return HTTPStatus(self.status).phrase
            except ValueError:
                return DEFAULT_MESSAGES[500]
        return default


def bad_request(message: str) -> CAError:
    """400 whose text is shown to the client (step-ca's errs.BadRequest)."""
    return CAError(400, message, public=message)


def forbidden(message: str) -> CAError:
    """403 whose text is shown to the client (step-ca's errs.Forbidden)."""
    return CAError(403, message, public=message)


def unauthorized(reason: str) -> CAError:
    """401 with the default text; the reason is logged only."""
    return CAError(401, reason)


def unauthorized_public(message: str) -> CAError:
    """401 whose text is shown (step-ca builds a few with errs.New, e.g. expired certificates)."""
    return CAError(401, message, public=message)


def not_found(reason: str) -> CAError:
    """404 with the default text."""
    return CAError(404, reason)


def not_implemented(reason: str) -> CAError:
    """501 with the default text."""
    return CAError(501, reason)


def internal(reason: str) -> CAError:
    """500 with the default text; the reason is logged only."""
    return CAError(500, reason)


def unavailable(reason: str) -> CAError:
    """503: a dependency (database, HSM) is down; the client may retry."""
    return CAError(503, reason)
