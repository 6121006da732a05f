"""`step oauth --console`: the device authorization grant (RFC 8628) against the test IdP.

Once for real (the user approves at the verification URI while step polls every second), and in
process with a clock that does not wait, to follow the polling rules: `authorization_pending`,
`slow_down` (five more seconds per poll), `expired_token`, `access_denied` and the code's
lifetime.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cli.oauth_flow
from tests.cli.oauth_harness import (
    TIMEOUT,
    FakeClock,
    Step,
    client_args,
    failed,
    ok,
    run_in_process,
    step_env,
)
from tests.oidc_idp import CLIENT_ID, TestIdP


@pytest.fixture
def idp() -> Iterator[TestIdP]:
    with TestIdP() as provider:
        yield provider


def test_console_device_flow_for_real(idp: TestIdP, tmp_path: Path) -> None:
    idp.device.interval = 1
    step = Step(client_args(idp, "--console", "--oidc", "--bare"), step_env(tmp_path))
    uri = step.read_until(r"^Visit (\S+) and enter the code:$").group(1)
    user_code = step.read_until(r"^(\S+)$").group(1)
    assert uri == f"{idp.url}/device"
    decided = httpx.get(uri, params={"user_code": user_code}, timeout=TIMEOUT)
    assert decided.status_code == 200
    out, _ = ok(step.finish())
    assert out.strip() == idp.issued_id_tokens[-1]
    (device,) = idp.device.requests
    assert device["client_id"] == CLIENT_ID and device["scope"] == "openid email"


def test_device_flow_denied_by_the_user(idp: TestIdP, tmp_path: Path) -> None:
    idp.device.interval = 1
    idp.device.complete_uri = True
    step = Step(client_args(idp, "--console-flow", "device"), step_env(tmp_path))
    complete = step.read_until(r"^Visit (\S+):$").group(1)
    assert complete.startswith(f"{idp.url}/device?user_code=")
    denied = httpx.get(f"{complete}&decision=deny", timeout=TIMEOUT)
    assert denied.status_code == 200
    assert failed(step.finish()) == "device authorization was denied"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(cli.oauth_flow, "CLOCK", fake)
    return fake


def test_device_flow_pending_and_slow_down(
    idp: TestIdP, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    idp.device.decision = "approve"
    idp.device.script = ["authorization_pending", "slow_down", "authorization_pending"]
    out, err = ok(run_in_process(capsys, client_args(idp, "--console", "--bare", "--oidc")))
    assert out == idp.issued_id_tokens[-1] + "\n"
    assert clock.sleeps == [5, 5, 10, 10]  # slow_down adds five seconds to every later wait
    assert re.search(r"^Visit http://127\.0\.0\.1:\d+/device and enter the code:$", err, re.M)
    polls = [r for r in idp.token_requests if r.get("grant_type", "").endswith("device_code")]
    assert len(polls) == 4


@pytest.mark.parametrize(
    ("decision", "message"),
    [("expire", "device authorization grant expired"), ("deny", "device authorization was denied")],
)
def test_device_flow_failures(
    idp: TestIdP, clock: FakeClock, capsys: pytest.CaptureFixture[str], decision: str, message: str
) -> None:
    idp.device.decision = decision
    idp.device.script = ["authorization_pending"]
    assert failed(run_in_process(capsys, client_args(idp, "--console"))) == message
    assert len(clock.sleeps) == 2


def test_device_flow_gives_up_when_the_code_expires(
    idp: TestIdP, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    idp.device.expires_in = 12  # the user never decides
    line = failed(run_in_process(capsys, client_args(idp, "--console")))
    assert line == "device authorization grant expired"
    assert clock.sleeps == [5, 5, 5]  # polled at 5 and 10 seconds; 15 is past the deadline


def test_device_flow_with_a_bad_client_secret(
    idp: TestIdP, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["oauth", "--provider", idp.url, "--client-id", CLIENT_ID, "--client-secret", "x",
            "--console"]  # fmt: skip
    assert failed(run_in_process(capsys, args)) == "device authorization failed: invalid_client"


def test_device_flow_needs_a_device_endpoint(
    idp: TestIdP, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["oauth", "--client-id", CLIENT_ID, "--authorization-endpoint", f"{idp.url}/authorize",
            "--token-endpoint", f"{idp.url}/token", "--console"]  # fmt: skip
    assert (
        failed(run_in_process(capsys, args)) == "the provider has no device authorization endpoint"
    )
