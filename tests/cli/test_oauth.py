"""`step oauth` against the test identity provider on 127.0.0.1 (tests/oidc_idp.py).

The browser flow runs the real `step` in a child process; the test is the browser: it reads
the authorization URL from stderr and follows it with httpx. The out-of-band flow is fed the
code on stdin. The device flow is in test_oauth_device.py.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from cli.oauth_flow import OOB_REDIRECT, Client, discover
from cli.oauth_loopback import loopback_login
from tests.cli.oauth_harness import (
    TIMEOUT,
    Step,
    client_args,
    failed,
    ok,
    run_in_process,
    step_env,
)
from tests.e2e.harness import STEP, free_port
from tests.oidc_idp import CLIENT_ID, CLIENT_SECRET, TestIdP

TOKEN_KEYS = ["access_token", "id_token", "refresh_token", "expires_in", "token_type", "scope"]


@pytest.fixture
def idp() -> Iterator[TestIdP]:
    with TestIdP() as provider:
        yield provider


# --- the browser flow ----------------------------------------------------------------------


def test_browser_flow_prints_the_token_response(idp: TestIdP, tmp_path: Path) -> None:
    step = Step(client_args(idp), step_env(tmp_path))
    url = step.url()
    page = httpx.get(url, follow_redirects=True, timeout=TIMEOUT)
    out, err = ok(step.finish())
    assert page.status_code == 200 and "Success" in page.text
    assert "Cannot open a web browser on your platform." in err
    assert "Open a local web browser and visit:" in err
    tok = json.loads(out)
    assert list(tok) == TOKEN_KEYS
    assert tok["id_token"] == idp.issued_id_tokens[-1]
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 3600
    assert tok["refresh_token"] == "" and tok["scope"] == "openid email"
    assert out.startswith('{\n  "access_token": "')
    (auth,) = idp.authorize_requests
    (exchange,) = idp.token_requests
    assert url.startswith(f"{idp.url}/authorize?")
    assert auth["response_type"] == "code" and auth["code_challenge_method"] == "S256"
    assert auth["redirect_uri"].startswith("http://127.0.0.1:")
    assert auth["scope"] == "openid email"
    assert exchange["redirect_uri"] == auth["redirect_uri"]
    assert exchange["client_secret"] == CLIENT_SECRET
    claims = jwt.decode(tok["id_token"], options={"verify_signature": False})
    assert claims["nonce"] == auth["nonce"]


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        (["--bare"], "access"),
        (["--bare", "--oidc"], "id"),
        (["--header"], "header-access"),
        (["--header", "--oidc"], "header-id"),
    ],
)
def test_bare_oidc_and_header(idp: TestIdP, tmp_path: Path, flags: list[str], want: str) -> None:
    step = Step(client_args(idp, *flags), step_env(tmp_path))
    httpx.get(step.url(), follow_redirects=True, timeout=TIMEOUT)
    out, _ = ok(step.finish())
    id_token = idp.issued_id_tokens[-1]
    lines = out.splitlines()
    assert len(lines) == 1
    if want == "id":
        assert lines == [id_token]
    elif want == "header-id":
        assert lines == [f"Authorization: Bearer {id_token}"]
    elif want == "header-access":
        assert lines[0].startswith("Authorization: Bearer ") and id_token not in out
    else:
        assert lines[0] and "." not in lines[0]  # the opaque access token, not the JWT


def test_scope_prompt_email_and_auth_params(idp: TestIdP, tmp_path: Path) -> None:
    args = client_args(
        idp, "--scope", "openid", "--scope", "email", "--scope", "groups", "--prompt", "login",
        "--email", "jane@example.com", "--auth-param", "access_type=offline", "--bare",
    )  # fmt: skip
    step = Step(args, step_env(tmp_path))
    httpx.get(step.url(), follow_redirects=True, timeout=TIMEOUT)
    ok(step.finish())
    (auth,) = idp.authorize_requests
    assert auth["scope"] == "openid email groups"
    assert auth["prompt"] == "login"
    assert auth["login_hint"] == "jane@example.com"
    assert auth["access_type"] == "offline"


def test_listen_listen_url_and_redirect_url(idp: TestIdP, tmp_path: Path) -> None:
    port = free_port()
    args = client_args(
        idp, "--listen", f":{port}", "--listen-url", f"http://localhost:{port}/callback",
        "--redirect-url", "https://example.com/done", "--bare",
    )  # fmt: skip
    step = Step(args, step_env(tmp_path))
    authorize = httpx.get(step.url(), timeout=TIMEOUT)
    location = authorize.headers["location"]
    assert location.startswith(f"http://localhost:{port}/callback?")
    wrong_path = httpx.get(f"http://127.0.0.1:{port}/", timeout=TIMEOUT)
    assert wrong_path.status_code == 404
    done = httpx.get(location.replace("localhost", "127.0.0.1"), timeout=TIMEOUT)
    out, _ = ok(step.finish())
    assert done.status_code == 302 and done.headers["location"] == "https://example.com/done"
    assert out.strip()


def test_listen_on_the_ipv6_loopback(idp: TestIdP) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    client = Client(discover(idp.url), CLIENT_ID, CLIENT_SECRET)

    def browser(url: str) -> bool:
        return httpx.get(url, follow_redirects=True, timeout=TIMEOUT).status_code == 200

    tok = loopback_login(client, listen="[::1]:0", browser=browser, timeout=TIMEOUT)
    assert tok.id_token == idp.issued_id_tokens[-1]
    assert idp.authorize_requests[0]["redirect_uri"].startswith("http://[::1]:")


def test_step_open_browser_0_prints_only_the_url(idp: TestIdP, tmp_path: Path) -> None:
    step = Step(client_args(idp, "--bare"), step_env(tmp_path, STEP_OPEN_BROWSER="0"))
    url = step.url()
    httpx.get(url, follow_redirects=True, timeout=TIMEOUT)
    _, err = ok(step.finish())
    assert err.splitlines()[0] == url
    assert "browser" not in err


def test_browser_from_the_browser_variable(idp: TestIdP, tmp_path: Path) -> None:
    """$BROWSER is honoured (through Python's webbrowser) even without a display."""
    script = tmp_path / "browser.py"
    script.write_text("import sys, httpx\nhttpx.get(sys.argv[1], follow_redirects=True)\n")
    browser = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} %s"
    proc = subprocess.run(
        [str(STEP), *client_args(idp, "--bare", "--oidc")],
        capture_output=True, text=True, env=step_env(tmp_path, BROWSER=browser),
        stdin=subprocess.DEVNULL, timeout=TIMEOUT,
    )  # fmt: skip
    out, err = ok((proc.returncode, proc.stdout, proc.stderr))
    assert "Your default web browser has been opened to visit:" in err
    assert out.strip() == idp.issued_id_tokens[-1]


# --- failures of the browser flow ------------------------------------------------------------


def test_bad_client_secret(idp: TestIdP, tmp_path: Path) -> None:
    args = ["oauth", "--provider", idp.url, "--client-id", CLIENT_ID, "--client-secret", "nope"]
    step = Step(args, step_env(tmp_path))
    page = httpx.get(step.url(), follow_redirects=True, timeout=TIMEOUT)
    line = failed(step.finish())
    assert line == "Failed exchanging authorization code: invalid_client"
    assert page.status_code == 400 and "Failure" in page.text


def test_state_mismatch(idp: TestIdP, tmp_path: Path) -> None:
    step = Step(client_args(idp), step_env(tmp_path))
    location = httpx.get(step.url(), timeout=TIMEOUT).headers["location"]
    page = httpx.get(location.replace("state=", "state=forged"), timeout=TIMEOUT)
    assert page.status_code == 400
    assert failed(step.finish()) == "Failed to authenticate: missing or invalid state"
    assert idp.token_requests == []


def test_user_denied(idp: TestIdP, tmp_path: Path) -> None:
    idp.deny_login = True
    step = Step(client_args(idp), step_env(tmp_path))
    httpx.get(step.url(), follow_redirects=True, timeout=TIMEOUT)
    assert failed(step.finish()) == "Failed to authenticate: access_denied"


def test_a_stray_request_does_not_end_the_login(idp: TestIdP, tmp_path: Path) -> None:
    step = Step(client_args(idp, "--bare", "--oidc"), step_env(tmp_path))
    url = step.url()
    redirect_uri = dict(httpx.URL(url).params)["redirect_uri"]
    assert httpx.get(redirect_uri, timeout=TIMEOUT).status_code == 400  # no code, no state
    httpx.get(url, follow_redirects=True, timeout=TIMEOUT)
    out, err = ok(step.finish())
    assert out.strip() == idp.issued_id_tokens[-1]
    assert "Invalid request received on the redirect URL" in err


# --- the out-of-band flow --------------------------------------------------------------------


def _oob_code(url: str) -> str:
    page = httpx.get(url, timeout=TIMEOUT)
    found = re.search(r"Success code=([^<]+)<", page.text)
    assert found, page.text
    return found.group(1)


def test_console_flow_oob_reads_the_code(idp: TestIdP, tmp_path: Path) -> None:
    step = Step(client_args(idp, "--console-flow", "oob", "--oidc", "--bare"), step_env(tmp_path))
    code = _oob_code(step.url())
    out, err = ok(step.finish(code + "\n"))
    assert out.strip() == idp.issued_id_tokens[-1]
    assert "Open a local web browser and visit:" in err and "Enter verification code: " in err
    assert idp.authorize_requests[0]["redirect_uri"] == OOB_REDIRECT
    assert idp.token_requests[0]["redirect_uri"] == OOB_REDIRECT


def test_oob_with_explicit_endpoints_skips_discovery(idp: TestIdP, tmp_path: Path) -> None:
    args = [
        "oauth", "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
        "--authorization-endpoint", f"{idp.url}/authorize", "--token-endpoint",
        f"{idp.url}/token", "--console-flow", "OOB",
    ]  # fmt: skip
    step = Step(args, step_env(tmp_path))
    code = _oob_code(step.url())
    out, _ = ok(step.finish(code + "\n"))
    assert json.loads(out)["id_token"] == idp.issued_id_tokens[-1]
    assert idp.count("/.well-known/openid-configuration") == 0


def test_oob_without_a_code(idp: TestIdP, tmp_path: Path) -> None:
    step = Step(client_args(idp, "--console-flow", "oob"), step_env(tmp_path))
    step.url()
    assert failed(step.finish("\n")).endswith("no verification code was entered")


def test_oob_with_a_wrong_code(idp: TestIdP, tmp_path: Path) -> None:
    step = Step(client_args(idp, "--console-flow", "oob"), step_env(tmp_path))
    step.url()
    line = failed(step.finish("not-a-code\n"))
    assert line.endswith("Failed exchanging authorization code: invalid_grant. unknown code")


# --- bad input -------------------------------------------------------------------------------


def test_unreachable_provider(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.run(
        [str(STEP), "oauth", "--provider", f"http://127.0.0.1:{port}", "--client-id", "x"],
        capture_output=True, text=True, env=step_env(tmp_path), timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    line = failed((proc.returncode, proc.stdout, proc.stderr))
    assert proc.stderr == line + "\n"
    assert line.startswith(
        f"failed to connect to http://127.0.0.1:{port}/.well-known/openid-configuration: "
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "http://127.0.0.1:1"], "flag '--client-id' is required"),
        (
            ["--provider", "http://example.com", "--client-id", "x"],
            "invalid value 'http://example.com' for flag '--provider': use google, github or "
            "an https:// URL",
        ),
        (
            ["--client-id", "x", "--console-flow", "carrier-pigeon"],
            "invalid value 'carrier-pigeon' for flag '--console-flow'; options are device, oob",
        ),
        (
            ["--client-id", "x", "--authorization-endpoint", "https://example.com/a"],
            "flag '--authorization-endpoint' requires flag '--token-endpoint'",
        ),
        (
            ["--client-id", "x", "--token-endpoint", "https://example.com/t"],
            "flag '--token-endpoint' requires flag '--authorization-endpoint' or "
            "'--device-authorization-endpoint'",
        ),
        (
            ["--client-id", "x", "--listen-url", "nope"],
            "invalid value 'nope' for flag '--listen-url'",
        ),
    ],
)
def test_bad_flags(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    assert failed(run_in_process(capsys, ["oauth", *args])) == message


def test_bad_auth_param_and_listen(idp: TestIdP, capsys: pytest.CaptureFixture[str]) -> None:
    line = failed(run_in_process(capsys, client_args(idp, "--auth-param", "=x")))
    assert line == "invalid value '=x' for flag '--auth-param'"
    line = failed(run_in_process(capsys, client_args(idp, "--listen", "127.0.0.1")))
    assert line == "invalid value '127.0.0.1' for flag '--listen'"


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_in_process(capsys, ["help", "oauth"])
    assert code == 0
    assert out.splitlines()[0].endswith(" oauth [flags]")
    assert "$ step oauth --provider https://login.example.com" in out
    assert "--console-flow <flow>" in out and "--bare" in out and "--oidc" in out
