"""Validity windows: how notBefore/notAfter inputs resolve, the bounds, and credential limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from api.errors import http_error
from appliance.validity import Window, check_window, go_time, limit_window, requested_window
from pki.errors import CAError, ErrorKind
from provisioners.claims import Claims

NOW = datetime(2030, 5, 17, 12, 0, 0, 250_000, tzinfo=UTC)
BACKDATE = timedelta(minutes=1)
CLAIMS = Claims()  # 5m .. 24h, default 24h


def _status(call: object, *args: object, **kw: object) -> CAError:
    with pytest.raises(CAError) as err:
        call(*args, **kw)  # type: ignore[operator]
    return err.value


def test_go_time_is_utc_in_gos_default_layout() -> None:
    local = datetime(2030, 1, 2, 5, 4, 5, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert go_time(local) == "2030-01-02 05:04:05 +0000 UTC"


def test_defaults_start_now_backdated_and_last_the_default_duration() -> None:
    window = requested_window(None, None, NOW, CLAIMS, BACKDATE)
    assert window == Window(NOW - BACKDATE, NOW + timedelta(hours=24))
    custom = Claims(default_tls=timedelta(hours=2))
    assert requested_window("", "", NOW, custom, BACKDATE).not_after == NOW + timedelta(hours=2)


def test_a_duration_not_after_counts_from_the_unbackdated_start() -> None:
    window = requested_window(None, "2h", NOW, CLAIMS, BACKDATE)
    assert window == Window(NOW - BACKDATE, NOW + timedelta(hours=2))


def test_an_explicit_not_before_is_not_backdated() -> None:
    window = requested_window("1h", "2h", NOW, CLAIMS, BACKDATE)
    assert window == Window(NOW + timedelta(hours=1), NOW + timedelta(hours=3))
    window = requested_window("-5m", None, NOW, CLAIMS, BACKDATE)
    assert window == Window(NOW - timedelta(minutes=5), NOW + timedelta(hours=24, minutes=-5))


def test_rfc3339_times_are_taken_as_given() -> None:
    window = requested_window(
        "2030-05-17T13:00:00Z", "2030-05-17T16:00:00+02:00", NOW, CLAIMS, BACKDATE
    )
    assert window == Window(
        datetime(2030, 5, 17, 13, tzinfo=UTC), datetime(2030, 5, 17, 14, tzinfo=UTC)
    )


@pytest.mark.parametrize("bad", ["tomorrow", "5", "1x", "2030-13-01T00:00:00Z"])
def test_undecodable_times_read_like_step_ca_json_errors(bad: str) -> None:
    for args in ((bad, None), (None, bad)):
        err = _status(requested_window, *args, NOW, CLAIMS, BACKDATE)
        assert err.kind is ErrorKind.BAD_REQUEST
        assert http_error(err)[1] == "The request could not be completed: error decoding json."


def test_windows_inside_the_bounds_pass() -> None:
    check_window(Window(NOW - BACKDATE, NOW + timedelta(hours=24)), NOW, CLAIMS, BACKDATE)
    check_window(Window(NOW, NOW + timedelta(minutes=5)), NOW, CLAIMS, BACKDATE)


def test_not_after_in_the_past_is_400() -> None:
    err = _status(
        check_window,
        Window(NOW - timedelta(hours=2), NOW - timedelta(hours=1)),
        NOW,
        CLAIMS,
        BACKDATE,
    )
    assert err.kind is ErrorKind.BAD_REQUEST
    assert http_error(err)[1] == (
        "The request could not be completed: notAfter cannot be in the past; "
        "na=2030-05-17 11:00:00 +0000 UTC."
    )


def test_not_after_before_not_before_is_400() -> None:
    err = _status(
        check_window,
        Window(NOW + timedelta(hours=3), NOW + timedelta(hours=2)),
        NOW,
        CLAIMS,
        BACKDATE,
    )
    assert err.kind is ErrorKind.BAD_REQUEST
    assert "notAfter cannot be before notBefore" in http_error(err)[1]


def test_durations_outside_the_claims_are_403_with_go_durations() -> None:
    short = _status(check_window, Window(NOW, NOW + timedelta(minutes=4)), NOW, CLAIMS, BACKDATE)
    assert short.kind is ErrorKind.FORBIDDEN
    assert http_error(short)[1] == (
        "The request was forbidden by the certificate authority: requested duration of 4m0s "
        "is less than the authorized minimum certificate duration of 5m0s."
    )
    # The maximum allows for the backdate: 24h + 1m passes, one second more does not.
    check_window(Window(NOW - BACKDATE, NOW + timedelta(hours=24)), NOW, CLAIMS, BACKDATE)
    long = _status(
        check_window,
        Window(NOW - BACKDATE, NOW + timedelta(hours=24, seconds=1)),
        NOW,
        CLAIMS,
        BACKDATE,
    )
    assert long.kind is ErrorKind.FORBIDDEN
    assert "24h1m1s is more than the authorized maximum certificate duration of 24h1m0s" in (
        http_error(long)[1]
    )


def test_sub_second_parts_are_ignored_like_step_ca() -> None:
    # 4m59.9s by the microsecond, 5m by the second: step-ca compares whole seconds.
    window = Window(NOW.replace(microsecond=900_000), NOW + timedelta(minutes=5))
    check_window(window, NOW, CLAIMS, BACKDATE)


def test_limit_window_clips_a_default_and_refuses_an_explicit_overrun() -> None:
    window = Window(NOW, NOW + timedelta(hours=24))
    limit = NOW + timedelta(hours=1)
    assert limit_window(window, None, explicit=True) is window
    assert limit_window(window, NOW + timedelta(days=2), explicit=True) is window
    assert limit_window(window, limit, explicit=False) == Window(NOW, limit)
    err = _status(limit_window, window, limit, explicit=True)
    assert err.kind is ErrorKind.FORBIDDEN
    assert "requested notAfter 2030-05-18 12:00:00 +0000 UTC is after the authorizing " in (
        http_error(err)[1]
    )
