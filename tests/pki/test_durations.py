"""Go duration strings and step's TimeDuration, checked against Go's documented behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pki.durations import (
    HOUR,
    MICROSECOND,
    MILLISECOND,
    MINUTE,
    SECOND,
    format_duration,
    parse_duration,
    parse_duration_ns,
    parse_rfc3339,
    parse_time_or_duration,
    resolve_time_duration,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


# Cases from Go's time package tests (parseDurationTests) plus step's usual values.
@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("5s", 5 * SECOND),
        ("30s", 30 * SECOND),
        ("1478s", 1478 * SECOND),
        ("-5s", -5 * SECOND),
        ("+5s", 5 * SECOND),
        ("-0", 0),
        ("+0", 0),
        ("5.0s", 5 * SECOND),
        ("5.6s", 5 * SECOND + 600 * MILLISECOND),
        ("5.s", 5 * SECOND),
        (".5s", 500 * MILLISECOND),
        ("1.0s", SECOND),
        ("1.00s", SECOND),
        ("1.004s", SECOND + 4 * MILLISECOND),
        ("1.0040s", SECOND + 4 * MILLISECOND),
        ("100.00100s", 100 * SECOND + 1 * MILLISECOND),
        ("10ns", 10),
        ("11us", 11 * MICROSECOND),
        ("12µs", 12 * MICROSECOND),  # U+00B5
        ("12μs", 12 * MICROSECOND),  # U+03BC
        ("13ms", 13 * MILLISECOND),
        ("14s", 14 * SECOND),
        ("15m", 15 * MINUTE),
        ("16h", 16 * HOUR),
        ("3h30m", 3 * HOUR + 30 * MINUTE),
        ("10.5s4m", 4 * MINUTE + 10 * SECOND + 500 * MILLISECOND),
        ("-2m3.4s", -(2 * MINUTE + 3 * SECOND + 400 * MILLISECOND)),
        ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4 * MILLISECOND + 5000 + 6),
        ("39h9m14.425s", 39 * HOUR + 9 * MINUTE + 14 * SECOND + 425 * MILLISECOND),
        ("52763797000ns", 52763797000),
        ("0.3333333333333333333h", 20 * MINUTE),
        ("9007199254740993ns", (1 << 53) + 1),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("9223372036854775.807us", (1 << 63) - 1),
        ("9223372036s854ms775us807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
        ("-9223372036854775.808us", -(1 << 63)),
        ("0.100000000000000000000h", 6 * MINUTE),
        ("0.830103483285477580700h", 49 * MINUTE + 48 * SECOND + 372539827),
        ("-1.5h", -90 * MINUTE),
        ("2h45m", 165 * MINUTE),
        ("720h", 720 * HOUR),
    ],
)
def test_parse_duration_ns(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


def test_parse_duration_returns_timedelta() -> None:
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("-1.5h") == -timedelta(hours=1, minutes=30)
    assert parse_duration("1.5us") == timedelta(microseconds=1)  # truncated toward zero
    assert parse_duration("-1.5us") == timedelta(microseconds=-1)
    assert parse_duration("999ns") == timedelta(0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("3", 'time: missing unit in duration "3"'),
        ("-", 'time: invalid duration "-"'),
        ("+", 'time: invalid duration "+"'),
        ("s", 'time: invalid duration "s"'),
        (".", 'time: invalid duration "."'),
        ("-.", 'time: invalid duration "-."'),
        (".s", 'time: invalid duration ".s"'),
        ("+.s", 'time: invalid duration "+.s"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("1h-1m", 'time: unknown unit "h-" in duration "1h-1m"'),
        ("1.2.3s", 'time: missing unit in duration "1.2.3s"'),
        (" 1h", 'time: invalid duration " 1h"'),
        ("1h ", 'time: unknown unit "h " in duration "1h "'),
        ("--1s", 'time: invalid duration "--1s"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
        ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
        ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
        ("3000000h", 'time: invalid duration "3000000h"'),
        ("99999999999999999999999x", 'time: invalid duration "99999999999999999999999x"'),
        ("\x85\x85", 'time: invalid duration "\\xc2\\x85\\xc2\\x85"'),
        ('"1s"', 'time: invalid duration "\\"1s\\""'),
        ("é", 'time: invalid duration "\\xc3\\xa9"'),
    ],
)
def test_parse_duration_errors_match_go(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


def test_parse_duration_type_check() -> None:
    with pytest.raises(TypeError):
        parse_duration(5)  # type: ignore[arg-type]


# Go's durationTests (Duration.String) plus step's claim values.
@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1100, "1.1µs"),
        (2200 * MICROSECOND, "2.2ms"),
        (3300 * MILLISECOND, "3.3s"),
        (4 * MINUTE + 5 * SECOND, "4m5s"),
        (4 * MINUTE + 5001 * MILLISECOND, "4m5.001s"),
        (5 * HOUR + 6 * MINUTE + 7001 * MILLISECOND, "5h6m7.001s"),
        (8 * MINUTE + 1, "8m0.000000001s"),
        ((1 << 63) - 1, "2562047h47m16.854775807s"),
        (-(1 << 63), "-2562047h47m16.854775808s"),
        (24 * HOUR, "24h0m0s"),
        (MINUTE, "1m0s"),
        (2000 * HOUR + MINUTE, "2000h1m0s"),
        (1500 * MILLISECOND, "1.5s"),
        (500 * MILLISECOND, "500ms"),
        (-HOUR, "-1h0m0s"),
        (SECOND, "1s"),
        (-1, "-1ns"),
        (999, "999ns"),
        (1000, "1µs"),
        (MILLISECOND, "1ms"),
    ],
)
def test_format_duration_matches_go(ns: int, text: str) -> None:
    assert format_duration(ns) == text
    assert parse_duration_ns(text) == ns  # and Go's output parses back


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(hours=24), "24h0m0s"),
        (timedelta(minutes=1), "1m0s"),
        (timedelta(hours=2000, minutes=1), "2000h1m0s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(0), "0s"),
        (timedelta(hours=-1), "-1h0m0s"),
        (timedelta(days=30), "720h0m0s"),
        (timedelta(microseconds=1), "1µs"),
        (timedelta(days=-1, microseconds=1), "-23h59m59.999999s"),
    ],
)
def test_format_timedelta(td: timedelta, text: str) -> None:
    assert format_duration(td) == text
    assert parse_duration(text) == td


def test_format_duration_type_check() -> None:
    with pytest.raises(TypeError):
        format_duration(True)
    with pytest.raises(TypeError):
        format_duration(1.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# TimeDuration


def test_time_or_duration_empty_is_unset() -> None:
    assert parse_time_or_duration("", NOW) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01T12:00:00Z", datetime(2025, 6, 1, 12, tzinfo=UTC)),
        ("2025-06-01T12:00:00.5Z", datetime(2025, 6, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2025-06-01T12:00:00.123456789Z", datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2025-06-01T12:00:00+02:00", datetime(2025, 6, 1, 10, tzinfo=UTC)),
        ("2025-06-01T12:00:00-07:30", datetime(2025, 6, 1, 19, 30, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_time_or_duration_timestamps(text: str, expected: datetime) -> None:
    value = parse_time_or_duration(text, NOW)
    assert isinstance(value, datetime)
    assert value == expected and value.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5m", timedelta(minutes=5)),
        ("-1.5h", -timedelta(hours=1, minutes=30)),
        ("2h0m0s", timedelta(hours=2)),
        ("1m0s", timedelta(minutes=1)),
        ("0", timedelta(0)),
    ],
)
def test_time_or_duration_durations(text: str, expected: timedelta) -> None:
    assert parse_time_or_duration(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow",
        "5",
        "1d",
        "2025-06-01",
        "2025-06-01 12:00:00Z",
        "2025-06-01t12:00:00z",
        "2025-06-01T12:00:00",
        "2025-06-01T12:00Z",
        "2025-06-01T12:00:00+0200",
        "2025-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-06-01T24:00:00Z",
        "2025-06-01T12:60:00Z",
        "2025-06-01T12:00:60Z",
        "2025-06-01T12:00:00.Z",
        "2025-06-01T12:00:00+24:00",
        "２０２５-06-01T12:00:00Z",
    ],
)
def test_time_or_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="failed to parse"):
        parse_time_or_duration(text, NOW)


def test_time_or_duration_requires_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_time_or_duration("5m", datetime(2025, 1, 1))
    assert parse_time_or_duration("5m") == timedelta(minutes=5)


def test_parse_rfc3339_other_zone_is_converted() -> None:
    value = parse_rfc3339("2025-01-01T00:30:00+01:00")
    assert value == datetime(2024, 12, 31, 23, 30, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)


def test_resolve_time_duration_like_step() -> None:
    assert resolve_time_duration(None, NOW) is None
    assert resolve_time_duration(timedelta(0), NOW) is None  # "0s" means unset in step
    assert resolve_time_duration(timedelta(hours=2), NOW) == NOW + timedelta(hours=2)
    stamp = datetime(2030, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    resolved = resolve_time_duration(stamp, NOW)
    assert resolved == datetime(2030, 1, 1, tzinfo=UTC) and resolved.tzinfo == UTC
    # notAfter as a duration is relative to notBefore, whatever base the caller passes.
    not_before = resolve_time_duration(parse_time_or_duration("1m0s", NOW), NOW)
    assert not_before is not None
    not_after = resolve_time_duration(parse_time_or_duration("2h0m0s", NOW), not_before)
    assert not_after == NOW + timedelta(hours=2, minutes=1)
