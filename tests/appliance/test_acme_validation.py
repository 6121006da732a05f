"""Where validation looks: step-ca's flags (`Settings`) against a provisioner's test block, the
resolver's addresses for http-01 and tls-alpn-01 names, and the retries. Loopback only: the
names resolve through the test DNS server or the `hosts` map."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from cryptography import x509

from appliance.acme import dns01, validation
from provisioners.acme import ACMEProvisioner
from provisioners.claims import Claims
from provisioners.schema import ACMESchema, parse_provisioner
from tests.acme_dns import DNSServer
from tests.acme_tlsalpn import ChallengeServer, challenge_certificate
from tests.e2e.harness import free_port
from tests.http_server import QuietHandler, serving

NAME = "v.stepstone.test"
TOKEN = "tok"
KEY_AUTH = "tok.thumb"
PREFIX = "urn:ietf:params:acme:error:"


def provisioner(**own: Any) -> ACMEProvisioner:
    fields: dict[str, Any] = {"type": "acme", "name": "acme"}
    if own:
        fields["stepstone"] = own
    schema = parse_provisioner(fields)
    assert isinstance(schema, ACMESchema)
    return ACMEProvisioner(schema, Claims())


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(validation, "RETRY_DELAY", 0.0)
    before = validation.settings()
    yield
    validation.configure(before)


@pytest.fixture
def server() -> Iterator[DNSServer]:
    with DNSServer() as srv:
        srv.a[NAME] = "127.0.0.1"
        yield srv


class _Answer(QuietHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers["Host"]))
        self.send_body(KEY_AUTH.encode())


@pytest.fixture
def web() -> Iterator[int]:
    _Answer.seen = []
    with serving(_Answer) as srv:
        yield int(srv.server_address[1])


def test_http01_finds_the_name_through_the_resolver_and_the_flag_port(
    server: DNSServer, web: int
) -> None:
    validation.configure(validation.Settings(("127.0.0.1", server.port), http_port=web))
    assert validation.validate("http-01", "dns", NAME, TOKEN, KEY_AUTH, provisioner()) is None
    assert server.asked(NAME, "A")
    assert _Answer.seen == [(f"/.well-known/acme-challenge/{TOKEN}", NAME)]


def test_the_test_block_wins_over_flags_and_resolver(server: DNSServer, web: int) -> None:
    validation.configure(validation.Settings(("127.0.0.1", server.port), http_port=free_port()))
    prov = provisioner(httpPort=web, hosts={NAME: "127.0.0.1"})
    assert validation.validate("http-01", "dns", NAME, TOKEN, KEY_AUTH, prov) is None
    assert server.queries == []


def test_a_name_the_resolver_does_not_know_is_a_dns_problem_after_retries(
    server: DNSServer,
) -> None:
    validation.configure(validation.Settings(("127.0.0.1", server.port)))
    problem = validation.validate(
        "http-01", "dns", "x.stepstone.test", TOKEN, KEY_AUTH, provisioner()
    )
    assert problem is not None and problem["type"] == PREFIX + "dns"
    assert server.queries.count(("x.stepstone.test", "A")) == validation.ATTEMPTS


def test_tls_alpn01_uses_the_flag_port_and_the_resolver(server: DNSServer) -> None:
    cert, key = challenge_certificate([x509.DNSName(NAME)], KEY_AUTH)
    with ChallengeServer(cert, key) as tls:
        validation.configure(validation.Settings(("127.0.0.1", server.port), tls_port=tls.port))
        assert (
            validation.validate("tls-alpn-01", "dns", NAME, TOKEN, KEY_AUTH, provisioner()) is None
        )
    assert tls.seen == [(NAME, "acme-tls/1")]


def test_dns01_asks_the_flag_resolver(server: DNSServer) -> None:
    validation.configure(validation.Settings(("127.0.0.1", server.port)))
    server.set_txt("_acme-challenge." + NAME, dns01.txt_value(KEY_AUTH))
    assert validation.validate("dns-01", "dns", NAME, TOKEN, KEY_AUTH, provisioner()) is None
    server.set_txt("_acme-challenge." + NAME, "wrong")
    problem = validation.validate("dns-01", "dns", NAME, TOKEN, KEY_AUTH, provisioner())
    assert problem is not None and problem["type"] == PREFIX + "incorrectResponse"
    assert server.queries.count(("_acme-challenge." + NAME, "TXT")) == 2  # wrong is final


def test_an_unknown_challenge_type_is_a_server_problem() -> None:
    problem = validation.validate("device-attest-01", "dns", NAME, TOKEN, KEY_AUTH, provisioner())
    assert problem is not None and problem["status"] == 500


def test_ports_default_to_step_cas() -> None:
    assert validation.Settings() == validation.Settings(None, 80, 443)


def test_strict_fqdn_makes_names_absolute_for_the_system_resolver() -> None:
    assert validation.address_for("dns", "web.internal", {}, None, True) == "web.internal."
    assert validation.address_for("dns", "web.internal.", {}, None, True) == "web.internal."
    assert validation.address_for("dns", "web.internal", {}, None) == "web.internal"
    assert validation.address_for("ip", "10.0.0.1", {}, None, True) == "10.0.0.1"
    assert validation.address_for("dns", "Web.Internal", {"web.internal": "::1"}, None, True) == (
        "::1"
    )


class _Redirect(QuietHandler):
    """Redirects (one to follow, others not to), a body far larger than any key
    authorization, and one sent a byte at a time."""

    def do_GET(self) -> None:
        targets = {
            "/.well-known/acme-challenge/tok": "/moved",
            "/to-other-port": "http://127.0.0.1:1/x",
            "/to-ftp": "ftp://127.0.0.1/x",
            "/loop": "/loop",
        }
        if self.path in targets:
            self.send_response(302)
            self.send_header("Location", targets[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/moved":
            self.send_body(KEY_AUTH.encode())
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:  # the CA gave up, as it should
                pass
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(64 * 1024 * 1024))
            self.end_headers()
            try:
                for _ in range(1024):
                    self.wfile.write(b"x" * 65536)
            except OSError:  # the CA stopped reading, as it should
                pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    with serving(_Redirect) as srv:
        yield f"http://127.0.0.1:{srv.server_address[1]}"


def test_http01_follows_a_redirect_and_reads_a_bounded_body(redirecting: str) -> None:
    ok, again = validation.http01(f"{redirecting}/.well-known/acme-challenge/{TOKEN}", NAME,
                                  KEY_AUTH)  # fmt: skip
    assert ok is None and again is False
    problem, again = validation.http01(f"{redirecting}/big", NAME, KEY_AUTH)
    assert problem is not None and problem["type"] == PREFIX + "incorrectResponse"
    # What came back is not echoed: the URL might have led somewhere private.
    assert problem["detail"].endswith("but got 1024 bytes of something else")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/to-other-port", "only ports 80 and 443 are followed"),
        ("/to-ftp", "unsupported URL"),
        ("/loop", "too many redirects"),
    ],
)
def test_http01_redirects_it_does_not_follow(redirecting: str, path: str, why: str) -> None:
    problem, again = validation.http01(redirecting + path, NAME, KEY_AUTH)
    assert problem is not None and problem["type"] == PREFIX + "connection"
    assert why in problem["detail"] and again is False


@pytest.mark.parametrize(
    "target",
    # Checked without following: no test sends traffic to these.
    ["http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/x", "http://224.0.0.1/x",
     "http://0.0.0.0/x"],
)  # fmt: skip
def test_redirects_to_link_local_multicast_or_unspecified_are_refused(target: str) -> None:
    assert validation.redirect_refusal(target, 8080) == (
        f"redirect to {target}: that address is not followed"
    )
    assert validation.redirect_refusal("http://web.test/x", 8080) is None


def test_http01_gives_up_on_a_slow_answer_at_its_deadline(
    redirecting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read comes in time; the whole answer does not (a byte every 0.3 s, 1 s allowed)."""
    monkeypatch.setattr(validation, "TIMEOUT", 1.0)
    problem, again = validation.http01(f"{redirecting}/drip", NAME, KEY_AUTH)
    assert problem is not None and problem["type"] == PREFIX + "connection"
    assert again is True
