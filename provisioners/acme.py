"""The ACME provisioner (RFC 8555): no tokens; its clients prove control of names through
challenges (appliance.acme), and this entry only says which challenges and names it allows.

device-attest-01 (draft-acme-device-attest) proves a `permanent-identifier` (a device serial)
with an attestation statement: `attestationFormats` lists the formats accepted (step-ca's
default: every known one) and `attestationRoots` (base64 of a PEM bundle, `[]byte` in Go) the
roots an attestation chain must reach; without it the `step` format trusts Yubico's roots."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from cryptography import x509

from pki.errors import unauthorized
from pki.policy import IssuancePolicy, PolicyError
from provisioners.audience import Method
from provisioners.base import Provisioner, ProvisionerConfigError, SignOptions, Token
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.schema import ACMESchema
from provisioners.x5c import decode_roots

#: Challenge types step-ca offers when `challenges` is empty.
DEFAULT_CHALLENGES = ("http-01", "dns-01", "tls-alpn-01")
#: The ones this build validates (device-attest-01: the `step` attestation format only).
SUPPORTED_CHALLENGES = frozenset({"http-01", "dns-01", "tls-alpn-01", "device-attest-01"})
#: RFC 8738: an IP address is never proved through DNS.
IP_CHALLENGES = frozenset({"http-01", "tls-alpn-01"})
DEVICE_ATTEST = "device-attest-01"
PERMANENT_IDENTIFIER = "permanent-identifier"
#: The attestation formats step-ca knows; all are enabled when `attestationFormats` is empty.
ATTESTATION_FORMATS = ("apple", "step", "tpm", "android-key")
DEFAULT_HTTP_PORT = 80
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def authz_challenges(offered: list[str], kind: str, value: str) -> list[str]:
    """The challenges of one authorization, as step-ca offers them: only dns-01 for a
    wildcard (`value` as ordered, `*.` included), never dns-01 for an IP address, and
    device-attest-01 for a permanent identifier and nothing else."""
    if kind == PERMANENT_IDENTIFIER:
        return [c for c in offered if c == DEVICE_ATTEST]
    offered = [c for c in offered if c != DEVICE_ATTEST]
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
        entry = config.json_object()
        self.attestation_formats = _attestation_formats(entry.get("attestationFormats"))
        #: None: not configured (each format then trusts its vendor's roots).
        self.attestation_roots = _attestation_roots(entry.get("attestationRoots"))

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

    def attestation_format_enabled(self, fmt: str) -> bool:
        """step-ca's IsAttestationFormatEnabled (case-insensitive)."""
        return fmt.lower() in (self.attestation_formats or ATTESTATION_FORMATS)

    def extension(self, account_id: str) -> ProvisionerExtension:
        """The provisioner extension of an ACME certificate (credential: the account)."""
        return ProvisionerExtension(int(ProvisionerType.ACME), self.name, account_id)

    def identifier_problem(
        self, kind: str, value: str, authority_policy: IssuancePolicy | None = None
    ) -> str | None:
        """Why an order's identifier is refused, or None: not a valid identifier, or outside
        this provisioner's issuance policy, then the authority's (step-ca's new-order)."""
        problem = self._invalid(kind, value)
        if problem is None and kind == PERMANENT_IDENTIFIER and self.policy is not None:
            return f"not authorized: invalid ACME identifier type '{kind}' provided"
        if problem is None:
            checked = "dns" if kind == PERMANENT_IDENTIFIER else kind  # step-ca: as a name
            for rules in (self.policy, authority_policy):
                if rules is not None:
                    try:
                        rules.check_identifier(checked, value)
                    except PolicyError as exc:
                        return f"not authorized: {exc.message}"
        return problem

    def _invalid(self, kind: str, value: str) -> str | None:
        """step-ca's checks: dns names and IP addresses; a wildcard needs dns-01; a permanent
        identifier (not empty) needs device-attest-01."""
        if kind == PERMANENT_IDENTIFIER:
            if not value:
                return "permanent identifier cannot be empty"
            if DEVICE_ATTEST not in self.challenges:
                return f"{value!r} needs device-attest-01, which this provisioner does not offer"
            return None
        if kind == "ip":
            if "%" in value:  # a zone names one of the CA's own interfaces
                return f"{value!r} is an IP address with a zone"
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


def _attestation_formats(value: Any) -> list[str]:
    """`attestationFormats`, lower case; ProvisionerConfigError for an unknown one."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProvisionerConfigError("attestationFormats must be a list of strings")
    for fmt in value:
        if fmt.lower() not in ATTESTATION_FORMATS:
            raise ProvisionerConfigError(f"acme attestation format {fmt!r} is not supported")
    return [v.lower() for v in value]


def _attestation_roots(value: Any) -> list[x509.Certificate] | None:
    """The certificates of `attestationRoots` (standard base64 of a PEM bundle), as step-ca
    parses them at load: a broken one, or none at all, stops the CA."""
    if value in (None, ""):
        return None
    try:
        pem = decode_roots(value)
    except ValueError:
        raise ProvisionerConfigError(
            "error parsing attestationRoots: not a base64 PEM bundle"
        ) from None
    if b"-----BEGIN" not in pem:
        raise ProvisionerConfigError("error parsing attestationRoots: no certificates found")
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ProvisionerConfigError(
            "error parsing attestationRoots: malformed certificate"
        ) from None
