"""Running `step crypto ...` for the test_crypto_* modules: as a process, or in-process."""

from __future__ import annotations

import subprocess
from pathlib import Path

from typer.testing import CliRunner

from cli.common import run_cli
from cli.step import app as step_app
from tests.e2e.harness import STEP, clean_env


def step_process(
    tmp: Path, *args: str | Path, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """`step ARGS` as a process in `tmp`, with no terminal (stdin closed unless given)."""
    return subprocess.run(
        [str(STEP), *map(str, args)],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        env=clean_env(tmp / "steppath"),
        cwd=tmp,
        timeout=180,
        check=False,
    )


def step(*args: str | Path, stdin: bytes | str = b"") -> tuple[int, bytes, str]:
    """Run `step ARGS` in-process as the console script does: (status, stdout, stderr)."""
    with CliRunner().isolation(input=stdin) as (out, err, _):
        code = run_cli(step_app, [str(a) for a in args])
        return code, out.getvalue(), err.getvalue().decode()
