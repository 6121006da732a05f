"""`step certificate needs-renewal`: does a certificate need to be renewed yet?

Follows smallstep/cli's command/certificate/needsRenewal.go (read, not copied):

* ``--expires-in`` is a percentage (``66%``, the default) or a Go duration (``1h15m``). A
  percentage means "has used at least this share of its lifetime": the share used is
  ``(1 - remaining / total) * 100`` computed on minutes, truncated to an integer and compared
  with ``>=``. A duration means "expires within this window": ``duration >= remaining``.
* Only the first certificate of a bundle (or of a server's chain) is checked unless
  ``--bundle`` is given; then the first one that needs renewal decides.
* Exit status: 0 needs renewal, 1 does not, 2 the file does not exist, 255 any other error.
  ``--verbose`` prints "certificate needs renewal" (stdout) or "certificate does not need
  renewal" (stderr); without it the "does not need renewal" case prints nothing.

One deliberate difference: a certificate whose lifetime is zero or negative counts as fully
used (Go divides by zero there and gets a platform-dependent answer).
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cli.certinfo import Certificate, CertParseError, parse_certificate, parse_certificate_bundle
from cli.common import CLIError, go_strerror
from cli.tlsfetch import fetch_peer_certificates, trim_url
from pki.durations import parse_duration_ns

#: step's defaultPercentUsedThreshold.
DEFAULT_PERCENT_THRESHOLD = 66

EXIT_NEEDS_RENEWAL = 0
EXIT_NO_RENEWAL = 1
EXIT_FILE_MISSING = 2
EXIT_ERROR = 255

_MAX_INT64 = 2**63 - 1
_MIN_INT64 = -(2**63)
_NANOSECONDS_PER_MINUTE = 60 * 10**9
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Go's time.ParseDuration units, in nanoseconds.


class RenewalCheckError(CLIError):
    """A needs-renewal failure with the exit status step uses for it (2 or 255)."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Threshold:
    """Either a percentage of the lifetime used, or a window (ns) before expiry."""

    percent: int | None = None
    window_ns: int = 0

    @property
    def is_percent(self) -> bool:
        return self.percent is not None


def _go_atoi(text: str) -> int:
    """strconv.Atoi in base 10: an optional sign and decimal digits, within int64."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"strconv.Atoi: parsing {text!r}: invalid syntax")
    value = int(text)
    if not _MIN_INT64 <= value <= _MAX_INT64:
        raise ValueError(f"strconv.Atoi: parsing {text!r}: value out of range")
    return value


def parse_expires_in(value: str | None) -> Threshold:
    """The --expires-in flag: empty means 66%, "N%" a percentage, else a Go duration."""
    text = value or ""
    invalid = f"invalid value '{text}' for flag '--expires-in'"
    if text == "" or text.endswith("%"):
        if text == "":
            return Threshold(percent=DEFAULT_PERCENT_THRESHOLD)
        try:
            percent = _go_atoi(text[:-1])
        except ValueError:
            raise RenewalCheckError(invalid) from None
        if not 0 <= percent <= 100:
            raise RenewalCheckError(f"{invalid}; value must be in range 0-100%")
        return Threshold(percent=percent)
    try:
        return Threshold(window_ns=parse_duration_ns(text))
    except ValueError:
        raise RenewalCheckError(invalid) from None


def _saturate(nanoseconds: int) -> int:
    """Go's Time.Sub saturates at the limits of a Duration."""
    return max(_MIN_INT64, min(_MAX_INT64, nanoseconds))


def _unix_ns(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def _go_minutes(nanoseconds: int) -> float:
    """Duration.Minutes(): whole minutes plus the remainder, both truncated toward zero."""
    whole = abs(nanoseconds) // _NANOSECONDS_PER_MINUTE
    remainder = abs(nanoseconds) % _NANOSECONDS_PER_MINUTE
    if nanoseconds < 0:
        whole, remainder = -whole, -remainder
    return float(whole) + float(remainder) / (60 * 1e9)


def percent_used(cert: Certificate, now_ns: int) -> float:
    """How much of the certificate's lifetime has passed, in percent (step's formula)."""
    remaining = _saturate(_unix_ns(cert.not_after) - now_ns)
    total = _saturate(_unix_ns(cert.not_after) - _unix_ns(cert.not_before))
    if total <= 0:
        return 100.0
    return (1 - _go_minutes(remaining) / _go_minutes(total)) * 100


def certificate_needs_renewal(cert: Certificate, threshold: Threshold, now_ns: int) -> bool:
    """step's test for one certificate."""
    if threshold.percent is not None:
        used = percent_used(cert, now_ns)
        # Go's int(float64) truncates toward zero.
        return int(used) >= threshold.percent
    remaining = _saturate(_unix_ns(cert.not_after) - now_ns)
    return threshold.window_ns >= remaining



def load_local_certificates(name: str) -> list[Certificate]:
    """os.Stat (missing: exit 2) then pemutil.ReadCertificateBundle (errors: exit 255)."""
    try:
        os.stat(name)
    except OSError as exc:
        code = EXIT_FILE_MISSING if exc.errno == errno.ENOENT else EXIT_ERROR
        raise RenewalCheckError(f"stat {name}: {go_strerror(exc)}", code) from None
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise RenewalCheckError(f'error reading "{name}": {go_strerror(exc)}') from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return parse_certificate_bundle(data)
    except CertParseError as exc:
        if b"-----BEGIN " not in data:
            reason = f"error parsing certificate as DER format: {exc}"
        elif str(exc).startswith("does not contain"):
            reason = str(exc)
        else:
            reason = f"error decoding PEM data: {exc}"
        raise RenewalCheckError(f"error parsing {name}: {reason}") from None


def load_remote_certificates(
    target: tuple[str, int], server_name: str | None, roots: str | None
) -> list[Certificate]:
    """The chain a TLS server presents, verified against --roots or the system store."""
    try:
        chain = fetch_peer_certificates(
            target[0], target[1], server_name=server_name, roots=roots, insecure=False
        )
        return [parse_certificate(der) for der in chain]
    except CertParseError as exc:
        raise RenewalCheckError(
            f"failed to connect: tls: failed to parse certificate: {exc}"
        ) from None
    except CLIError as exc:
        raise RenewalCheckError(str(exc)) from None


def needs_renewal(
    cert_or_url: str,
    *,
    expires_in: str | None = None,
    roots: str | None = None,
    server_name: str | None = None,
    bundle: bool = False,
    now_ns: int | None = None,
) -> bool:
    """Whether the certificate (or any of the bundle with `bundle`) needs renewal.

    Raises RenewalCheckError (exit status 2 or 255) when it cannot tell.
    """
    try:
        target = trim_url(cert_or_url)
    except CLIError as exc:
        raise RenewalCheckError(str(exc)) from None
    if target is not None:
        certs = load_remote_certificates(target, server_name, roots)
    else:
        certs = load_local_certificates(cert_or_url)
    threshold = parse_expires_in(expires_in)
    now = time.time_ns() if now_ns is None else now_ns
    for cert in certs if bundle else certs[:1]:
        if certificate_needs_renewal(cert, threshold, now):
            return True
    return False
