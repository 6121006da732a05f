"""step-ca's ACME validation flags (`--resolver`, `--acme-http-port`, `--acme-tls-port`):
mistakes are one line and a non-zero status, before anything is read or served. (The flags
at work: tests/e2e/test_acme_dns.py and test_acme_lego.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import STEP_CA, clean_env


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--resolver", "dns.example:53"], "step-ca: --resolver 'dns.example:53': the resolver "
         "must be an IP address"),
        (["--resolver", "127.0.0.1:70000"], "step-ca: --resolver '127.0.0.1:70000': the port "
         "must be a number from 1 to 65535"),
    ],
)  # fmt: skip
def test_a_bad_resolver_is_one_line(flags: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(STEP_CA), str(tmp_path / "ca.json"), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(tmp_path / "step"),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == message


@pytest.mark.parametrize("flag", ["--acme-http-port", "--acme-tls-port"])
def test_a_port_out_of_range_is_refused(flag: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(STEP_CA), str(tmp_path / "ca.json"), flag, "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(tmp_path / "step"),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"Invalid value for {flag!r}: Input should be greater than or equal to 1"
    ]
