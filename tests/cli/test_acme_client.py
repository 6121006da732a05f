"""The client side of ACME (cli.ca.acme_client, cli.ca.acme_flow, cli.ca.acme_http01) against
the CA's ACME routes in-process (httpx over WSGI), the CA fetching http-01 answers from our
standalone server on 127.0.0.1; and the rules step applies before it asks anything."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from api.app import create_app
from appliance.authority import Authority
from cli.ca import acme_client
from cli.ca.acme_client import ACMEClient, ACMEError, describe
from cli.ca.acme_flow import authorize, finalize, make_csr, order_names, order_window
from cli.ca.acme_http01 import Standalone, Webroot, challenge_mode, parse_listen
from cli.common import CLIError
from tests.acme_ca import acme_authority
from tests.e2e.harness import free_port

NAME = "client.acme.test"
DIRECTORY = "https://127.0.0.1:9/acme/acme/directory"


@pytest.fixture(scope="module")
def http01_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory, http01_port: int) -> Iterator[Authority]:
    acme = {
        "type": "ACME",
        "name": "acme",
        "challenges": ["http-01"],
        "stepstone": {"httpPort": http01_port, "hosts": {NAME: "127.0.0.1"}},
    }
    with acme_authority(tmp_path_factory.mktemp("acme-client") / "step", acme) as authority:
        yield authority


@pytest.fixture
def http(authority: Authority) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.WSGITransport(app=create_app(authority))) as client:
        yield client


def test_a_whole_order_over_http01(http: httpx.Client, http01_port: int) -> None:
    client = ACMEClient(http, DIRECTORY)
    account = client.new_account(["mailto:ops@acme.test"])
    assert account["status"] == "valid"
    assert client.kid and "/acme/acme/account/" in client.kid
    names = order_names(NAME, [])
    order_url, order = client.new_order(names.identifiers(), {})
    assert order["status"] == "pending"
    mode = Standalone(f"127.0.0.1:{http01_port}")
    mode.start()
    try:
        authorize(client, order, mode)
    finally:
        mode.close()
    key = ec.generate_private_key(ec.SECP256R1())
    chain = finalize(client, order_url, make_csr(names, key))
    assert len(chain) == 2
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [NAME]
    assert chain[0].issuer == chain[1].subject


def test_a_stale_nonce_is_retried_once(http: httpx.Client) -> None:
    client = ACMEClient(http, DIRECTORY)
    client._nonce = "bm90LWEtbm9uY2U"
    client.new_account([])  # badNonce, then the nonce that came with the problem
    assert client.kid


def test_refusals_carry_the_problem_detail(http: httpx.Client) -> None:
    client = ACMEClient(http, DIRECTORY)
    with pytest.raises(ACMEError) as caught:
        client.new_account(["not-a-url"])
    assert str(caught.value).startswith("error creating new ACME account: ")
    assert caught.value.problem["type"].endswith(":unsupportedContact")
    with pytest.raises(CLIError, match="error initializing ACME client with server"):
        ACMEClient(http, "https://127.0.0.1:9/acme/nobody/directory")


def test_describe_prefers_subproblems() -> None:
    assert describe({"type": "urn:ietf:params:acme:error:malformed"}) == "malformed"
    assert describe({"detail": "top", "subproblems": [{"detail": "a"}, {"detail": "b"}]}) == "a; b"


def test_order_names_follow_step() -> None:
    names = order_names("app.test", ["10.0.0.1", "www.app.test"])
    assert names.identifiers() == [
        {"type": "dns", "value": "www.app.test"},
        {"type": "dns", "value": "app.test"},
        {"type": "ip", "value": "10.0.0.1"},
    ]
    assert order_names("10.1.2.3", []).identifiers() == [{"type": "ip", "value": "10.1.2.3"}]
    with pytest.raises(CLIError, match="require dns validation"):
        order_names("app.test", ["*.app.test"])
    with pytest.raises(CLIError, match="URI SANs are not supported"):
        order_names("app.test", ["spiffe://x/y"])
    assert set(order_window("1h", "2h")) == {"notBefore", "notAfter"}
    assert order_window(None, None) == {}
    with pytest.raises(CLIError, match="invalid value 'soon' for flag '--not-after'"):
        order_window(None, "soon")


def test_standalone_serves_only_known_tokens() -> None:
    port = free_port()
    mode = Standalone(f"127.0.0.1:{port}")
    mode.serve("tok", "tok.thumb")
    try:
        base = f"http://127.0.0.1:{port}/.well-known/acme-challenge/"
        with urllib.request.urlopen(base + "tok", timeout=30) as resp:
            assert resp.read() == b"tok.thumb"
        mode.withdraw("tok")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "tok", timeout=30)
    finally:
        mode.close()
    assert parse_listen(":80") == ("", 80)
    assert parse_listen("[::1]:8080") == ("::1", 8080)
    with pytest.raises(CLIError, match="invalid value 'nope' for flag '--http-listen'"):
        parse_listen("nope")


def test_webroot_writes_and_removes(tmp_path: Path) -> None:
    mode = challenge_mode(False, tmp_path, ":80")
    assert isinstance(mode, Webroot)
    mode.serve("tok", "tok.thumb")
    path = tmp_path / ".well-known" / "acme-challenge" / "tok"
    assert path.read_text() == "tok.thumb"
    assert path.stat().st_mode & 0o777 == 0o644
    mode.close()
    assert not path.exists()
    with pytest.raises(CLIError, match="does not exist"):
        Webroot(tmp_path / "missing").start()


@pytest.mark.parametrize("token", ["../../etc/cron.d/x", "a/b", "", "tok\n", "x" * 300])
def test_webroot_refuses_a_token_that_is_not_base64url(tmp_path: Path, token: str) -> None:
    """A hostile CA cannot make step write or delete outside the webroot."""
    mode = challenge_mode(False, tmp_path / "www", ":80")
    (tmp_path / "www").mkdir()
    with pytest.raises(CLIError, match="invalid challenge token"):
        mode.serve(token, "k")
    with pytest.raises(CLIError, match="invalid challenge token"):
        mode.withdraw(token)
    assert list(tmp_path.rglob("*")) == [tmp_path / "www"]


@pytest.mark.parametrize(("header", "wait"), [("nan", 1.0), ("inf", 1.0), ("-5", 1.0), ("3", 3.0)])
def test_retry_after_is_a_finite_bounded_delay(header: str, wait: float) -> None:
    resp = httpx.Response(200, headers={"Retry-After": header})
    assert acme_client._retry_after(resp) == wait
