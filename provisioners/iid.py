"""Pieces the instance-identity provisioners (AWS, GCP, Azure) share.

step-ca trusts a cloud's signed statement about a virtual machine instead of a key the
operator holds. What the three have in common lives here: the instance age, the
one-certificate-per-instance ("trust on first use") token ids, the time checks with step-ca's
one minute of leeway, audiences with the provisioner's fragment, and the verification of a
JWT against a cached JWKS (Google's, Microsoft's, or a test server's).
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import jwt
from jwt.types import Options

from pki.durations import parse_duration
from pki.errors import unauthorized
from provisioners.base import (
    Provisioner,
    ProvisionerInitError,
    SignOptions,
    Token,
    token_hash,
)
from provisioners.claims import Claims
from provisioners.extension import ProvisionerExtension
from provisioners.jwks import JWKSCache
from provisioners.schema import ProvisionerSchema
from provisioners.ssh import HOST, SSHOptions, SSHSignGrant

#: step-ca validates exp/nbf/iat of identity tokens with one minute of leeway.
LEEWAY = timedelta(minutes=1)

#: Expiry recorded with a trust-on-first-use id: the id must outlive any purge of expired
#: token ids, since step-ca keeps it forever (one certificate per instance, ever).
FOREVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

#: `SignOptions.extra` key: the common names step-ca would accept in the CSR (empty is always
#: accepted). The AWS provisioner requires the token subject (step-ca's commonNameValidator);
#: GCP with disableCustomSANs the instance name/id or internal DNS names (commonNameSliceValidator).
ALLOWED_COMMON_NAMES = "allowed_common_names"


# Characters Go leaves unescaped in a URL fragment besides letters, digits and "-._~".
_GO_FRAGMENT_SAFE = "$&+,/:;=?@!()*"


def sha256_hex(value: str) -> str:
    """Lowercase hex SHA-256 of a string's UTF-8."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def tofu_id(token_id_prefix: str, instance_id: str) -> str:
    """step-ca's trust-on-first-use token id: sha256hex("<type>/<name>.<instance id>")."""
    return sha256_hex(f"{token_id_prefix}.{instance_id}")


def audience_fragment(token_id_prefix: str) -> str:
    """`<type>/<name>` escaped as Go's url.URL.String() escapes a fragment (a name with a
    space becomes `aws/my%20name` in the token's audience)."""
    return quote(token_id_prefix, safe=_GO_FRAGMENT_SAFE)


def fragment_keys(token_id_prefix: str) -> list[str]:
    """Lookup keys of a fragment-addressed provisioner: the id, and its escaped form."""
    escaped = audience_fragment(token_id_prefix)
    return [token_id_prefix] if escaped == token_id_prefix else [token_id_prefix, escaped]


def with_fragment(audiences: list[str], token_id_prefix: str) -> list[str]:
    """The sign audiences with `#<type>/<name>` (step-ca's Audiences.WithFragment), the
    fragment raw or escaped."""
    return [
        f"{aud.partition('#')[0]}#{fragment}"
        for fragment in fragment_keys(token_id_prefix)
        for aud in audiences
    ]


def instance_age(value: str | None) -> timedelta | None:
    """`instanceAge` (a duration the schema checked): None when unset or zero; a negative age
    fails Init."""
    if not value:
        return None
    age = parse_duration(value)
    if age < timedelta(0):
        raise ProvisionerInitError("provisioner instanceAge cannot be negative")
    return age if age > timedelta(0) else None


@contextmanager
def routed_init_errors(lookup_keys: list[str]) -> Iterator[None]:
    """Give a ProvisionerInitError raised inside the provisioner's `lookup_keys`, so the
    registry still routes its tokens to the disabled stand-in (step-ca's "is disabled" 401)."""
    try:
        yield
    except ProvisionerInitError as exc:
        if exc.lookup_keys:
            raise
        raise ProvisionerInitError(str(exc), lookup_keys) from None


class FragmentIIDProvisioner(Provisioner):
    """An instance-identity provisioner addressed by the audience fragment `<type>/<name>`
    (AWS, GCP), with one certificate per instance unless `disableTrustOnFirstUse`.

    Subclasses set `fragment_type`, read their schema's fields in `_load` (setting at least
    `disable_tofu`), and build their SignOptions with `sign_options`.
    """

    #: The `<type>` of the fragment: "aws", "gcp".
    fragment_type: ClassVar[str] = ""
    disable_tofu: bool

    def __init__(self, config: ProvisionerSchema, claims: Claims) -> None:
        super().__init__(config, claims)
        with routed_init_errors(fragment_keys(self.token_id_prefix)):
            self._load()

    @abstractmethod
    def _load(self) -> None:
        """Read and check the type-specific configuration (certificates, allow-lists)."""

    @property
    def token_id_prefix(self) -> str:
        """step-ca's GetIDForToken: the audience fragment that selects this provisioner."""
        return f"{self.fragment_type}/{self.name}"

    @property
    def id(self) -> str:
        return self.token_id_prefix

    @property
    def lookup_keys(self) -> list[str]:
        return fragment_keys(self.token_id_prefix)

    def token_id(self, token: Token, instance_id: str, expires: datetime) -> tuple[str, datetime]:
        """The token's hash (until `expires`) when trust on first use is disabled, else the
        instance's trust-on-first-use id (forever). X.509 and SSH share it, as in step-ca: an
        instance gets one certificate of either kind."""
        if self.disable_tofu:
            return token_hash(token.raw), expires
        return tofu_id(self.token_id_prefix, instance_id), FOREVER

    def sign_options(
        self,
        token: Token,
        instance_id: str,
        expires: datetime,
        *,
        subject: str,
        extension: ProvisionerExtension | None,
        **options: Any,
    ) -> SignOptions:
        """SignOptions with the token id (`token_id`)."""
        token_id, token_expires = self.token_id(token, instance_id, expires)
        return SignOptions(
            provisioner_name=self.name,
            subject=subject,
            claims=self.claims,
            extension=extension,
            token_id=token_id,
            token_expires=token_expires,
            **options,
        )


def host_grant(
    prov: Provisioner,
    *,
    key_id: str,
    principals: tuple[str, ...],
    disable_custom_sans: bool,
    token_id: tuple[str, datetime],
) -> SSHSignGrant:
    """step-ca's IID AuthorizeSSHSign (AWS, GCP hosts, Azure): a host certificate whose key ID
    is the instance's; its principals are the request's, which must be some of the instance's
    own names with `disableCustomSANs` and may be anything (but not nothing) without it; a
    request naming none gets the instance's names."""
    return SSHSignGrant(
        provisioner_name=prov.name,
        cert_type=HOST,
        key_id=key_id,
        principals=principals,
        token_options=SSHOptions(
            cert_type=HOST, principals=principals if disable_custom_sans else ()
        ),
        subject="",
        claims=prov.claims,
        token_id=token_id[0],
        token_expires=token_id[1],
        request_principals=True,
        require_principals=not disable_custom_sans,
    )


# --------------------------------------------------------------------------------------------
# token checks


def numeric_date(value: object) -> datetime | None:
    """A JWT NumericDate (seconds since the epoch, integer or not); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None


def check_times(claims: Mapping[str, Any], prefix: str, now: datetime | None = None) -> datetime:
    """exp/nbf/iat as go-jose's ValidateWithLeeway checks them (1 minute); returns `exp`.

    An identity token without `exp` is refused (every cloud, and step, always set it).
    """
    now = now or datetime.now(UTC)
    dates: dict[str, datetime | None] = {}
    for claim in ("exp", "nbf", "iat"):
        raw = claims.get(claim)
        dates[claim] = numeric_date(raw)
        if raw is not None and dates[claim] is None:
            raise unauthorized(f"{prefix}; invalid token: {claim} is not a number")
    exp, nbf, iat = dates["exp"], dates["nbf"], dates["iat"]
    if exp is None:
        raise unauthorized(f"{prefix}; invalid token: exp is missing")
    if nbf is not None and now + LEEWAY < nbf:
        raise unauthorized(f"{prefix}; invalid token: token not valid yet (nbf)")
    if now - LEEWAY > exp:
        raise unauthorized(f"{prefix}; invalid token: token is expired (exp)")
    if iat is not None and now + LEEWAY < iat:
        raise unauthorized(f"{prefix}; invalid token: token issued in the future (iat)")
    return exp


def audience_contains(claim: object, wanted: str) -> bool:
    """go-jose's Expected.Audience check: the token's `aud` (string or list) contains `wanted`."""
    if isinstance(claim, str):
        return claim == wanted
    if isinstance(claim, list):
        return any(a == wanted for a in claim if isinstance(a, str))
    return False


_NO_CLAIM_CHECKS: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


def verify_with_jwks(cache: JWKSCache, token: Token, failure: str) -> dict[str, Any]:
    """The token's claims once its signature verifies with a key of `cache` for its `kid`.

    Only the signature is checked here; the caller checks the claims. Every failure is a 401
    whose log reason is `failure`.
    """
    alg = token.header.get("alg")
    kid = token.header.get("kid")
    keys = cache.get(kid if isinstance(kid, str) and kid else None)
    decoder = jwt.PyJWT()
    for key in keys:
        if not key.allows(alg):
            continue
        try:
            claims: dict[str, Any] = decoder.decode(
                token.raw,
                key=key.key,
                algorithms=[str(alg)],
                options=_NO_CLAIM_CHECKS,
            )
        except jwt.PyJWTError:
            continue
        return claims
    raise unauthorized(failure)

