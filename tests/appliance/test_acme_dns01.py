"""dns-01 and the CA's name lookups, against the test DNS server on 127.0.0.1 (never the
system's resolver): the TXT digest, wildcards, the problems, `--resolver`'s syntax."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator

import dns.message
import dns.query
import pytest

from appliance.acme import dns01
from tests.acme_dns import DNSServer

NAME = "www.stepstone.test"
KEY_AUTH = "token-abc.thumbprint-xyz"


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        yield srv


def ns(server: DNSServer) -> tuple[str, int]:
    return ("127.0.0.1", server.port)


def test_txt_value_is_base64url_of_sha256_as_openssl_computes_it() -> None:
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary"],
        input=KEY_AUTH.encode(),
        capture_output=True,
        check=True,
    ).stdout
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert dns01.txt_value(KEY_AUTH) == expected
    assert "=" not in expected and len(expected) == 43


def test_txt_name_of_a_wildcard_is_its_base_name() -> None:
    assert dns01.txt_name("*.wild.stepstone.test") == "_acme-challenge.wild.stepstone.test"
    assert dns01.txt_name("a.test.") == "_acme-challenge.a.test"


def test_the_right_txt_record_among_others_passes(server: DNSServer) -> None:
    server.set_txt("_acme-challenge." + NAME, "something-else", dns01.txt_value(KEY_AUTH))
    assert dns01.check(NAME, KEY_AUTH, ns(server), 5.0) == (None, False)
    assert server.asked("_acme-challenge." + NAME, "TXT")


def test_a_wildcard_is_checked_at_its_base_name(server: DNSServer) -> None:
    server.set_txt("_acme-challenge.wild.stepstone.test", dns01.txt_value(KEY_AUTH))
    assert dns01.check("*.wild.stepstone.test", KEY_AUTH, ns(server), 5.0) == (None, False)


def test_a_wrong_value_is_an_incorrect_response_and_final(server: DNSServer) -> None:
    server.set_txt("_acme-challenge." + NAME, "wrong")
    problem, again = dns01.check(NAME, KEY_AUTH, ns(server), 5.0)
    assert problem is not None and not again
    assert problem["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    assert dns01.txt_value(KEY_AUTH) in problem["detail"] and "wrong" in problem["detail"]


def test_a_missing_record_is_a_dns_problem_worth_retrying(server: DNSServer) -> None:
    problem, again = dns01.check(NAME, KEY_AUTH, ns(server), 5.0)
    assert problem is not None and again
    assert problem["type"] == "urn:ietf:params:acme:error:dns"
    assert problem["status"] == 400
    assert "NXDOMAIN" in problem["detail"]
    assert server.asked("_acme-challenge." + NAME, "TXT")


def test_a_silent_resolver_is_a_dns_problem() -> None:
    with DNSServer() as srv:
        port = srv.port
    problem, again = dns01.check(NAME, KEY_AUTH, ("127.0.0.1", port), 1.0)
    assert problem is not None and again
    assert problem["type"] == "urn:ietf:params:acme:error:dns"


def test_addresses_come_from_the_resolver(server: DNSServer) -> None:
    server.a[NAME] = "127.0.0.1"
    assert dns01.addresses(NAME, ns(server), 5.0) == ["127.0.0.1"]
    with pytest.raises(dns01.LookupFailed, match="NXDOMAIN"):
        dns01.addresses("other.stepstone.test", ns(server), 5.0)


def test_the_test_server_answers_over_tcp_too(server: DNSServer) -> None:
    server.set_txt("t.stepstone.test", "over-tcp")
    query = dns.message.make_query("t.stepstone.test", "TXT")
    response = dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=5)
    assert [b"".join(r.strings) for r in response.answer[0]] == [b"over-tcp"]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("10.0.0.53", ("10.0.0.53", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_resolver_flag_syntax(text: str, parsed: tuple[str, int]) -> None:
    assert dns01.parse_nameserver(text) == parsed


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("dns.example:53", "must be an IP address"),
        ("127.0.0.1:0", "port must be"),
        ("127.0.0.1:x", "port must be"),
        ("[::1", "not HOST:PORT"),
    ],
)
def test_resolver_flag_mistakes(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        dns01.parse_nameserver(text)
