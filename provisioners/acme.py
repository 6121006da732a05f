"""The ACME provisioner (RFC 8555): no tokens; its clients prove control of names through
challenges (appliance.acme), and this entry only says which challenges and names it allows."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pki.errors import unauthorized
from pki.policy import IssuancePolicy, PolicyError
from provisioners.audience import Method
from provisioners.base import Provisioner, SignOptions, Token
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.schema import ACMESchema

#: Challenge types step-ca offers when `challenges` is empty.
DEFAULT_CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
#: The ones this build validates.
SUPPORTED_CHALLENGES = frozenset({"http-01", "dns-01", "tls-alpn-01"})
#: RFC 8738: an IP address is never proved through DNS.
IP_CHALLENGES = frozenset({"http-01", "tls-alpn-01"})
DEFAULT_HTTP_PORT = 80
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def authz_challenges(offered: list[str], kind: str, value: str) -> list[str]:
    """The challenges of one authorization, as step-ca offers them: only dns-01 for a
    wildcard (`value` as ordered, `*.` included), never dns-01 for an IP address."""
    if kind == "ip":
        return [c for c in offered if c in IP_CHALLENGES]
    if value.startswith("*."):
        return [c for c in offered if c == "dns-01"]
    return list(offered)


class ACMEProvisioner(Provisioner):
    """An `ACME` entry of ca.json."""

    type_name = "ACME"

    def __init__(self, config: ACMESchema, claims: Claims) -> None:
        super().__init__(config, claims)
        self.acme = config
        own = config.stepstone
        #: The test block's http-01 port; it wins over `step-ca --acme-http-port`.
        self.pinned_http_port = own.httpPort if own else None
        self.http_port = self.pinned_http_port or DEFAULT_HTTP_PORT
        self.hosts = dict(own.hosts or {}) if own else {}

    @property
    def id(self) -> str:
        return f"acme/{self.name}"

    @property
    def lookup_keys(self) -> list[str]:
        return []

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        raise unauthorized(f"provisioner '{self.name}' does not accept one-time tokens")

    @property
    def challenges(self) -> list[str]:
        """The challenge types offered for a name, in the configured order."""
        wanted = [c.lower() for c in self.acme.challenges or DEFAULT_CHALLENGES]
        return [c for c in dict.fromkeys(wanted) if c in SUPPORTED_CHALLENGES]

    def challenges_for(self, kind: str, value: str) -> list[str]:
        return authz_challenges(self.challenges, kind, value)

    def extension(self, account_id: str) -> ProvisionerExtension:
        """The provisioner extension of an ACME certificate (credential: the account)."""
        return ProvisionerExtension(int(ProvisionerType.ACME), self.name, account_id)

    def identifier_problem(
        self, kind: str, value: str, authority_policy: IssuancePolicy | None = None
    ) -> str | None:
        """Why an order's identifier is refused, or None: not a valid identifier, or outside
        this provisioner's issuance policy, then the authority's (step-ca's new-order)."""
        problem = self._invalid(kind, value)
        if problem is None:
            for rules in (self.policy, authority_policy):
                if rules is not None:
                    try:
                        rules.check_identifier(kind, value)
                    except PolicyError as exc:
                        return f"not authorized: {exc.message}"
        return problem

    def _invalid(self, kind: str, value: str) -> str | None:
        """step-ca's checks: dns names and IP addresses only; a wildcard needs dns-01."""
        if kind == "ip":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                return f"{value!r} is not an IP address"
            if not self.challenges_for(kind, value):
                return f"{value!r} needs http-01 or tls-alpn-01, which this provisioner lacks"
            return None
        if kind != "dns":
            return f"identifier type {kind!r} is not supported"
        name = value.lower()
        if name.startswith("*."):
            if "dns-01" not in self.challenges:
                return f"wildcard {value!r} needs dns-01, which this provisioner does not offer"
            name = name[2:]
        labels = name.split(".")
        if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            return f"{value!r} is not a valid DNS name"
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return None
        return f"{value!r} is an IP address: use an ip identifier"

    def to_json(self) -> dict[str, Any]:
        """step-ca's field order for an ACME provisioner."""
        order = [
            "type", "name", "forceCN", "requireEAB", "challenges", "attestationFormats",
            "attestationRoots", "termsOfService", "website", "caaIdentities", "claims",
            "options",
        ]  # fmt: skip
        entry = self.config.json_object()
        out: dict[str, Any] = {"type": self.type_name}
        for key in order[1:]:
            if key in entry:
                out[key] = entry[key]
        for key, value in entry.items():
            if key not in out and key != "type":
                out[key] = value
        return out
