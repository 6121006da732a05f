"""POST /sign edge cases checked against step-ca's source: audiences, leeway, token ids,
validity windows, the common-name rule, the order of the CSR checks, and body decoding."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.harness import (
    BAD_REQUEST,
    DEFAULT_401,
    FORBIDDEN,
    csr_pem,
    error_body,
    load_chain,
    make_csr,
)
from tests.e2e.tokens import TokenMaker

SLACK = timedelta(minutes=2)


def _post(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return http.post("/1.0/sign", json=body)


def _body(sub: str, ott: str, sans: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"csr": csr_pem(make_csr(sub, sans if sans is not None else [sub])), "ott": ott,
            **extra}


# --- audiences ------------------------------------------------------------------------------


def _accepted_audiences(tokens: TokenMaker) -> dict[str, Any]:
    port = tokens.ca_url.rsplit(":", 1)[1]
    return {
        "list": [tokens.audience],
        "localhost": f"https://localhost:{port}/1.0/sign",
        "no-port-no-version": "https://127.0.0.1/sign",
        "legacy": "step-certificate-authority",
    }


@pytest.mark.parametrize("case", ["list", "localhost", "no-port-no-version", "legacy"])
def test_accepted_audiences(http: httpx.Client, tokens: TokenMaker, case: str) -> None:
    ott = tokens.token("aud.example", aud=_accepted_audiences(tokens)[case])
    resp = _post(http, _body("aud.example", ott))
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    "aud",
    ["http://127.0.0.1/1.0/sign", "https://127.0.0.1/1.0/renew", "https://127.0.0.2/1.0/sign",
     "https://127.0.0.1/2.0/sign"],
)
def test_refused_audiences(http: httpx.Client, tokens: TokenMaker, aud: str) -> None:
    resp = _post(http, _body("aud.example", tokens.token("aud.example", aud=aud)))
    assert resp.status_code == 401
    assert resp.json() == error_body(401, DEFAULT_401)


# --- times: one minute of leeway ------------------------------------------------------------


def test_nbf_within_leeway_accepted(http: httpx.Client, tokens: TokenMaker) -> None:
    now = int(time.time())
    ott = tokens.token("leeway.example", iat=now, nbf=now + 20, exp=now + 300)
    assert _post(http, _body("leeway.example", ott)).status_code == 201


def test_exp_within_leeway_accepted(http: httpx.Client, tokens: TokenMaker) -> None:
    now = int(time.time())
    ott = tokens.token("leeway.example", iat=now, nbf=now - 300, exp=now - 20)
    assert _post(http, _body("leeway.example", ott)).status_code == 201


def test_iat_in_the_future_refused(http: httpx.Client, tokens: TokenMaker) -> None:
    now = int(time.time())
    ott = tokens.token("iat.example", iat=now + 300, nbf=now, exp=now + 600)
    resp = _post(http, _body("iat.example", ott))
    assert resp.status_code == 401
    assert resp.json() == error_body(401, DEFAULT_401)


# --- claims ---------------------------------------------------------------------------------


def test_token_without_jti_is_single_use(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("nojti.example", jti=None)
    assert _post(http, _body("nojti.example", ott)).status_code == 201
    again = _post(http, _body("nojti.example", ott))
    assert again.status_code == 401
    assert again.json() == error_body(401, DEFAULT_401)


def test_token_without_sans_defaults_to_subject(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("plain.example", omit=("sans",))
    resp = _post(http, _body("plain.example", ott))
    assert resp.status_code == 201, resp.text
    (leaf,) = load_chain(resp.json()["crt"])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["plain.example"]


def test_empty_subject_refused(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("", ["x.example"])
    resp = _post(http, {"csr": csr_pem(make_csr(None, ["x.example"])), "ott": ott})
    assert resp.status_code == 401
    assert resp.json() == error_body(401, DEFAULT_401)


# --- validity -------------------------------------------------------------------------------


def test_not_before_and_not_after_durations(http: httpx.Client, tokens: TokenMaker) -> None:
    """An explicit notBefore is not backdated; a notAfter duration counts from it."""
    before = datetime.now(UTC)
    ott = tokens.token("window.example")
    resp = _post(http, _body("window.example", ott, notBefore="1m", notAfter="2h"))
    assert resp.status_code == 201, resp.text
    (leaf,) = load_chain(resp.json()["crt"])
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(hours=2)
    assert abs(leaf.not_valid_before_utc - (before + timedelta(minutes=1))) <= SLACK


def test_not_after_rfc3339(http: httpx.Client, tokens: TokenMaker) -> None:
    target = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    ott = tokens.token("abs.example")
    resp = _post(http, _body("abs.example", ott,
                             notAfter=target.isoformat().replace("+00:00", "Z")))
    assert resp.status_code == 201, resp.text
    (leaf,) = load_chain(resp.json()["crt"])
    assert leaf.not_valid_after_utc == target


def test_not_after_in_the_past(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("past.example")
    resp = _post(http, _body("past.example", ott, notAfter="-1h"))
    assert resp.status_code == 400
    body = resp.json()
    assert body["status"] == 400
    assert re.fullmatch(
        re.escape(BAD_REQUEST + "notAfter cannot be in the past; na=")
        + r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC\.",
        body["message"],
    ), body


def test_duration_under_minimum(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("tiny.example")
    resp = _post(http, _body("tiny.example", ott, notAfter="1m"))
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403,
        FORBIDDEN + "requested duration of 2m0s is less than the authorized minimum "
        "certificate duration of 5m0s.",
    )


# --- body decoding (step-ca decodes csr and times while decoding the JSON) -----------------


@pytest.mark.parametrize(
    "field,value",
    [("csr", "garbage"), ("csr", 42), ("ott", 42), ("notAfter", "abc"), ("notBefore", "abc"),
     ("notAfter", 5)],
    ids=["csr-not-pem", "csr-number", "ott-number", "notAfter-garbage", "notBefore-garbage",
         "notAfter-number"],
)
def test_undecodable_fields(
    http: httpx.Client, tokens: TokenMaker, field: str, value: object
) -> None:
    body = _body("dec.example", tokens.token("dec.example"))
    body[field] = value
    resp = _post(http, body)
    assert resp.status_code == 400
    assert resp.json() == error_body(400, BAD_REQUEST + "error decoding json.")


# --- the common name (JWK: commonNameValidator(claims.Subject)) ----------------------------


def test_common_name_other_than_subject(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("probe.example.com")
    csr = make_csr("other.example.com", [])
    resp = _post(http, {"csr": csr_pem(csr), "ott": ott})
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403,
        FORBIDDEN + "certificate request does not contain the valid common name - "
        "got other.example.com, want probe.example.com.",
    )


def test_common_name_must_be_the_subject_not_a_san(
    http: httpx.Client, tokens: TokenMaker
) -> None:
    ott = tokens.token("probe.example.com", ["probe.example.com", "alt.example.com"])
    csr = make_csr("alt.example.com", ["probe.example.com", "alt.example.com"])
    resp = _post(http, {"csr": csr_pem(csr), "ott": ott})
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403,
        FORBIDDEN + "certificate request does not contain the valid common name - "
        "got alt.example.com, want probe.example.com.",
    )


def test_csr_without_common_name_accepted(http: httpx.Client, tokens: TokenMaker) -> None:
    ott = tokens.token("nocn.example")
    resp = _post(http, {"csr": csr_pem(make_csr(None, ["nocn.example"])), "ott": ott})
    assert resp.status_code == 201, resp.text


def test_key_is_checked_before_sans(http: httpx.Client, tokens: TokenMaker) -> None:
    """step-ca's JWK validators run common name, public key, then SANs."""
    key = rsa.generate_private_key(65537, 1024)
    ott = tokens.token("order.example", ["order.example"])
    resp = _post(http, {"csr": csr_pem(make_csr("order.example", ["wrong.example"], key)),
                        "ott": ott})
    assert resp.status_code == 403
    assert resp.json() == error_body(
        403, FORBIDDEN + "certificate request RSA key must be at least 2048 bits (256 bytes)."
    )


def test_sha_claim_is_not_checked(http: httpx.Client, tokens: TokenMaker) -> None:
    """step-ca never validates `sha`: it is a client convenience."""
    ott = tokens.token("sha.example", extra={"sha": "0" * 64})
    assert _post(http, _body("sha.example", ott)).status_code == 201
