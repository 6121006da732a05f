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
    "minUserSSHCertDuration": "min_user_ssh",
    "maxUserSSHCertDuration": "max_user_ssh",
    "defaultUserSSHCertDuration": "default_user_ssh",
    "minHostSSHCertDuration": "min_host_ssh",
    "maxHostSSHCertDuration": "max_host_ssh",
    "defaultHostSSHCertDuration": "default_host_ssh",
}
_FLAGS = {
    "disableRenewal": "disable_renewal",
    "allowRenewalAfterExpiry": "allow_renewal_after_expiry",
    "disableSmallstepExtensions": "disable_smallstep_extensions",
    "enableSSHCA": "enable_ssh_ca",
}


class ClaimsError(ValueError):
    """A claims block that step-ca would refuse at start-up."""


@dataclass(frozen=True)
class Claims:
    """Effective claims of a provisioner (X.509 and SSH)."""

    min_tls: timedelta = timedelta(minutes=5)
    max_tls: timedelta = timedelta(hours=24)
    default_tls: timedelta = timedelta(hours=24)
    disable_renewal: bool = False
    allow_renewal_after_expiry: bool = False
    disable_smallstep_extensions: bool = False
    # SSH (step-ca's built-in user 5m/24h/16h, host 5m/30d/30d; the SSH CA off).
    enable_ssh_ca: bool = False
    min_user_ssh: timedelta = timedelta(minutes=5)
    max_user_ssh: timedelta = timedelta(hours=24)
    default_user_ssh: timedelta = timedelta(hours=16)
    min_host_ssh: timedelta = timedelta(minutes=5)
    max_host_ssh: timedelta = timedelta(days=30)
    default_host_ssh: timedelta = timedelta(days=30)

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
            ("minUserSSHCertDuration", self.min_user_ssh),
            ("maxUserSSHCertDuration", self.max_user_ssh),
            ("defaultUserSSHCertDuration", self.default_user_ssh),
            ("minHostSSHCertDuration", self.min_host_ssh),
            ("maxHostSSHCertDuration", self.max_host_ssh),
            ("defaultHostSSHCertDuration", self.default_host_ssh),
        ):
            if value <= timedelta(0):
                raise ClaimsError(f"claims: {name} must be greater than 0")
        if not self.min_tls <= self.default_tls <= self.max_tls:
            raise ClaimsError(
                "claims: minTLSCertDuration <= defaultTLSCertDuration <= maxTLSCertDuration "
                "does not hold"
            )
        for kind, low, default, high in (
            ("User", self.min_user_ssh, self.default_user_ssh, self.max_user_ssh),
            ("Host", self.min_host_ssh, self.default_host_ssh, self.max_host_ssh),
        ):
            if not low <= default <= high:
                raise ClaimsError(
                    f"claims: min{kind}SSHCertDuration <= default{kind}SSHCertDuration <= "
                    f"max{kind}SSHCertDuration does not hold"
                )
