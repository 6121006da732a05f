"""The provisioner interface: turn a one-time token into the options of one certificate."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pki.errors import unauthorized
from provisioners.audience import Method
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension

if TYPE_CHECKING:
    from pki.policy import IssuancePolicy
    from provisioners.schema import ProvisionerSchema
    from provisioners.ssh import SSHSignGrant


@dataclass(frozen=True)
class Token:
    """A token split into its parts, claims not yet trusted. `signing_input` and `signature`
    let a provisioner verify it without decoding it again (pki.jws.JWSVerifier)."""

    raw: str
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes = b""
    signature: bytes = b""


@dataclass(frozen=True)
class SignOptions:
    """What an authorised token allows: the names, the bounds, the extension to add."""

    provisioner_name: str
    subject: str
    sans: tuple[str, ...]
    claims: Claims
    extension: ProvisionerExtension | None
    token_id: str
    token_expires: datetime
    csr_fingerprint: str | None = None
    # Where the certificate's names come from: the token (`subject`/`sans`, the CSR's names
    # must match them) or the CSR itself (IID, OIDC admins, X5C), optionally limited to
    # `allowed_names`.
    names_from_csr: bool = False
    # With names from the token: whether the CSR's own names must match them (step-ca's JWK
    # and X5C check them; its OIDC provisioner ignores them and issues the token's names).
    check_csr_names: bool = True
    allowed_names: tuple[str, ...] | None = None
    # The certificate may not outlive this (X5C: the presented certificate's notAfter).
    not_after_limit: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProvisionerConfigError(ValueError):
    """A provisioner entry step-ca would refuse to load (the CA does not start)."""


class ProvisionerInitError(RuntimeError):
    """A provisioner that could not initialise (e.g. OIDC discovery unreachable): the CA
    starts anyway and answers its tokens with step-ca's 401. `lookup_keys` lets the registry
    still route the provisioner's tokens to its disabled stand-in."""

    def __init__(self, message: str, lookup_keys: list[str] | None = None) -> None:
        super().__init__(message)
        self.lookup_keys = list(lookup_keys or [])


class Provisioner(ABC):
    """One entry of `authority.provisioners` in ca.json, built from its checked schema
    (provisioners.schema); each type takes its own (`JWKProvisioner(JWKSchema, claims)`)."""

    type_name: str = ""

    def __init__(self, config: ProvisionerSchema, claims: Claims) -> None:
        if not config.name:  # the schema refuses it; a hand-built entry may not
            raise ProvisionerConfigError("provisioner name cannot be empty")
        self.config = config
        self.name = config.name
        self.claims = claims
        # `policy`, compiled by the schema (None: no rules, nothing to check).
        self.policy: IssuancePolicy | None = config.policy.engine if config.policy else None

    @property
    @abstractmethod
    def id(self) -> str:
        """Stable identity, used for paging order and uniqueness (step-ca's GetID)."""

    @property
    @abstractmethod
    def lookup_keys(self) -> list[str]:
        """Keys a token is matched on: JWK `name:kid`; OIDC its client ID; Azure its tenant;
        fragment-addressed types (X5C, AWS, GCP) `<type>/<name>`, the audience's fragment."""

    @abstractmethod
    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        """Verify the token for `method`; raise CAError (401) when it is not acceptable."""

    def authorize_ssh_sign(self, token: Token, audiences: list[str]) -> SSHSignGrant:
        """Verify an SSH certificate token (`step.ssh`); types that sign no SSH certificates
        refuse it, as step-ca's base provisioner does."""
        raise unauthorized(
            f"provisioner.AuthorizeSSHSign not implemented for {self.type_name} "
            f"provisioner '{self.name}'"
        )

    def to_json(self) -> dict[str, Any]:
        """The provisioner as `/provisioners` shows it: its ca.json entry with step's field
        order."""
        order = ["type", "name", "key", "encryptedKey", "claims", "options"]
        entry = self.config.json_object()
        out: dict[str, Any] = {"type": self.type_name}
        for key in order[1:]:
            if key in entry:
                out[key] = entry[key]
        for key, value in entry.items():
            if key not in out and key != "type":
                out[key] = value
        return out


def token_hash(raw: str) -> str:
    """Single-use id for tokens without one: lowercase hex SHA-256 of the token."""
    return hashlib.sha256(raw.encode()).hexdigest()
