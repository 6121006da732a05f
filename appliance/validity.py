"""Certificate validity windows: step's TimeDuration inputs, defaults, backdating and bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pki.durations import format_duration, parse_time_or_duration
from pki.errors import CAError, ErrorKind, bad_request, forbidden
from provisioners.claims import Claims


def go_time(t: datetime) -> str:
    """Go's default time formatting, used inside step-ca's messages."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


@dataclass(frozen=True)
class Window:
    """The notBefore/notAfter a certificate will carry."""

    not_before: datetime
    not_after: datetime


def requested_window(
    not_before: str | None,
    not_after: str | None,
    now: datetime,
    claims: Claims,
    backdate: timedelta,
) -> Window:
    """Resolve the request's notBefore/notAfter like step-ca's default-duration modifier.

    Without a notBefore the certificate starts now, backdated; a notAfter duration counts from
    the un-backdated start; without a notAfter the provisioner's default duration applies.
    """
    try:
        nb_in = parse_time_or_duration(not_before or "", now)
        na_in = parse_time_or_duration(not_after or "", now)
    except ValueError as exc:
        # step-ca decodes these while decoding the JSON body: same public message.
        raise CAError(
            ErrorKind.BAD_REQUEST, f"notBefore/notAfter: {exc}", public="error decoding json"
        ) from None
    start = now if nb_in is None else (now + nb_in if isinstance(nb_in, timedelta) else nb_in)
    if na_in is None:
        end = start + claims.default_tls
    elif isinstance(na_in, timedelta):
        end = start + na_in
    else:
        end = na_in
    actual_start = start - backdate if nb_in is None else start
    return Window(actual_start, end)


def check_window(window: Window, now: datetime, claims: Claims, backdate: timedelta) -> None:
    """step-ca's validity validator: not in the past, ordered, within min..max+backdate."""
    na = window.not_after.replace(microsecond=0)
    nb = window.not_before.replace(microsecond=0)
    if na < now.replace(microsecond=0):
        raise bad_request(f"notAfter cannot be in the past; na={go_time(na)}")
    if na < nb:
        raise bad_request(
            f"notAfter cannot be before notBefore; na={go_time(na)}, nb={go_time(nb)}"
        )
    duration = na - nb
    if duration < claims.min_tls:
        raise _duration_error("less than the authorized minimum", duration, claims.min_tls)
    if duration > claims.max_tls + backdate:
        raise _duration_error(
            "more than the authorized maximum", duration, claims.max_tls + backdate
        )


def _duration_error(what: str, got: timedelta, bound: timedelta) -> CAError:
    return forbidden(
        f"requested duration of {format_duration(got)} is {what} certificate duration of "
        f"{format_duration(bound)}"
    )


def limit_window(window: Window, limit: datetime | None, *, explicit: bool) -> Window:
    """Keep a certificate inside a credential's lifetime (X5C): a default notAfter is clipped
    to `limit`; an explicitly requested one beyond it is refused (403)."""
    if limit is None or window.not_after <= limit:
        return window
    if explicit:
        raise forbidden(
            f"requested notAfter {go_time(window.not_after)} is after the authorizing "
            f"credential's notAfter {go_time(limit)}"
        )
    return Window(window.not_before, limit)
