"""RFC 8555 problem documents (`application/problem+json`), raised as one exception type."""

from __future__ import annotations

from typing import Any

PREFIX = "urn:ietf:params:acme:error:"
#: The HTTP status of each problem type, as step-ca answers them.
STATUS = {
    "accountDoesNotExist": 400,
    "alreadyRevoked": 400,
    "badCSR": 400,
    "badNonce": 400,
    "badRevocationReason": 400,
    "badSignatureAlgorithm": 400,
    "malformed": 400,
    "rejectedIdentifier": 400,
    "unsupportedIdentifier": 400,
    "orderNotReady": 403,
    "unauthorized": 401,
    "connection": 400,
    "incorrectResponse": 400,
    "serverInternal": 500,
}


class ACMEProblem(Exception):
    """A request ACME refuses: `kind` is the error type without its URN prefix."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status or STATUS.get(kind, 400)

    def document(self) -> dict[str, Any]:
        return {"type": PREFIX + self.kind, "detail": self.detail, "status": self.status}


def malformed(detail: str) -> ACMEProblem:
    return ACMEProblem("malformed", detail)


def unauthorized(detail: str) -> ACMEProblem:
    return ACMEProblem("unauthorized", detail)


def not_found(what: str) -> ACMEProblem:
    return ACMEProblem("malformed", f"{what} not found", 404)
