"""Running `step oauth` in tests (tests/cli/test_oauth*.py): the child process, the user who
plays the browser, and the one-line failure check."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import IO

import pytest

import cli.oauth_flow
from cli.common import run_cli
from cli.step import app
from tests.e2e.harness import STEP, clean_env
from tests.oidc_idp import CLIENT_ID, CLIENT_SECRET, TestIdP

TIMEOUT = 180
Result = tuple[int, str, str]


def client_args(idp: TestIdP, *extra: str) -> list[str]:
    """`step oauth` with the test IdP as provider and its client."""
    return [
        "oauth", "--provider", idp.url, "--client-id", CLIENT_ID, "--client-secret",
        CLIENT_SECRET, *extra,
    ]  # fmt: skip


def step_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No display and no $BROWSER: step must not try to open a browser."""
    env = clean_env(tmp_path / "step")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        env.pop(name, None)
    env.update(extra)
    return env


class Step:
    """A running `step oauth`; the test plays the browser (or the user at a terminal)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        # Unbuffered bytes: a line read here must leave what follows it (a prompt without a
        # newline) in the pipe for communicate(), not in a text buffer it never sees.
        self.proc = subprocess.Popen(
            [str(STEP), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env,
        )
        self.err: list[str] = []

    def read_until(self, pattern: str) -> re.Match[str]:
        """Read stderr up to the first line matching `pattern`."""
        stderr: IO[bytes] | None = self.proc.stderr
        assert stderr is not None
        while True:
            line = stderr.readline().decode()
            if not line:
                self.finish()
                raise AssertionError(f"no line matching {pattern!r} in {self.err}")
            self.err.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def url(self) -> str:
        """The URL step printed for the browser."""
        return self.read_until(r"^(https?://\S+)$").group(1)

    def finish(self, stdin: str = "") -> Result:
        try:
            out, err = self.proc.communicate(stdin.encode(), timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode, out.decode(), "".join(self.err) + err.decode()


def run_in_process(capsys: pytest.CaptureFixture[str], args: list[str]) -> Result:
    """`step ARGS...` in this process, as the console script runs it."""
    code = run_cli(app, args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ok(result: Result) -> tuple[str, str]:
    """(stdout, stderr) of a run that must have succeeded."""
    code, out, err = result
    assert code == 0, f"stdout:\n{out}\nstderr:\n{err}"
    return out, err


def failed(result: Result) -> str:
    """The one line a failed `step` printed last (no traceback, no warning, no stdout)."""
    code, out, err = result
    assert code == 1 and out == "", (code, out, err)
    assert "Traceback" not in err and "Warning" not in err, err
    return err.splitlines()[-1]


class FakeClock(cli.oauth_flow.Clock):
    """Polls without waiting; remembers how long step meant to wait."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def now(self) -> float:
        return self.t
