"""`step crypto otp generate|verify`: TOTP (RFC 6238) secrets and codes, with pyotp.

As smallstep/cli's command/crypto/otp (built on pquerna/otp): `generate` prints a new secret
(base32, no padding) or its `otpauth://totp/...` Key URI, written the way pquerna/otp writes
it; `verify` reads a passcode from standard input (or asks on a terminal) and checks it
against a secret file holding either form. step's `--qr` PNG is not offered: no QR encoder
is installed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pyotp
import typer

from cli.common import CLIError
from cli.crypto_keyio import read_input
from cli.helptext import StepTyper
from pki.durations import parse_time_or_duration

app = StepTyper(help="Generate and verify time-based one-time passwords (TOTP).")

_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
_ALG_HELP = "The HMAC algorithm: SHA1 (the default), SHA256 or SHA512."
_MAX_DIGITS = 10  # pyotp's limit; 31-bit HOTP values have at most 10 digits


def _digest(alg: str) -> str:
    name = alg.upper()
    if name not in _DIGESTS:
        raise CLIError(
            f"invalid value '{alg}' for flag '--alg'; options are SHA1, SHA256, or SHA512"
        )
    return name


def _check_digits(digits: int) -> None:
    if not 1 <= digits <= _MAX_DIGITS:
        raise CLIError(f"invalid value '{digits}' for flag '--length': must be 1 to {_MAX_DIGITS}")


def key_uri(issuer: str, account: str, secret: str, period: int, digits: int, alg: str) -> str:
    """pquerna/otp's Key URI: Go's url.URL path escaping, and sorted, PathEscape'd query."""
    path = quote(f"/{issuer}:{account}", safe="/$&+,:;=@")
    query = {
        "algorithm": alg,
        "digits": str(digits),
        "issuer": issuer,
        "period": str(period),
        "secret": secret,
    }
    encoded = "&".join(f"{k}={quote(v, safe='$&+:=@')}" for k, v in sorted(query.items()))
    return f"otpauth://totp{path}?{encoded}"


def generate_command(
    issuer: str | None = typer.Option(
        None,
        "--issuer",
        "--iss",
        metavar="NAME",
        help="The issuing organization (e.g. example.com).",
    ),
    account: str | None = typer.Option(
        None, "--account", metavar="USER_NAME", help="The user's account: a username or email."
    ),
    period: int = typer.Option(30, "--period", metavar="SECONDS", help="Seconds a code is valid."),
    length: int = typer.Option(6, "--length", "--digits", metavar="SIZE", help="Digits of a code."),
    secret_size: int = typer.Option(
        20, "--secret-size", metavar="BYTES", help="The size of the new secret in bytes."
    ),
    alg: str = typer.Option("SHA1", "--alg", "--algorithm", metavar="ALG", help=_ALG_HELP),
    url: bool = typer.Option(False, "--url", help="Print a TOTP Key URI instead of the secret."),
    qr: Path | None = typer.Option(None, "--qr", hidden=True, help="Not supported."),
) -> None:
    """Generate a TOTP secret.

    The secret is printed in base32, or with --url as an otpauth:// Key URI
    carrying the issuer, account, period, digits and algorithm, which
    authenticator apps import. Keep it secret: whoever has it can make
    valid codes. step's --qr (a PNG QR code) is not supported; feed the
    --url output to a QR code tool instead.

    Examples:

      $ step crypto otp generate --issuer example.com --account name@example.com \\
          > example.totp

      $ step crypto otp generate --issuer example.com --account name@example.com \\
          --url --alg SHA256 --length 8
    """
    if not issuer:
        raise CLIError("'step crypto otp generate' requires the '--issuer' flag")
    if not account:
        raise CLIError("'step crypto otp generate' requires the '--account' flag")
    if qr is not None:
        raise CLIError("flag '--qr' is not supported: make the QR code from the '--url' output")
    name = _digest(alg)
    _check_digits(length)
    if period <= 0 or secret_size <= 0:
        raise CLIError("'--period' and '--secret-size' must be greater than 0")
    secret = base64.b32encode(secrets.token_bytes(secret_size)).decode().rstrip("=")
    typer.echo(key_uri(issuer, account, secret, period, length, name) if url else secret)


def _read_secret(path: str) -> tuple[str, int | None, int | None, str | None]:
    """(secret, period, digits, algorithm) of a secret file: a bare secret or a Key URI."""
    text = read_input(path).decode("utf-8", "replace").strip()
    if not text.startswith("otpauth://"):
        return text, None, None, None
    query = parse_qs(urlsplit(text).query)

    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    try:
        period = int(first("period") or 0) or None
        digits = int(first("digits") or 0) or None
    except ValueError:
        raise CLIError(f"error parsing the TOTP Key URI in {path}") from None
    return first("secret") or "", period, digits, first("algorithm")


def _passcode() -> str:
    if sys.stdin.isatty():
        value: str = typer.prompt("Enter Passcode", hide_input=True)
        return value.strip()
    return sys.stdin.read().strip()


def check_code(
    code: str, secret: str, at: float, period: int, digits: int, alg: str, skew: int
) -> bool:
    """pquerna/otp's totp.ValidateCustom: the code of any counter within `skew` periods."""
    if len(code) != digits:
        raise CLIError("error while validating TOTP: Input length unexpected")
    padded = secret.strip().upper()
    padded += "=" * (-len(padded) % 8)
    try:
        base64.b32decode(padded)
    except (binascii.Error, ValueError):
        raise CLIError(
            "error while validating TOTP: Decoding of secret as base32 failed."
        ) from None
    totp = pyotp.TOTP(padded.rstrip("="), digits=digits, digest=_DIGESTS[alg], interval=period)
    counter = int(at // period)
    counters = [counter] + [c for i in range(1, skew + 1) for c in (counter + i, counter - i)]
    return any(hmac.compare_digest(totp.generate_otp(c), code) for c in counters if c >= 0)


def verify_command(
    secret_arg: str | None = typer.Argument(None, metavar="SECRET_FILE", help="Same as --secret."),
    secret_file: str | None = typer.Option(
        None, "--secret", metavar="FILE", help="The <file> with the TOTP secret or Key URI."
    ),
    period: int | None = typer.Option(
        None, "--period", metavar="SECONDS", help="Seconds a code is valid."
    ),
    skew: int = typer.Option(
        0,
        "--skew",
        metavar="NUM",
        help="Periods before or after now to accept (above 1: --insecure).",
    ),
    length: int | None = typer.Option(
        None, "--length", "--digits", metavar="SIZE", help="Digits of a code."
    ),
    alg: str | None = typer.Option(None, "--alg", "--algorithm", metavar="ALG", help=_ALG_HELP),
    at: str | None = typer.Option(
        None,
        "--time",
        metavar="TIME|DURATION",
        help="Check at this RFC 3339 time, or now plus this duration (e.g. -30s).",
    ),
    insecure: bool = typer.Option(False, "--insecure", hidden=True, help="Allow --skew above 1."),
) -> None:
    """Verify a TOTP code read from standard input (or asked on the terminal).

    The secret file holds a base32 secret or an otpauth:// Key URI, whose
    period, digits and algorithm apply unless flags say otherwise. Prints
    "ok" and exits 0 for a valid code, prints "fail" and exits 1 otherwise.

    Examples:

      $ step crypto otp verify --secret example.totp
      Enter Passcode: 614318
      ok

      $ echo 614318 | step crypto otp verify --secret example.totp --skew 1

      $ echo 614318 | step crypto otp verify --secret example.totp --time -30s
    """
    path = secret_file or secret_arg
    if path is None:
        raise CLIError("'step crypto otp verify' requires the '--secret' flag")
    secret, uri_period, uri_digits, uri_alg = _read_secret(path)
    period = period if period is not None else uri_period or 30
    digits = length if length is not None else uri_digits or 6
    name = _digest(alg if alg is not None else uri_alg or "SHA1")
    _check_digits(digits)
    if period <= 0:
        raise CLIError(f"invalid value '{period}' for flag '--period'")
    now = time.time()
    if at:
        try:
            when = parse_time_or_duration(at)
        except ValueError:
            raise CLIError(f"invalid value '{at}' for flag '--time'") from None
        if isinstance(when, datetime):
            now = when.timestamp()
        elif when is not None:
            now += when.total_seconds()
    if skew < 0:
        raise CLIError(f"invalid value '{skew}' for flag '--skew'")
    if skew > 1 and not insecure:
        raise CLIError("'--skew' values greater than 1 require the '--insecure' flag")
    if check_code(_passcode(), secret, int(now), period, digits, name, skew):
        typer.echo("ok")
        return
    typer.echo("fail")
    raise typer.Exit(1)


app.command("generate")(generate_command)
app.command("verify")(verify_command)
