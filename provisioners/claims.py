"""Provisioner claims: certificate duration bounds and renewal switches, merged on three levels.

Built-in defaults <- `authority.claims` <- a provisioner's `claims`, as step-ca does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pki.durations import parse_duration

if TYPE_CHECKING:
    from provisioners.schema import ClaimsSchema

_DURATIONS = {
    "minTLSCertDuration": "min_tls",
    "maxTLSCertDuration": "max_tls",
    "defaultTLSCertDuration": "default_tls",
}
_FLAGS = {
    "disableRenewal": "disable_renewal",
    "allowRenewalAfterExpiry": "allow_renewal_after_expiry",
    "disableSmallstepExtensions": "disable_smallstep_extensions",
}


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

    def merged(self, claims: ClaimsSchema | None) -> Claims:
        """Apply a `claims` block (its types checked by the schema) on top of these claims and
        check the bounds of the result."""
        if claims is None:
            return self
        out = self
        for key, attr in _DURATIONS.items():
            value = getattr(claims, key)
            if value:
                changes: dict[str, Any] = {attr: parse_duration(value)}
                out = replace(out, **changes)
        # step-ca's quirk: a default set alone below the min (above the max) drags the bound along.
        given = claims.model_fields_set
        if "defaultTLSCertDuration" in given:
            if "minTLSCertDuration" not in given and out.default_tls < out.min_tls:
                out = replace(out, min_tls=out.default_tls)
            if "maxTLSCertDuration" not in given and out.default_tls > out.max_tls:
                out = replace(out, max_tls=out.default_tls)
        for key, attr in _FLAGS.items():
            flag = getattr(claims, key)
            if flag is not None:
                flags: dict[str, Any] = {attr: flag}
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
