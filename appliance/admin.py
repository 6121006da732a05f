"""The administration API's authentication: step-ca's x5c admin token.

`Authorization: <token>` carries a JWT whose `x5c` header is a certificate chain this CA issued
(verified to its roots, for client authentication, the leaf allowed to sign), signed by the
leaf's key, with `iss` = `step-admin-client/1.0` (or, as older step did, the provisioner's
name), `aud` = the request's URL (`https://<dnsName>[:port]<path>`, any of the CA's names,
port ignored), a subject, `exp` (one minute leeway). The token is single-use: its SHA-256 is
burned in `used_tokens`, shared by every appliance of the database.

Who is an admin. step-ca keeps admins in its database; Stepstone has no admin store yet and
recognises one super-admin, the one `step ca init --remote-management` creates: subject `step`
on the first JWK provisioner of ca.json. The leaf's provisioner extension must name that
provisioner and its CN, DNS SANs or e-mails must include `step`. The API is served only when
ca.json has `authority.enableAdmin: true`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import jwt
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from appliance.authority import Authority
from appliance.db.models import used_tokens
from pki.errors import CAError, ErrorKind
from pki.jose import LEEWAY_SECONDS, verification_algorithms
from provisioners.audience import matches
from provisioners.base import token_hash
from provisioners.extension import ProvisionerExtension
from provisioners.jwk import JWKProvisioner
from provisioners.registry import parse_token

ADMIN_ISSUER = "step-admin-client/1.0"
SUPER_ADMIN = "step"
MAX_CHAIN = 8


@dataclass(frozen=True)
class Admin:
    """An authenticated admin: its subject and provisioner."""

    subject: str
    provisioner: str


def admin_unauthorized(message: str) -> CAError:
    """A refused admin request: 401 in step-ca's form, the reason shown (as step-ca's admin
    errors are)."""
    return CAError(ErrorKind.UNAUTHORIZED, message, public=message, verbatim=True)


def admin_provisioner(authority: Authority) -> str | None:
    """The provisioner of the super-admin: the first JWK provisioner."""
    for prov in authority.registry:
        if isinstance(prov, JWKProvisioner):
            return prov.name
    return None


def _chain(header: dict[str, Any]) -> list[x509.Certificate]:
    items = header.get("x5c")
    if not isinstance(items, list) or not items or len(items) > MAX_CHAIN:
        raise admin_unauthorized("error parsing x5c token: missing or invalid x5c header")
    try:
        return [
            x509.load_der_x509_certificate(base64.b64decode(str(i), validate=True)) for i in items
        ]
    except (binascii.Error, ValueError):
        raise admin_unauthorized("error parsing x5c token: invalid x5c certificate") from None


def _verify_leaf(authority: Authority, chain: list[x509.Certificate]) -> x509.Certificate:
    verifier = (
        PolicyBuilder()
        .store(Store(authority.roots))
        .time(datetime.now(UTC))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    leaf = chain[0]
    try:
        verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        raise admin_unauthorized(f"error verifying x5c certificate chain in token: {exc}") from None
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise admin_unauthorized("certificate used to sign x5c token lacks key usages") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise admin_unauthorized("certificate used to sign x5c token is not for client auth")
    if not ku.digital_signature:
        raise admin_unauthorized(
            "certificate used to sign x5c token cannot be used for digital signature"
        )
    return leaf


def _names(leaf: x509.Certificate) -> list[str]:
    names = [str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return names
    return (
        names + sans.get_values_for_type(x509.DNSName) + sans.get_values_for_type(x509.RFC822Name)
    )


def _burn(authority: Authority, jti: str, provisioner: str, expires: datetime) -> None:
    """Spend the token by its `jti`: its raw text would not do, as an ECDSA signature has two
    valid forms (s and n - s) and so a token two spellings."""
    row = {
        "id": token_hash(f"admin:{jti}"),
        "provisioner": provisioner,
        "used_at": datetime.now(UTC),
        "expires_at": expires,
    }
    try:
        with authority.repository.engine.begin() as conn:
            conn.execute(insert(used_tokens).values(row))
    except IntegrityError:
        raise admin_unauthorized("token already used") from None


def _decoded_path(aud: object) -> object:
    """An audience URL with its path percent-decoded, as the request path it names is."""
    if not isinstance(aud, str):
        return aud
    parts = urlsplit(aud)
    return urlunsplit(parts._replace(path=unquote(parts.path)))


def authorize_admin(authority: Authority, header: str | None, path: str) -> Admin:
    """The admin of the request's `Authorization` header, for the request `path`."""
    if not header:
        raise admin_unauthorized("missing authorization header token")
    raw = header.removeprefix("Bearer ").strip()
    token = parse_token(raw)
    leaf = _verify_leaf(authority, _chain(token.header))
    key = leaf.public_key()
    algorithms = verification_algorithms(key)
    try:
        claims: dict[str, Any] = jwt.decode(
            raw,
            key=key,  # type: ignore[arg-type]
            algorithms=algorithms,
            leeway=LEEWAY_SECONDS,
            options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
        )
    except jwt.PyJWTError as exc:
        raise admin_unauthorized(f"error parsing x5c claims: {exc}") from None
    ext = ProvisionerExtension.from_certificate(leaf)
    prov = authority.registry.by_name(ext.name) if ext else None
    if prov is None:
        raise admin_unauthorized("the admin certificate names no provisioner of this CA")
    hosts = [f"[{n}]" if ":" in n else n for n in authority.config.dns_names]
    allowed = [f"https://{host}{path}" for host in hosts]  # `matches` ignores ports
    if not matches(_decoded_path(claims.get("aud")), allowed):  # `path` comes decoded
        raise admin_unauthorized("x5c token has invalid audience claim (aud)")
    if claims.get("iss") not in (ADMIN_ISSUER, prov.name):
        raise admin_unauthorized("x5c token has invalid issuer claim (iss)")
    if not claims.get("sub"):
        raise admin_unauthorized("x5c token subject cannot be empty")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise admin_unauthorized("x5c token has no id claim (jti)")
    _burn(authority, jti, prov.name, datetime.fromtimestamp(float(claims["exp"]), UTC))
    names = _names(leaf)
    if prov.name != admin_provisioner(authority) or SUPER_ADMIN not in names:
        raise admin_unauthorized(
            f"unable to load admin with subject(s) {names} and provisioner '{prov.name}'"
        )
    return Admin(SUPER_ADMIN, prov.name)
