"""The Azure provisioner: managed-identity access tokens of Azure VMs.

The client asks the instance metadata service for an access token of the VM's managed
identity; Microsoft Entra ID signs it (RS256). The CA finds the provisioner by the token's
tenant (`tid`), verifies the signature with the tenant's JWKS (from OpenID discovery), then
the audience, issuer, tenant and the VM named by `xms_mirid`.

ca.json (step-ca's fields, plus Stepstone fields for where Microsoft's keys are):

    {"type": "Azure", "name": "azure",
     "tenantID": "<tenant uuid>",
     "resourceGroups": ["rg1"], "subscriptionIDs": ["<uuid>"], "objectIDs": ["<oid>"],
     "audience": "https://management.azure.com/",     # the default
     "disableCustomSANs": false,        # true: CN and DNS name must be the VM name, nothing else
     "disableTrustOnFirstUse": false,   # true: the same identity may get many certificates
     "oidcDiscoveryURL": "...",         # Stepstone, optional: OpenID discovery (see below)
     "jwksURL": "...",                  # Stepstone, optional: overrides discovery's jwks_uri
     "issuer": "..."}                   # Stepstone, optional: overrides discovery's issuer

oidcDiscoveryURL defaults to Microsoft's
`https://login.microsoftonline.com/<tenantID>/.well-known/openid-configuration`; `{tenantid}`
in it is replaced by the tenant ID. Discovery is skipped when both jwksURL and issuer are
given. Discovery and the JWKS are fetched when the CA starts (failure:
the provisioner is Uninitialized, as in step-ca); the JWKS is cached (provisioners.jwks).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

from pki.errors import unauthorized
from provisioners.audience import Method
from provisioners.base import (
    Provisioner,
    ProvisionerInitError,
    SignOptions,
    Token,
    token_hash,
)
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.iid import (
    FOREVER,
    audience_contains,
    check_times,
    host_grant,
    routed_init_errors,
    sha256_hex,
    verify_with_jwks,
)
from provisioners.jwks import FetchError, JWKSCache, check_url, fetch_json
from provisioners.schema import AzureSchema
from provisioners.ssh import SSHSignGrant, require_ssh_enabled

AZURE_OIDC_BASE_URL = "https://login.microsoftonline.com"
AZURE_DEFAULT_AUDIENCE = "https://management.azure.com/"

XMS_MIRID = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
    r"Microsoft.(Compute/virtualMachines|ManagedIdentity/userAssignedIdentities)/([^/]+)$",
    re.IGNORECASE,
)
_PREFIX = "azure.authorizeToken"


def default_discovery_url(tenant_id: str) -> str:
    return f"{AZURE_OIDC_BASE_URL}/{tenant_id}/.well-known/openid-configuration"


class AzureProvisioner(Provisioner):
    """step-ca's Azure provisioner (X.509 and SSH host sign, like step-ca: no revoke tokens)."""

    type_name = "Azure"
    config: AzureSchema

    def __init__(self, config: AzureSchema, claims: Claims) -> None:
        super().__init__(config, claims)
        with routed_init_errors([config.tenantID] if config.tenantID else []):
            self._load(config)

    def _load(self, config: AzureSchema) -> None:
        self.tenant_id = config.tenantID or ""
        self.resource_groups = tuple(config.resourceGroups or ())
        self.subscription_ids = tuple(config.subscriptionIDs or ())
        self.object_ids = tuple(config.objectIDs or ())
        self.audience = config.audience or AZURE_DEFAULT_AUDIENCE
        self.disable_custom_sans = bool(config.disableCustomSANs)
        self.disable_tofu = bool(config.disableTrustOnFirstUse)
        discovery = config.oidcDiscoveryURL or ""
        jwks_url = config.jwksURL or ""
        issuer = config.issuer or ""
        if not self.tenant_id:
            raise ProvisionerInitError("provisioner tenantId cannot be empty")
        try:
            if not (jwks_url and issuer):
                url = (discovery or default_discovery_url(self.tenant_id)).replace(
                    "{tenantid}", self.tenant_id
                )
                found_issuer, found_jwks = _discover(url)
                issuer, jwks_url = issuer or found_issuer, jwks_url or found_jwks
            self.issuer = issuer
            self.keys = JWKSCache(jwks_url)
            self.keys.load()
        except FetchError as exc:
            raise ProvisionerInitError(str(exc)) from None

    @property
    def id(self) -> str:
        return self.tenant_id

    @property
    def lookup_keys(self) -> list[str]:
        """Azure tokens carry no fragment: step-ca finds the provisioner by `tid`."""
        return [self.tenant_id]

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        if method is not Method.SIGN:
            raise unauthorized("provisioner.AuthorizeRevoke not implemented")
        claims, expires = self._authorize_token(token)
        name = self._vm_name(claims, "AuthorizeSign")
        extension = None
        if not self.claims.disable_smallstep_extensions:
            extension = ProvisionerExtension(int(ProvisionerType.AZURE), self.name, self.tenant_id)
        token_id, token_expires = self._token_id(token, claims, expires)
        common: dict[str, Any] = {
            "provisioner_name": self.name,
            "subject": name,
            "claims": self.claims,
            "extension": extension,
            "token_id": token_id,
            "token_expires": token_expires,
        }
        if self.disable_custom_sans:
            # CN empty or the VM name; DNS names only the VM name; nothing else.
            return SignOptions(sans=(name,), **common)
        return SignOptions(sans=(), names_from_csr=True, **common)

    def authorize_ssh_sign(self, token: Token, audiences: list[str]) -> SSHSignGrant:
        """step-ca's Azure AuthorizeSSHSign: `enableSSHCA`; a host certificate, key ID and
        principal the VM name (provisioners.iid). Unlike step-ca, the resource group,
        subscription and object ID allow-lists apply here too."""
        require_ssh_enabled(self.claims, "azure", self.name)
        claims, expires = self._authorize_token(token)
        name = self._vm_name(claims, "AuthorizeSSHSign")
        return host_grant(
            self,
            key_id=name,
            principals=(name,),
            disable_custom_sans=self.disable_custom_sans,
            token_id=self._token_id(token, claims, expires),
        )

    def _vm_name(self, claims: dict[str, Any], method: str) -> str:
        """The VM (or identity) name of `xms_mirid`, once the allow-lists accept it."""
        match = XMS_MIRID.match(str(claims.get("xms_mirid") or ""))
        assert match is not None  # checked by _authorize_token
        subscription, group, name = match.group(1), match.group(2), match.group(4)
        object_id = claims.get("oid")
        prefix = f"azure.{method}; azure token validation failed"
        if self.resource_groups and group not in self.resource_groups:
            raise unauthorized(f"{prefix} - invalid resource group")
        if self.subscription_ids and subscription not in self.subscription_ids:
            raise unauthorized(f"{prefix} - invalid subscription id")
        if self.object_ids and object_id not in self.object_ids:
            raise unauthorized(f"{prefix} - invalid identity object id")
        return name

    def _token_id(
        self, token: Token, claims: dict[str, Any], expires: datetime
    ) -> tuple[str, datetime]:
        """The identity's trust-on-first-use id (forever), or with `disableTrustOnFirstUse`
        an id that is new on every use: step-ca lets such tokens be reused (the metadata
        service hands out the same token for hours)."""
        if self.disable_tofu:
            return f"{token_hash(token.raw)}.{secrets.token_hex(16)}", expires
        return sha256_hex(str(claims["xms_mirid"])), FOREVER

    def _authorize_token(self, token: Token) -> tuple[dict[str, Any], datetime]:
        """step-ca's Azure authorizeToken, in its order; returns (claims, exp)."""
        claims = verify_with_jwks(self.keys, token, f"{_PREFIX}; cannot validate azure token")
        failed = f"{_PREFIX}; failed to validate azure token payload"
        if not audience_contains(claims.get("aud"), self.audience):
            raise unauthorized(f"{failed}: invalid audience claim (aud)")
        if claims.get("iss") != self.issuer:
            raise unauthorized(f"{failed}: invalid issuer claim (iss)")
        expires = check_times(claims, failed, datetime.now(UTC))
        if claims.get("tid") != self.tenant_id:
            raise unauthorized(
                f"{_PREFIX}; azure token validation failed - invalid tenant id claim (tid)"
            )
        mirid = claims.get("xms_mirid")
        if not isinstance(mirid, str) or XMS_MIRID.match(mirid) is None:
            raise unauthorized(f"{_PREFIX}; error parsing xms_mirid claim - {mirid}")
        oid = claims.get("oid")
        if oid is not None and not isinstance(oid, str):
            raise unauthorized(f"{failed}: oid is not a string")
        return claims, expires


def _discover(url: str) -> tuple[str, str]:
    """(issuer, jwks_uri) of an OpenID configuration document."""
    check_url(url, "oidcDiscoveryURL")
    document = fetch_json(url, what="OpenID configuration").document
    if not isinstance(document, dict):
        raise FetchError(f"error parsing {url}: not a JSON object")
    issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
    if not isinstance(issuer, str) or not issuer:
        raise FetchError(f"error parsing {url}: issuer cannot be empty")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise FetchError(f"error parsing {url}: jwks_uri cannot be empty")
    return issuer, jwks_uri
