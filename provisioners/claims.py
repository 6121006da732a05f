"""Provisioner claims: certificate duration bounds and renewal switches, merged on three levels.

Built-in defaults <- `authority.claims` <- a provisioner's `claims`, as step-ca does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from pki.durations import parse_duration


class ClaimsError(ValueError):
    """A claims block that step-ca would refuse at start-up."""


@dataclass(frozen=True)
class Claims:
    """Effective X.509 claims of a provisioner."""

    min_tls: timedelta = timedelta(minutes=5)
    max_tls: timedelta = timedelta(hours=24)
    default_tls: timedelta = timedelta(hours=24)
    disable_renewal: bool = False
    allow_renewal_after_expiry: bool = False
    disable_smallstep_extensions: bool = False

    def merged(self, raw: dict[str, Any] | None) -> Claims:
        """Apply a `claims` JSON object on top of these claims and validate the result."""
        if not raw:
            return self
        if not isinstance(raw, dict):
            raise ClaimsError("claims must be a JSON object")
        out = self
        durations = {
            "minTLSCertDuration": "min_tls",
            "maxTLSCertDuration": "max_tls",
            "defaultTLSCertDuration": "default_tls",
        }
        for key, attr in durations.items():
            value = raw.get(key)
            if value in (None, ""):
                continue
            try:
                changes: dict[str, Any] = {attr: parse_duration(str(value))}
                out = replace(out, **changes)
            except ValueError as exc:
                raise ClaimsError(f"claims: {key}: {exc}") from None
        # step-ca's quirk: a default set alone below the min (above the max) drags the bound along.
        if "defaultTLSCertDuration" in raw:
            if "minTLSCertDuration" not in raw and out.default_tls < out.min_tls:
                out = replace(out, min_tls=out.default_tls)
            if "maxTLSCertDuration" not in raw and out.default_tls > out.max_tls:
                out = replace(out, max_tls=out.default_tls)
        for key, attr in (
            ("disableRenewal", "disable_renewal"),
            ("allowRenewalAfterExpiry", "allow_renewal_after_expiry"),
            ("disableSmallstepExtensions", "disable_smallstep_extensions"),
        ):
            if key in raw and raw[key] is not None:
                if not isinstance(raw[key], bool):
                    raise ClaimsError(f"claims: {key} must be true or false")
                flags: dict[str, Any] = {attr: raw[key]}
                out = replace(out, **flags)
        out.validate()
        return out

    def validate(self) -> None:
        """Refuse bounds step-ca refuses: non-positive durations or min > default > max."""
        for name, value in (
            ("minTLSCertDuration", self.min_tls),
            ("maxTLSCertDuration", self.max_tls),
            ("defaultTLSCertDuration", self.default_tls),
        ):
            if value <= timedelta(0):
                raise ClaimsError(f"claims: {name} must be greater than 0")
        if not self.min_tls <= self.default_tls <= self.max_tls:
            raise ClaimsError(
                "claims: minTLSCertDuration <= defaultTLSCertDuration <= maxTLSCertDuration "
                "does not hold"
            )
