"""tls-alpn-01 against a real TLS responder on 127.0.0.1: the handshake's SNI and ALPN, and
each way a challenge certificate can be wrong."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from cryptography import x509

from appliance.acme import tlsalpn01
from tests.acme_tlsalpn import ChallengeServer, challenge_certificate
from tests.e2e.harness import free_port

NAME = "alpn.stepstone.test"
KEY_AUTH = "token-abc.thumbprint-xyz"
PREFIX = "urn:ietf:params:acme:error:"


def run(server: ChallengeServer, kind: str = "dns", value: str = NAME) -> tuple[str, bool]:
    problem, again = tlsalpn01.check(kind, value, "127.0.0.1", server.port, KEY_AUTH, 10.0)
    if problem is None:
        return "", again
    return f"{problem['type'].removeprefix(PREFIX)}: {problem['detail']}", again


def test_a_right_certificate_passes_with_sni_and_alpn() -> None:
    cert, key = challenge_certificate([x509.DNSName(NAME)], KEY_AUTH)
    with ChallengeServer(cert, key) as srv:
        assert run(srv) == ("", False)
    assert srv.seen == [(NAME, "acme-tls/1")]


def test_an_ip_identifier_uses_the_reverse_name_as_sni() -> None:
    cert, key = challenge_certificate([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], KEY_AUTH)
    with ChallengeServer(cert, key) as srv:
        assert run(srv, "ip", "127.0.0.1") == ("", False)
    assert srv.seen == [("1.0.0.127.in-addr.arpa", "acme-tls/1")]


@pytest.mark.parametrize(
    ("sans", "options", "why"),
    [
        ([NAME], {"digest": hashlib.sha256(b"other").digest()}, "acmeIdentifier is "),
        ([NAME], {"critical": False}, "is not critical"),
        ([NAME], {"extension": False}, "no acmeIdentifier extension"),
        ([NAME], {"digest": b"short"}, "is malformed"),
        ([NAME, "other.test"], {}, "only subjectAltName"),
        (["OTHER.test"], {}, "only subjectAltName"),
        ([], {}, "only subjectAltName"),
    ],
)
def test_a_wrong_certificate_is_an_incorrect_response(
    sans: list[str], options: dict[str, object], why: str
) -> None:
    cert, key = challenge_certificate([x509.DNSName(n) for n in sans], KEY_AUTH, **options)  # type: ignore[arg-type]
    with ChallengeServer(cert, key) as srv:
        text, again = run(srv)
    assert text.startswith("incorrectResponse: incorrect certificate for tls-alpn-01")
    assert why in text
    assert not again


def test_the_name_matches_case_insensitively() -> None:
    cert, key = challenge_certificate([x509.DNSName(NAME.upper())], KEY_AUTH)
    with ChallengeServer(cert, key) as srv:
        assert run(srv) == ("", False)


def test_a_server_without_acme_tls_alpn_is_a_tls_problem() -> None:
    cert, key = challenge_certificate([x509.DNSName(NAME)], KEY_AUTH)
    with ChallengeServer(cert, key, alpn=["h2", "http/1.1"]) as srv:
        text, _ = run(srv)
    assert text.startswith("tls: ")


def test_nothing_listening_is_a_connection_problem_worth_retrying() -> None:
    problem, again = tlsalpn01.check("dns", NAME, "127.0.0.1", free_port(), KEY_AUTH, 10.0)
    assert problem is not None and again
    assert problem["type"] == PREFIX + "connection"
    assert "error doing TLS dial for 127.0.0.1:" in problem["detail"]
