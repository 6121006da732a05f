"""`step crypto otp generate|verify` (cli.crypto_otp): RFC 6238's test vectors, and secrets
and Key URIs read back by pyotp as an authenticator app would."""

from __future__ import annotations

import base64
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest

from tests.e2e.harness import STEP, clean_env

# RFC 6238 appendix B: the seeds, and (time, SHA1, SHA256, SHA512) 8-digit codes.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


def _step(
    tmp: Path, *args: str | Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(STEP), *map(str, args)],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=clean_env(tmp / "steppath"),
        cwd=tmp,
        timeout=180,
        check=False,
    )


def _rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("alg", ["SHA1", "SHA256", "SHA512"])
def test_verify_rfc6238_vectors(tmp_path: Path, alg: str) -> None:
    secret = base64.b32encode(SEEDS[alg]).decode()
    (tmp_path / "secret").write_text(secret + "\n")
    column = {"SHA1": 1, "SHA256": 2, "SHA512": 3}[alg]
    for vector in VECTORS:
        epoch, code = int(vector[0]), str(vector[column])
        assert pyotp.TOTP(secret, digits=8, digest=alg.lower()).at(epoch) == code  # the vector
        args = ("crypto", "otp", "verify", "--secret", "secret", "--digits", "8", "--alg", alg)
        proc = _step(tmp_path, *args, "--time", _rfc3339(epoch), stdin=code + "\n")
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "ok\n", ""), epoch
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        proc = _step(tmp_path, *args, "--time", _rfc3339(epoch), stdin=wrong)
        assert (proc.returncode, proc.stdout) == (1, "fail\n")


def test_generate_secret_and_uri_read_by_pyotp(tmp_path: Path) -> None:
    proc = _step(
        tmp_path,
        "crypto",
        "otp",
        "generate",
        "--issuer",
        "example.com",
        "--account",
        "me@example.com",
    )
    assert proc.returncode == 0, proc.stderr
    secret = proc.stdout.strip()
    assert len(secret) == 32 and "=" not in secret  # 20 bytes, base32 without padding
    assert len(base64.b32decode(secret)) == 20

    args = (
        "--issuer",
        "Small Step",
        "--account",
        "me@example.com",
        "--alg",
        "SHA256",
        "--length",
        "8",
        "--period",
        "60",
    )
    proc = _step(tmp_path, "crypto", "otp", "generate", "--url", *args)
    uri = proc.stdout.strip()
    assert uri.startswith(
        "otpauth://totp/Small%20Step:me@example.com?algorithm=SHA256&digits=8&issuer=Small%20Step&period=60&secret="
    )
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    assert (totp.issuer, totp.name, totp.digits, totp.interval) == (
        "Small Step",
        "me@example.com",
        8,
        60,
    )

    # The Key URI file carries period, digits and algorithm: verify needs no flags.
    (tmp_path / "key.uri").write_text(uri + "\n")
    now = int(time.time())
    code = totp.at(now)
    proc = _step(
        tmp_path, "crypto", "otp", "verify", "key.uri", "--time", _rfc3339(now), stdin=code
    )
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr


def test_verify_skew(tmp_path: Path) -> None:
    secret = pyotp.random_base32()
    (tmp_path / "s").write_text(secret)
    now = 1_700_000_000 - 1_700_000_000 % 30 + 10
    previous = pyotp.TOTP(secret).at(now - 30)
    base = ("crypto", "otp", "verify", "--secret", "s", "--time", _rfc3339(now))
    assert _step(tmp_path, *base, stdin=previous).stdout == "fail\n"
    assert _step(tmp_path, *base, "--skew", "1", stdin=previous).stdout == "ok\n"
    proc = _step(tmp_path, *base, "--skew", "2", stdin=previous)
    assert (proc.returncode, proc.stderr) == (
        1,
        "'--skew' values greater than 1 require the '--insecure' flag\n",
    )
    assert _step(tmp_path, *base, "--skew", "2", "--insecure", stdin=previous).stdout == "ok\n"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("generate", "--account", "a"), None,
         "'step crypto otp generate' requires the '--issuer' flag"),
        (("generate", "--issuer", "i"), None,
         "'step crypto otp generate' requires the '--account' flag"),
        (("generate", "--issuer", "i", "--account", "a", "--alg", "MD5"), None,
         "invalid value 'MD5' for flag '--alg'; options are SHA1, SHA256, or SHA512"),
        (("generate", "--issuer", "i", "--account", "a", "--qr", "x.png"), None,
         "flag '--qr' is not supported: make the QR code from the '--url' output"),
        (("verify",), "123456", "'step crypto otp verify' requires the '--secret' flag"),
        (("verify", "--secret", "missing"), "123456", "open missing: no such file or directory"),
        (("verify", "--secret", "s"), "12345",
         "error while validating TOTP: Input length unexpected"),
        (("verify", "--secret", "s", "--time", "soon"), "123456",
         "invalid value 'soon' for flag '--time'"),
        (("verify", "--secret", "bad"), "123456",
         "error while validating TOTP: Decoding of secret as base32 failed."),
    ],
)  # fmt: skip
def test_otp_failures(
    tmp_path: Path, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    (tmp_path / "s").write_text(pyotp.random_base32())
    (tmp_path / "bad").write_text("not base32!")
    proc = _step(tmp_path, "crypto", "otp", *args, stdin=stdin)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [message]
