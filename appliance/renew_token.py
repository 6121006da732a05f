"""The renewal bearer token: a JWT signed by a certificate's own key, the certificate in its
`x5cInsecure` header. It is how an expired certificate (which cannot do mTLS) renews."""

from __future__ import annotations

import base64
from typing import Any

import jwt
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pki.errors import CAError, ErrorKind, unauthorized
from pki.jose import LEEWAY_SECONDS, verification_algorithms
from provisioners.audience import matches
from provisioners.base import Token


def leaf_of(token: Token) -> x509.Certificate:
    """The certificate in the token's `x5cInsecure` header (standard base64 DER)."""
    chain = token.header.get("x5cInsecure")
    if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
        raise unauthorized("authorizeRenewToken: missing x5cInsecure header")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
    except ValueError:
        raise unauthorized("authorizeRenewToken: invalid x5cInsecure certificate") from None


def verify(token: Token, leaf: x509.Certificate, audiences: list[str]) -> dict[str, Any]:
    """Check the token against the certificate it carries, as step-ca does.

    The certificate must allow client authentication and digital signatures (the caller has
    already checked who issued it); the signature, times (1 minute leeway), `sub` = the
    certificate's CN, and the renew audience are checked here. A wrong audience is step-ca's
    500 quirk.
    """
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise unauthorized("authorizeRenewToken: certificate lacks key usages") from None
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku or not ku.digital_signature:
        raise unauthorized("authorizeRenewToken: certificate is not for client authentication")
    key = leaf.public_key()
    try:
        claims: dict[str, Any] = jwt.decode(
            token.raw,
            key=key,  # type: ignore[arg-type]
            algorithms=verification_algorithms(key),
            leeway=LEEWAY_SECONDS,
            options={"verify_aud": False, "verify_iss": False, "require": ["exp"]},
        )
    except jwt.PyJWTError as exc:
        raise unauthorized(f"authorizeRenewToken: error validating token: {exc}") from None
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or claims.get("sub") != cns[0].value:
        raise unauthorized("authorizeRenewToken: token subject does not match the certificate")
    if not matches(claims.get("aud"), audiences):
        raise CAError(
            ErrorKind.INTERNAL,
            "error validating renew token: invalid audience claim (aud)",
            public="error validating renew token: invalid audience claim (aud)",
        )
    return claims
