"""The OIDC provisioner: an identity provider's ID token is the one-time token.

step-ca's OIDC provisioner, check for check: at start it fetches the provider's discovery
document and key set (a failure leaves the CA running with this provisioner disabled); a token
must be signed by one of the provider's keys (an unknown `kid` reloads the key set once, rate
limited), come from the discovered issuer, name our client ID in `aud` (and in `azp` if it has
one), be within its times (1 minute leeway) and pass the `domains` and `groups` filters. The
`nonce` makes it single use.

The certificate gets CN = `sub` and SANs = the email and the URI `<iss>#<sub>`; an admin
(e-mail or group listed in `admins`) gets the names of the CSR instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jwt

from pki.errors import unauthorized
from pki.jose import LEEWAY_SECONDS
from provisioners.audience import Method
from provisioners.base import (
    Provisioner,
    ProvisionerInitError,
    SignOptions,
    Token,
)
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.jwks import (
    REFRESH_INTERVAL,
    TIMEOUT,
    FetchError,
    JWKSCache,
    check_url,
    fetch_json,
)
from provisioners.schema import OIDCSchema
from provisioners.ssh import (
    USER,
    SSHOptions,
    SSHSignGrant,
    oidc_principals,
    require_ssh_enabled,
)

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/openid-configuration"

# go-jose/Go url: characters a fragment keeps unescaped (besides alphanumerics and -_.~).
_FRAGMENT_SAFE = "$&+,/:;=?@!()*"
# step-ca's JSON field order for an OIDC provisioner.
_FIELD_ORDER = (
    "type",
    "name",
    "clientID",
    "clientSecret",
    "configurationEndpoint",
    "tenantID",
    "admins",
    "domains",
    "groups",
    "listenAddress",
    "scopes",
    "authParams",
    "claims",
    "options",
)
_OMIT_EMPTY = frozenset(
    {"tenantID", "admins", "domains", "groups", "listenAddress", "scopes", "authParams"}
)


class OIDCInitError(ProvisionerInitError):
    """Initialisation failed; the client ID still routes tokens to the disabled stand-in."""


def configuration_url(endpoint: str) -> str:
    """The discovery URL: `/.well-known/openid-configuration` joined on unless present."""
    parts = urlsplit(endpoint)
    if WELL_KNOWN in parts.path:
        return endpoint
    path = parts.path.rstrip("/") + WELL_KNOWN
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def sanitize_email(email: str) -> str:
    """The domain part lower-cased (step-ca compares e-mails this way)."""
    local, at, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}" if at else email


def issuer_subject_uri(issuer: str, subject: str) -> str | None:
    """`<iss>#<sub>` as Go's url.URL writes it, or None when the issuer has no scheme."""
    try:
        parts = urlsplit(issuer)
    except ValueError:
        return None
    if not parts.scheme:
        return None
    base = issuer.split("#", 1)[0]
    return f"{base}#{quote(subject, safe=_FRAGMENT_SAFE)}"


def _split_host_port(value: str) -> tuple[str, str]:
    """Go's net.SplitHostPort, enough of it: `host:port`, `[v6]:port`, `:port`."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"address {value}: missing port in address")
        return host, rest[1:]
    host, sep, port = value.rpartition(":")
    if not sep:
        raise ValueError(f"address {value}: missing port in address")
    if ":" in host:
        raise ValueError(f"address {value}: too many colons in address")
    return host, port


def _numeric(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise unauthorized(f"oidc.AuthorizeToken; invalid {name} claim")
    return float(value)


class OIDCProvisioner(Provisioner):
    """step-ca's OIDC provisioner."""

    type_name = "OIDC"
    config: OIDCSchema

    def __init__(
        self,
        config: OIDCSchema,
        claims: Claims,
        *,
        timeout: float = TIMEOUT,
        refresh_interval: float = REFRESH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, claims)
        self.client_id = config.clientID or ""
        self.client_secret = config.clientSecret or ""
        self.tenant_id = config.tenantID or ""
        self.admins = list(config.admins or [])
        self.domains = [d.lower() for d in config.domains or []]
        self.groups = list(config.groups or [])
        self._admin_emails = {sanitize_email(a) for a in self.admins}
        self._now = now
        keys = [self.client_id] if self.client_id else []

        def fail(message: str) -> OIDCInitError:
            return OIDCInitError(message, keys)

        if not self.client_id:
            raise fail("clientID cannot be empty")
        endpoint = config.configurationEndpoint or ""
        if not endpoint:
            raise fail("configurationEndpoint cannot be empty")
        listen = config.listenAddress
        if listen:
            try:
                _split_host_port(listen)
            except ValueError as exc:
                raise fail(f"error parsing listenAddress: {exc}") from None
        self.configuration_url = configuration_url(endpoint)
        try:
            fetched = fetch_json(
                self.configuration_url, what="openid-configuration", timeout=timeout
            )
        except FetchError as exc:
            raise fail(str(exc)) from None
        document = fetched.document
        if not isinstance(document, dict):
            raise fail(f"error parsing {endpoint}: not a JSON object")
        issuer = document.get("issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(issuer, str) or not issuer:
            raise fail(f"error parsing {endpoint}: issuer cannot be empty")
        if not isinstance(jwks_uri, str) or not jwks_uri:
            raise fail(f"error parsing {endpoint}: jwks_uri cannot be empty")
        if self.tenant_id:
            issuer = issuer.replace("{tenantid}", self.tenant_id)
        self.issuer = issuer
        self.configuration: dict[str, Any] = document
        try:
            check_url(jwks_uri, "jwks_uri")
            self.jwks = JWKSCache(
                jwks_uri, timeout=timeout, refresh_interval=refresh_interval, clock=clock
            )
            self.jwks.load()
        except FetchError as exc:
            raise fail(str(exc)) from None
        self._jwt = jwt.PyJWS()

    # --- identity ------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.client_id

    @property
    def lookup_keys(self) -> list[str]:
        return [self.client_id]

    def is_admin(self, email: str | None, groups: list[str]) -> bool:
        """An e-mail (domain case-insensitive) or any group listed in `admins`."""
        if email and sanitize_email(email) in self._admin_emails:
            return True
        return any(g in self.admins for g in groups)

    def to_json(self) -> dict[str, Any]:
        entry = self.config.json_object()
        out: dict[str, Any] = {"type": self.type_name}
        for key in _FIELD_ORDER[1:]:
            value = entry.get(key)
            if key == "clientSecret":
                out[key] = value or ""
            elif key in entry and (key not in _OMIT_EMPTY or value):
                out[key] = value
        for key, value in entry.items():
            if key not in _FIELD_ORDER:
                out[key] = value
        return out

    # --- tokens --------------------------------------------------------------------------

    def _verify_signature(self, token: Token) -> dict[str, Any]:
        kid = token.header.get("kid")
        alg = token.header.get("alg")
        candidates = self.jwks.get(kid if isinstance(kid, str) else None)
        for key in candidates:
            if not key.allows(alg):
                continue
            try:
                payload = self._jwt.decode(
                    token.raw,
                    key=key.key,
                    algorithms=[str(alg)],
                )
            except jwt.PyJWTError:
                continue
            try:
                claims = json.loads(payload)
            except ValueError:
                break
            if isinstance(claims, dict):
                return claims
            break
        raise unauthorized("oidc.AuthorizeToken; cannot validate oidc token")

    def _validate_payload(self, claims: dict[str, Any]) -> None:
        prefix = "oidc.AuthorizeToken; validatePayload: failed to validate oidc token payload"
        if claims.get("iss") != self.issuer:
            raise unauthorized(f"{prefix}: invalid issuer claim (iss)")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.client_id not in auds:
            raise unauthorized(f"{prefix}: invalid audience claim (aud)")
        now = self._now()
        nbf = _numeric(claims, "nbf")
        exp = _numeric(claims, "exp")
        iat = _numeric(claims, "iat")
        if nbf is not None and now + LEEWAY_SECONDS < nbf:
            raise unauthorized(f"{prefix}: token not valid yet (nbf)")
        if exp is None:
            raise unauthorized(f"{prefix}: token has no expiry (exp)")
        if now - LEEWAY_SECONDS > exp:
            raise unauthorized(f"{prefix}: token is expired (exp)")
        if iat is not None and now + LEEWAY_SECONDS < iat:
            raise unauthorized(f"{prefix}: token issued in the future (iat)")
        azp = claims.get("azp")
        if azp not in (None, "") and azp != self.client_id:
            raise unauthorized(f"{prefix}: invalid azp")
        email = claims.get("email")
        if email is not None and not isinstance(email, str):
            raise unauthorized(f"{prefix}: invalid email claim")
        groups = claims.get("groups")
        if groups is not None and (
            not isinstance(groups, list) or not all(isinstance(g, str) for g in groups)
        ):
            raise unauthorized(f"{prefix}: invalid groups claim")
        # Domains: e-mail admins are exempt (step-ca checks IsAdmin(email) here).
        if email and self.domains and not self.is_admin(email, []):
            domain = sanitize_email(email).rpartition("@")[2]
            if "@" not in email or domain not in self.domains:
                raise unauthorized(f"{prefix}: email is not allowed")
        if self.groups and not set(self.groups) & set(groups or []):
            raise unauthorized(
                "oidc.AuthorizeToken; validatePayload: oidc token payload validation failed: "
                "invalid group"
            )

    def authorize_ssh_sign(self, token: Token, audiences: list[str]) -> SSHSignGrant:
        """step-ca's OIDC AuthorizeSSHSign: an e-mail is required; a user certificate for
        its principals (provisioners.ssh.oidc_principals), or anything the request names
        for an admin."""
        require_ssh_enabled(self.claims, "oidc", self.name)
        claims = self._verify_signature(token)
        self._validate_payload(claims)
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise unauthorized("oidc.AuthorizeToken; oidc token has no nonce")
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise unauthorized(
                "oidc.AuthorizeSSHSign: failed to validate oidc token payload: email not found"
            )
        principals = oidc_principals(email)
        admin = self.is_admin(email, list(claims.get("groups") or []))
        return SSHSignGrant(
            provisioner_name=self.name,
            cert_type=USER,
            key_id=email,
            principals=principals,
            token_options=SSHOptions(cert_type=USER, principals=principals),
            subject="",
            claims=self.claims,
            token_id=nonce,
            token_expires=datetime.fromtimestamp(float(claims["exp"]), UTC),
            from_request=admin,
        )

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        if method is Method.RENEW:
            raise unauthorized("oidc.AuthorizeRenew; oidc tokens cannot renew certificates")
        claims = self._verify_signature(token)
        self._validate_payload(claims)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise unauthorized("oidc.AuthorizeToken; oidc token subject cannot be empty")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise unauthorized("oidc.AuthorizeToken; oidc token has no nonce")
        email = claims.get("email") or None
        groups = list(claims.get("groups") or [])
        admin = self.is_admin(email, groups)
        if method is Method.REVOKE and not admin:
            raise unauthorized("oidc.AuthorizeRevoke; cannot revoke with non-admin oidc token")
        sans: list[str] = [email] if email else []
        uri = issuer_subject_uri(str(claims["iss"]), subject)
        if uri:
            sans.append(uri)
        extension = None
        if not self.claims.disable_smallstep_extensions:
            extension = ProvisionerExtension(int(ProvisionerType.OIDC), self.name, self.client_id)
        return SignOptions(
            provisioner_name=self.name,
            subject=subject,
            sans=tuple(sans),
            claims=self.claims,
            extension=extension,
            token_id=nonce,
            token_expires=datetime.fromtimestamp(float(claims["exp"]), UTC),
            names_from_csr=admin,
            check_csr_names=False,
            extra={"email": email, "groups": groups, "admin": admin},
        )
