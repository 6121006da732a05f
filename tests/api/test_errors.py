"""api.errors: each domain error kind becomes step-ca's HTTP status and text."""

from __future__ import annotations

import pytest

from api.errors import DEFAULT_MESSAGES, STATUS, http_error, status_message
from pki.errors import (
    CAError,
    ErrorKind,
    bad_request,
    forbidden,
    internal,
    not_found,
    not_implemented,
    unauthorized,
    unauthorized_public,
    unavailable,
)

PLEASE = "Please see the certificate authority logs for more info."


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        (
            ErrorKind.BAD_REQUEST,
            400,
            f"The request could not be completed; malformed or missing data. {PLEASE}",
        ),
        (
            ErrorKind.UNAUTHORIZED,
            401,
            f"The request lacked necessary authorization to be completed. {PLEASE}",
        ),
        (
            ErrorKind.FORBIDDEN,
            403,
            f"The request was forbidden by the certificate authority. {PLEASE}",
        ),
        (ErrorKind.NOT_FOUND, 404, f"The requested resource could not be found. {PLEASE}"),
        (ErrorKind.METHOD_NOT_ALLOWED, 405, "Method Not Allowed"),
        (
            ErrorKind.INTERNAL,
            500,
            f"The certificate authority encountered an Internal Server Error. {PLEASE}",
        ),
        (
            ErrorKind.NOT_IMPLEMENTED,
            501,
            f"The requested method is not implemented by the certificate authority. {PLEASE}",
        ),
        (
            ErrorKind.UNAVAILABLE,
            503,
            f"The certificate authority is temporarily unavailable. {PLEASE}",
        ),
    ],
)
def test_each_kind_has_its_status_and_default_text(
    kind: ErrorKind, status: int, message: str
) -> None:
    assert http_error(CAError(kind, "internal detail")) == (status, message)


def test_every_kind_is_mapped() -> None:
    assert set(STATUS) == set(ErrorKind)


def test_the_reason_never_reaches_the_client() -> None:
    status, message = http_error(unauthorized("token signed by key 1234"))
    assert status == 401 and "1234" not in message


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (bad_request("invalid csr"), (400, "The request could not be completed: invalid csr.")),
        (
            unauthorized_public("certificate expired"),
            (
                401,
                "The request lacked necessary authorization to be completed: certificate expired.",
            ),
        ),
        (
            forbidden("invalid SANs"),
            (403, "The request was forbidden by the certificate authority: invalid SANs."),
        ),
        # No prefix for the other statuses: the public text is shown as given.
        (
            CAError(
                ErrorKind.NOT_FOUND, "no serial", public="certificate with serial '9' was not found"
            ),
            (404, "certificate with serial '9' was not found"),
        ),
        (
            CAError(ErrorKind.INTERNAL, "aud", public="error validating renew token"),
            (500, "error validating renew token"),
        ),
    ],
)
def test_public_text_gets_the_status_prefix(err: CAError, expected: tuple[int, str]) -> None:
    assert http_error(err) == expected


def test_verbatim_public_text_is_shown_as_given() -> None:
    err = CAError(
        ErrorKind.UNAUTHORIZED,
        "disabled: bad key",
        public='provisioner "x" is disabled',
        verbatim=True,
    )
    assert http_error(err) == (401, 'provisioner "x" is disabled')


def test_factories_keep_their_kind_and_default_text() -> None:
    assert http_error(not_found("gone")) == (404, DEFAULT_MESSAGES[404])
    assert http_error(not_implemented("no")) == (501, DEFAULT_MESSAGES[501])
    assert http_error(internal("boom")) == (500, DEFAULT_MESSAGES[500])
    assert http_error(unavailable("db down")) == (503, DEFAULT_MESSAGES[503])


def test_status_without_a_default_text_uses_its_phrase() -> None:
    assert status_message(413) == "Request Entity Too Large"
    assert status_message(599) == DEFAULT_MESSAGES[500]
