"""The GCP provisioner: Google-signed instance identity tokens of Compute Engine VMs.

The client asks the metadata server for an identity token (`format=full`) whose audience is
the CA's sign URL with `#gcp/<name>`; Google signs it (RS256) with a key published in its
JWKS. The CA verifies the signature with that JWKS, then the claims and the instance.

ca.json (step-ca's fields, plus two Stepstone fields):

    {"type": "GCP", "name": "gcp",
     "serviceAccounts": ["1234567890", "sa@project.iam.gserviceaccount.com"],  # sub or email
     "projectIDs": ["my-project"],          # allow-list (empty: any)
     "disableCustomSANs": false,            # true: only <vm>.c.<project>.internal and
                                            #       <vm>.<zone>.c.<project>.internal
     "disableTrustOnFirstUse": false,       # true: an instance may get more than one certificate
     "instanceAge": "1h",                   # refuse VMs created longer ago
     "certsURL": "https://www.googleapis.com/oauth2/v3/certs",   # Stepstone: Google's JWKS
     "issuer": "https://accounts.google.com"}                    # Stepstone: expected `iss`

The JWKS is fetched when the CA starts (failure: the provisioner is Uninitialized, as in
step-ca) and cached per its Cache-Control (provisioners.jwks). `organizationID` needs Google's
Cloud Resource Manager API and credentials, which Stepstone does not use: a provisioner with
it fails to initialise instead of silently allowing every project.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pki.errors import unauthorized
from provisioners.audience import Method, matches
from provisioners.base import (
    ProvisionerInitError,
    SignOptions,
    Token,
)
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension, ProvisionerType
from provisioners.iid import (
    ALLOWED_COMMON_NAMES,
    FragmentIIDProvisioner,
    check_times,
    host_grant,
    instance_age,
    numeric_date,
    verify_with_jwks,
    with_fragment,
)
from provisioners.jwks import FetchError, JWKSCache
from provisioners.schema import GCPSchema
from provisioners.ssh import (
    HOST,
    REQUEST_CERT_TYPE,
    USER,
    SSHOptions,
    SSHSignGrant,
    require_ssh_enabled,
)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUER = "https://accounts.google.com"

_PREFIX = "gcp.authorizeToken"
_REQUIRED = ("instance_id", "instance_name", "project_id", "zone")


def internal_dns_names(instance_name: str, zone: str, project_id: str) -> tuple[str, str]:
    """Compute Engine's internal DNS names of a VM (global and zonal)."""
    return (
        f"{instance_name}.c.{project_id}.internal",
        f"{instance_name}.{zone}.c.{project_id}.internal",
    )


class GCPProvisioner(FragmentIIDProvisioner):
    """step-ca's GCP provisioner (X.509 and SSH sign, like step-ca: no revoke tokens)."""

    type_name = "GCP"
    fragment_type = "gcp"
    config: GCPSchema

    def __init__(self, config: GCPSchema, claims: Claims) -> None:  # the type's own schema
        super().__init__(config, claims)

    def _load(self) -> None:
        config = self.config
        self.service_accounts = tuple(config.serviceAccounts or ())
        self.project_ids = tuple(config.projectIDs or ())
        organization = config.organizationID or ""
        self.disable_custom_sans = bool(config.disableCustomSANs)
        self.disable_tofu = bool(config.disableTrustOnFirstUse)
        # step-ca's defaults: host certificates yes, user certificates no.
        self.disable_ssh_host = bool(config.disableSSHCAHost)
        self.disable_ssh_user = config.disableSSHCAUser is not False
        self.instance_age = instance_age(config.instanceAge)
        self.issuer = config.issuer or GOOGLE_ISSUER
        certs_url = config.certsURL or GOOGLE_CERTS_URL
        if self.project_ids and organization:
            raise ProvisionerInitError(
                "provisioner cannot have both `projectIDs` and `organizationID` set"
            )
        if organization:
            raise ProvisionerInitError(
                "organizationID is not supported (it needs Google's Cloud Resource Manager "
                "API); list the projects in projectIDs instead"
            )
        try:
            self.keys = JWKSCache(certs_url)
            self.keys.load()
        except FetchError as exc:
            raise ProvisionerInitError(str(exc)) from None

    def authorize(self, token: Token, method: Method, audiences: list[str]) -> SignOptions:
        if method is not Method.SIGN:
            raise unauthorized("provisioner.AuthorizeRevoke not implemented")
        claims, engine, expires = self._authorize_token(token, audiences)
        instance_id, instance_name = engine["instance_id"], engine["instance_name"]
        extension = None
        if not self.claims.disable_smallstep_extensions:
            extension = ProvisionerExtension(
                int(ProvisionerType.GCP),
                self.name,
                str(claims.get("sub") or ""),
                ("InstanceID", instance_id, "InstanceName", instance_name),
            )
        common: dict[str, Any] = {"subject": instance_name, "extension": extension}
        if self.disable_custom_sans:
            dns = internal_dns_names(instance_name, engine["zone"], engine["project_id"])
            return self.sign_options(
                token,
                instance_id,
                expires,
                sans=dns,
                extra={ALLOWED_COMMON_NAMES: (instance_name, instance_id, *dns)},
                **common,
            )
        return self.sign_options(
            token, instance_id, expires, sans=(), names_from_csr=True, **common
        )

    def authorize_ssh_sign(self, token: Token, audiences: list[str]) -> SSHSignGrant:
        """step-ca's GCP AuthorizeSSHSign. By the request's certType (default host): a host
        certificate for the VM (key ID its name, principals its internal DNS names,
        provisioners.iid), or, with `disableSSHCAUser: false`, a user certificate for the
        service account (key ID its e-mail, principals `sa_<sub>` and the e-mail, forced)."""
        cert_type = REQUEST_CERT_TYPE.get() or HOST
        prefix = "gcp.AuthorizeSSHSign"
        require_ssh_enabled(self.claims, "gcp", self.name)
        if {HOST: self.disable_ssh_host, USER: self.disable_ssh_user}.get(cert_type):
            which = "Hosts" if cert_type == HOST else "Users"
            raise unauthorized(
                f"{prefix}; sshCA for {which} is disabled for gcp provisioner '{self.name}'"
            )
        if cert_type not in (HOST, USER):
            raise unauthorized(f"{prefix}; invalid requested certType")
        claims, engine, expires = self._authorize_token(token, audiences)
        token_id = self.token_id(token, engine["instance_id"], expires)
        if cert_type == HOST:
            return host_grant(
                self,
                key_id=engine["instance_name"],
                principals=internal_dns_names(
                    engine["instance_name"], engine["zone"], engine["project_id"]
                ),
                disable_custom_sans=self.disable_custom_sans,
                token_id=token_id,
            )
        email = str(claims.get("email") or "")
        principals = (f"sa_{claims.get('sub') or ''}", email)
        return SSHSignGrant(
            provisioner_name=self.name,
            cert_type=USER,
            key_id=email,
            principals=principals,
            token_options=SSHOptions(cert_type=USER, principals=principals),
            subject="",
            claims=self.claims,
            token_id=token_id[0],
            token_expires=token_id[1],
        )

    def _authorize_token(
        self, token: Token, audiences: list[str]
    ) -> tuple[dict[str, Any], dict[str, str], datetime]:
        """step-ca's GCP authorizeToken, in its order; returns (claims, compute_engine, exp)."""
        kid = token.header.get("kid")
        claims = verify_with_jwks(
            self.keys,
            token,
            f"{_PREFIX}; failed to validate gcp token payload - cannot find key for kid {kid}",
        )
        now = datetime.now(UTC)
        if claims.get("iss") != self.issuer:
            raise unauthorized(f"{_PREFIX}; invalid gcp token payload: invalid issuer claim (iss)")
        expires = check_times(claims, f"{_PREFIX}; invalid gcp token payload", now)
        if not matches(claims.get("aud"), with_fragment(audiences, self.token_id_prefix)):
            raise unauthorized(f"{_PREFIX}; invalid gcp token - invalid audience claim (aud)")
        if self.service_accounts and not (
            claims.get("sub") in self.service_accounts
            or claims.get("email") in self.service_accounts
        ):
            raise unauthorized(f"{_PREFIX}; invalid gcp token - invalid subject claim")
        engine, created = _compute_engine(claims)
        if self.project_ids and engine.get("project_id") not in self.project_ids:
            raise unauthorized(f"{_PREFIX}; invalid gcp token - invalid project id")
        if self.instance_age is not None and (
            created is None or now - created > self.instance_age
        ):
            raise unauthorized(
                f"{_PREFIX}; token google.compute_engine.instance_creation_timestamp is too old"
            )
        for key in _REQUIRED:
            if not engine.get(key):
                raise unauthorized(
                    f"{_PREFIX}; gcp token google.compute_engine.{key} cannot be empty"
                )
        return claims, engine, expires


def _compute_engine(claims: dict[str, Any]) -> tuple[dict[str, str], datetime | None]:
    """`google.compute_engine` typed like step-ca's struct: its string fields and the
    instance creation time."""
    failure = f"{_PREFIX}; invalid gcp token payload"
    google = claims.get("google")
    if google is None:
        return {}, None
    if not isinstance(google, dict):
        raise unauthorized(f"{failure}: google is not an object")
    engine = google.get("compute_engine")
    if engine is None:
        return {}, None
    if not isinstance(engine, dict):
        raise unauthorized(f"{failure}: google.compute_engine is not an object")
    out: dict[str, str] = {}
    for key in _REQUIRED:
        value = engine.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise unauthorized(f"{failure}: google.compute_engine.{key} is not a string")
        out[key] = value
    raw_created = engine.get("instance_creation_timestamp")
    created = numeric_date(raw_created)
    if raw_created is not None and created is None:
        raise unauthorized(
            f"{failure}: google.compute_engine.instance_creation_timestamp is not a number"
        )
    return out, created
