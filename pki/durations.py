"""Go `time.Duration` strings and step's TimeDuration, parsed and printed exactly like Go.

ca.json claims, `/sign` bodies (`notBefore`/`notAfter`) and the CLI all carry Go durations;
matching Go's grammar and its `Duration.String()` output keeps files and error messages
interchangeable with step-ca.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone

NANOSECOND = 1
MICROSECOND = 1000 * NANOSECOND
MILLISECOND = 1000 * MICROSECOND
SECOND = 1000 * MILLISECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_UNITS: dict[str, int] = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # U+00B5 micro sign
    "\u03bcs": MICROSECOND,  # U+03BC Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_MAX_ABS = 1 << 63  # Go's uint64 accumulator bound; a negative duration may reach -2**63


def _quote(s: str) -> str:
    """Go's time.quote: non-ASCII and control characters become \\x escapes of their UTF-8."""
    out = ['"']
    for ch in s:
        if ord(ch) >= 0x80 or ord(ch) < 0x20:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            if ch in '"\\':
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


def _leading_digits(s: str, i: int) -> int:
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    return i


def _leading_fraction(digits: str) -> tuple[int, float]:
    """Go's leadingFraction: digits accumulate until uint64 would overflow, then are ignored."""
    x = 0
    scale = 1.0
    for ch in digits:
        if x > (_MAX_ABS - 1) // 10:
            break
        y = x * 10 + ord(ch) - 0x30
        if y > _MAX_ABS:
            break
        x = y
        scale *= 10
    return x, scale


def parse_duration_ns(s: str) -> int:
    """Parse a Go duration string to integer nanoseconds (Go's time.ParseDuration).

    Error messages are Go's own (`time: invalid duration "x"`, `time: missing unit in
    duration "1"`, `time: unknown unit "d" in duration "1d"`), all as ValueError.
    """
    if not isinstance(s, str):
        raise TypeError("duration must be a str")
    orig = s
    invalid = ValueError("time: invalid duration " + _quote(orig))
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    i = 0
    while i < len(s):
        if not (s[i] == "." or "0" <= s[i] <= "9"):
            raise invalid
        start = i
        i = _leading_digits(s, i)
        whole_digits = s[start:i]
        whole = int(whole_digits) if whole_digits else 0
        if whole > _MAX_ABS:
            raise invalid  # Go's leadingInt overflow
        frac_digits: str | None = None
        if i < len(s) and s[i] == ".":
            i += 1
            frac_start = i
            i = _leading_digits(s, i)
            frac_digits = s[frac_start:i]
        if not whole_digits and not frac_digits:
            raise invalid  # e.g. ".s"
        unit_start = i
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == unit_start:
            raise ValueError("time: missing unit in duration " + _quote(orig))
        unit_name = s[unit_start:i]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(
                "time: unknown unit " + _quote(unit_name) + " in duration " + _quote(orig)
            )
        if whole > _MAX_ABS // unit:
            raise invalid
        value = whole * unit
        if frac_digits:
            frac, scale = _leading_fraction(frac_digits)
            if frac > 0:
                # Go computes this in float64; doing the same keeps results bit-identical.
                value += int(float(frac) * (float(unit) / scale))
                if value > _MAX_ABS:
                    raise invalid
        total += value
        if total > _MAX_ABS:
            raise invalid
    if neg:
        return -total
    if total > _MAX_ABS - 1:
        raise invalid
    return total


def parse_duration(s: str) -> timedelta:
    """Parse a Go duration string ("5m", "-1.5h", "2h45m", "0") to a timedelta.

    timedelta resolves microseconds, so sub-microsecond parts are truncated toward zero;
    use :func:`parse_duration_ns` where nanoseconds matter.
    """
    return _ns_to_timedelta(parse_duration_ns(s))


def _ns_to_timedelta(ns: int) -> timedelta:
    micros = abs(ns) // MICROSECOND
    return timedelta(microseconds=-micros if ns < 0 else micros)


def _timedelta_to_ns(td: timedelta) -> int:
    return ((td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds) * MICROSECOND


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of v/10**prec without trailing zeros (or its dot)."""
    digits: list[str] = []
    printing = False
    for _ in range(prec):
        digit = v % 10
        printing = printing or digit != 0
        if printing:
            digits.append(str(digit))
        v //= 10
    if not printing:
        return "", v
    return "." + "".join(reversed(digits)), v


def format_duration(td: timedelta | int) -> str:
    """Exactly Go's Duration.String(): "24h0m0s", "1m0s", "1.5s", "500ms", "0s", "-1h0m0s".

    An int is taken as nanoseconds (a Go Duration); a timedelta is exact to the microsecond.
    """
    if isinstance(td, timedelta):
        ns = _timedelta_to_ns(td)
    elif isinstance(td, int) and not isinstance(td, bool):
        ns = td
    else:
        raise TypeError("format_duration takes a timedelta or integer nanoseconds")
    neg = ns < 0
    u = -ns if neg else ns
    if u < SECOND:
        if u == 0:
            return "0s"
        if u < MICROSECOND:
            prec, unit = 0, "ns"
        elif u < MILLISECOND:
            prec, unit = 3, "\u00b5s"
        else:
            prec, unit = 6, "ms"
        frac, u = _fmt_frac(u, prec)
        text = f"{u}{frac}{unit}"
    else:
        frac, u = _fmt_frac(u, 9)
        text = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            text = f"{u % 60}m{text}"
            u //= 60
            if u > 0:
                text = f"{u}h{text}"
    return "-" + text if neg else text


# RFC 3339 exactly as Go's time.Time.UnmarshalText accepts it: upper-case T and Z, optional
# fractional seconds, numeric offsets with a colon.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def parse_rfc3339(s: str) -> datetime:
    """Parse an RFC 3339 timestamp with Go's strictness; returns an aware datetime in UTC.

    Fractions beyond microseconds are truncated (Go keeps nanoseconds).
    """
    m = _RFC3339.fullmatch(s)
    if m is None:
        raise ValueError(f"invalid RFC 3339 timestamp {s!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    frac, zulu, sign, off_h, off_m = m.group(7, 8, 9, 10, 11)
    if not (1 <= month <= 12) or not (1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(f"invalid RFC 3339 timestamp {s!r}: day out of range")
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"invalid RFC 3339 timestamp {s!r}: time out of range")
    micros = int((frac or "0")[:6].ljust(6, "0"))
    if zulu:
        tz = UTC
    else:
        oh, om = int(off_h), int(off_m)
        if oh > 23 or om > 59:
            raise ValueError(f"invalid RFC 3339 timestamp {s!r}: offset out of range")
        offset = timedelta(hours=oh, minutes=om)
        tz = timezone(-offset if sign == "-" else offset)
    try:
        local = datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"invalid RFC 3339 timestamp {s!r}") from None


def parse_time_or_duration(s: str, now: datetime | None = None) -> datetime | timedelta | None:
    """step's TimeDuration (`notBefore`/`notAfter`): a timestamp, a duration, or unset.

    RFC 3339 -> aware UTC datetime; Go duration -> timedelta, left relative because step adds
    it to different bases (notAfter is relative to notBefore, not to now); "" -> None.
    `now` is only checked for awareness so that callers resolving the result with
    :func:`resolve_time_duration` cannot mix naive and aware datetimes.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(s, str):
        raise TypeError("time/duration must be a str")
    if s == "":
        return None
    try:
        return parse_rfc3339(s)
    except ValueError:
        pass
    try:
        return parse_duration(s)
    except ValueError:
        pass
    raise ValueError(f"failed to parse {s}")


def resolve_time_duration(value: datetime | timedelta | None, base: datetime) -> datetime | None:
    """step's TimeDuration.RelativeTime: a timestamp as is, a duration added to `base`.

    A zero duration means unset, as in step (`"0s"` behaves like an absent field).
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if not value:
        return None
    return (base + value).astimezone(UTC)
