"""Running `step certificate ...` and openssl as users do, for the test_certificate_* modules."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from tests.e2e.harness import BIN, OPENSSL, run_step

PASSWORD = "certificate-test-password"
PKILINT = BIN / "lint_pkix_cert"


def step(
    tmp: Path, *args: str | Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`step ARGS` in `tmp`, with no terminal (stdin closed unless given)."""
    return run_step(list(args), tmp / "step", stdin=stdin, cwd=tmp, check=False)


def ok(tmp: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = step(tmp, *args)
    assert proc.returncode == 0, proc.stderr
    return proc


def fails(tmp: Path, fragment: str, *args: str | Path) -> str:
    """Run a command that must fail with one line naming `fragment`; return that line."""
    proc = step(tmp, *args)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], proc.stderr
    return lines[0]


def openssl(tmp: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OPENSSL, *map(str, args)],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass(frozen=True)
class DevPKI:
    """A root and an intermediate made by `step certificate create`, keys encrypted."""

    dir: Path
    password: Path
    root: Path
    root_key: Path
    inter: Path
    inter_key: Path


def make_pki(tmp: Path, kty: str = "EC") -> DevPKI:
    password = tmp / "password.txt"
    password.write_text(PASSWORD + "\n")
    key_flags = ["--kty", kty] if kty != "EC" else []
    ok(tmp, "certificate", "create", "Test Root", "root.crt", "root.key",
       "--profile", "root-ca", "--password-file", password, *key_flags)  # fmt: skip
    ok(tmp, "certificate", "create", "Test Intermediate", "inter.crt", "inter.key",
       "--profile", "intermediate-ca", "--ca", "root.crt", "--ca-key", "root.key",
       "--ca-password-file", password, "--password-file", password, *key_flags)  # fmt: skip
    return DevPKI(
        tmp, password, tmp / "root.crt", tmp / "root.key", tmp / "inter.crt", tmp / "inter.key"
    )


def cert_at(path: Path, index: int = 0) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[index]


def pkilint_clean(path: Path) -> None:
    """pkilint's RFC 5280 linter, as its own program: nothing at WARNING or above."""
    proc = subprocess.run(
        [str(PKILINT), "lint", "-s", "WARNING", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def verify_strict(tmp: Path, pki: DevPKI, leaf: str | Path) -> None:
    proc = openssl(tmp, "verify", "-x509_strict", "-CAfile", pki.root, "-untrusted", pki.inter,
                   leaf)  # fmt: skip
    assert proc.returncode == 0 and ": OK" in proc.stdout, proc.stdout + proc.stderr
